//! A blocking WebSocket client for the tests (tungstenite's client over a std `TcpStream`), and
//! the reconnect rule the browser client follows, for the tests that kill nodes.

use serde_json::{json, Value};
use std::io::{ErrorKind, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Error, Message, WebSocket};

/// How long a test waits for one expected message.
pub const WAIT: Duration = Duration::from_secs(5);

/// What came next on a connection.
#[derive(Debug)]
pub enum Next {
    /// A text message, parsed as JSON.
    Frame(Value),
    /// The server's close frame (its code and reason), or the end of the stream without one.
    Closed(Option<CloseFrame>),
    Timeout,
}

/// One WebSocket client.
pub struct WsClient {
    /// tungstenite's client, for what the helpers below do not cover.
    pub ws: WebSocket<TcpStream>,
    /// For assertion messages.
    pub label: String,
}

impl WsClient {
    /// Connects to `ws://ADDR/ws?QUERY` and completes the handshake.
    pub fn connect(http: SocketAddr, query: &str, label: &str) -> Result<WsClient, String> {
        let stream = TcpStream::connect_timeout(&http, WAIT).map_err(|e| format!("{e}"))?;
        Self::handshake(stream, http, query, label)
    }

    /// Like [`WsClient::connect`], from the local address `source` (any 127.0.0.x reaches a
    /// server on 127.0.0.1: a second "client machine" for the per-address limit).
    pub fn connect_from(
        source: IpAddr,
        http: SocketAddr,
        query: &str,
        label: &str,
    ) -> Result<WsClient, String> {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(|e| e.to_string())?;
        socket
            .bind(&SocketAddr::new(source, 0).into())
            .map_err(|e| e.to_string())?;
        socket
            .connect_timeout(&http.into(), WAIT)
            .map_err(|e| e.to_string())?;
        Self::handshake(socket.into(), http, query, label)
    }

    fn handshake(
        stream: TcpStream,
        http: SocketAddr,
        query: &str,
        label: &str,
    ) -> Result<WsClient, String> {
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let url = format!("ws://{http}/ws?{query}");
        let (ws, _response) =
            tungstenite::client(url.as_str(), stream).map_err(|e| format!("{url}: {e}"))?;
        ws.get_ref()
            .set_read_timeout(Some(WAIT))
            .map_err(|e| e.to_string())?;
        Ok(WsClient {
            ws,
            label: label.to_string(),
        })
    }

    /// Connects and joins `room` as `nickname`; panics unless the reply is `welcome`.
    pub fn join(http: SocketAddr, nickname: &str, room: &str) -> WsClient {
        let mut client = WsClient::connect(http, "", nickname).expect("connect");
        client.send(&json!({"type": "join", "nickname": nickname, "room": room}));
        client.expect("welcome");
        client
    }

    pub fn send(&mut self, request: &Value) {
        self.send_message(Message::text(request.to_string()));
    }

    pub fn send_message(&mut self, message: Message) {
        self.ws
            .send(message)
            .unwrap_or_else(|e| panic!("{}: send: {e}", self.label));
    }

    /// Writes raw bytes on the socket, bypassing tungstenite (a frame it would refuse to send).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let stream = self.ws.get_mut();
        stream.write_all(bytes).expect("raw write");
    }

    /// The next text message, or the close, within `within` (pings are answered, not returned).
    pub fn next(&mut self, within: Duration) -> Next {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Next::Timeout;
            }
            let _ = self.ws.get_ref().set_read_timeout(Some(left));
            match self.ws.read() {
                Ok(Message::Text(text)) => {
                    let value = serde_json::from_str(text.as_str())
                        .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {text}", self.label));
                    return Next::Frame(value);
                }
                Ok(Message::Close(frame)) => return Next::Closed(frame),
                Ok(_) => {}
                Err(Error::Io(e))
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    return Next::Timeout
                }
                Err(_) => return Next::Closed(None),
            }
        }
    }

    /// The next message; panics on a close or a timeout.
    pub fn recv(&mut self) -> Value {
        match self.next(WAIT) {
            Next::Frame(value) => value,
            other => panic!("{}: expected a message, got {other:?}", self.label),
        }
    }

    /// The next message, which must be of type `kind`.
    pub fn expect(&mut self, kind: &str) -> Value {
        let value = self.recv();
        assert_eq!(value["type"], kind, "{}: {value}", self.label);
        value
    }

    /// Skips messages of other types (`joined`, `left`...) until one of type `kind`.
    pub fn wait_for(&mut self, kind: &str) -> Value {
        loop {
            let value = self.recv();
            if value["type"] == kind {
                return value;
            }
        }
    }

    /// The next message must be `error` with `code`.
    pub fn expect_error(&mut self, code: &str) -> Value {
        let value = self.expect("error");
        assert_eq!(value["code"], code, "{}: {value}", self.label);
        value
    }

    /// The server closes with this code, and then the stream ends.
    pub fn expect_close(&mut self, code: u16) {
        match self.next(WAIT) {
            Next::Closed(Some(frame)) => {
                assert_eq!(u16::from(frame.code), code, "{}: {frame:?}", self.label)
            }
            other => panic!(
                "{}: expected a close frame with {code}, got {other:?}",
                self.label
            ),
        }
        // The server then closes the socket: reading ends without a timeout.
        let started = Instant::now();
        loop {
            match self.ws.read() {
                Ok(_) => {}
                Err(Error::ConnectionClosed | Error::AlreadyClosed) => break,
                Err(Error::Io(e)) if matches!(e.kind(), ErrorKind::WouldBlock) => {
                    panic!("{}: the socket stayed open after the close", self.label)
                }
                Err(_) => break,
            }
            assert!(started.elapsed() < WAIT, "{}: no end of stream", self.label);
        }
    }

    /// Sends a close frame with `code` and reads until the server's reply.
    pub fn close(&mut self, code: CloseCode) -> Option<CloseFrame> {
        let _ = self.ws.close(Some(CloseFrame {
            code,
            reason: "bye".into(),
        }));
        loop {
            match self.next(WAIT) {
                Next::Closed(frame) => return frame,
                Next::Timeout => return None,
                Next::Frame(_) => {}
            }
        }
    }
}

/// The browser client's reconnect rule (`web/app.js`): wait `FIRST_RETRY`, then twice as long
/// after each failed attempt, up to `MAX_RETRY`; reconnect with the same session key and join
/// with the same nickname and room.
pub const FIRST_RETRY: Duration = Duration::from_millis(250);
pub const MAX_RETRY: Duration = Duration::from_secs(8);

/// A client that survives the loss of its node: it reconnects (through a load balancer) with
/// the browser client's rule and takes its nickname and room back.
pub struct Resilient {
    /// Where it connects: a node, or nginx in front of the nodes.
    pub http: SocketAddr,
    /// Its session key (`/ws?session=KEY`), the same on every connection.
    pub session: String,
    /// What it joins as, on every connection.
    pub nickname: String,
    pub room: String,
    /// The current connection.
    pub client: WsClient,
}

impl Resilient {
    /// Connects and joins.
    pub fn join(http: SocketAddr, session: &str, nickname: &str, room: &str) -> Resilient {
        let client = Self::attempt(http, session, nickname, room)
            .unwrap_or_else(|e| panic!("{nickname}: {e}"));
        Resilient {
            http,
            session: session.to_string(),
            nickname: nickname.to_string(),
            room: room.to_string(),
            client,
        }
    }

    fn attempt(
        http: SocketAddr,
        session: &str,
        nickname: &str,
        room: &str,
    ) -> Result<WsClient, String> {
        let mut client = WsClient::connect(http, &format!("session={session}"), nickname)?;
        client.send(&json!({"type": "join", "nickname": nickname, "room": room}));
        match client.next(WAIT) {
            Next::Frame(v) if v["type"] == "welcome" => Ok(client),
            other => Err(format!("join: {other:?}")),
        }
    }

    /// Reconnects with backoff until it has joined again, for at most `within`; returns how
    /// many attempts it took.
    pub fn reconnect(&mut self, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        let mut wait = FIRST_RETRY;
        let mut attempts = 0;
        loop {
            std::thread::sleep(wait.min(deadline.saturating_duration_since(Instant::now())));
            attempts += 1;
            match Self::attempt(self.http, &self.session, &self.nickname, &self.room) {
                Ok(client) => {
                    self.client = client;
                    return attempts;
                }
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "{}: not back within {within:?} ({attempts} attempts): {e}",
                    self.nickname
                ),
            }
            wait = (wait * 2).min(MAX_RETRY);
        }
    }
}

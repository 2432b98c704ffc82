//! The checker's client: raw bytes out, JSON values in, and `expect_*` helpers that turn any
//! surprise into a FAIL message saying what was expected and what came.
//!
//! It never uses chat-core: requests are written as JSON text, replies are judged as
//! `serde_json::Value`, so the checker grades the wire format itself.

use super::wire::{self, Reader, Writer};
use super::Ctx;
use crate::run::Transport;
use serde_json::{json, Value};
use std::io::{self, ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How far `ts` may be from the checker's clock (both run on one machine, but be kind to VMs).
const TS_TOLERANCE_MS: i64 = 60_000;

/// One connection to the server under test.
pub(crate) struct Client {
    /// The socket, read here (and written through `writer`).
    stream: TcpStream,
    /// This client's own writes (lines; masked text messages over WebSocket).
    writer: Writer,
    /// Turns what is read into lines (over WebSocket: the text messages), and keeps the close.
    reader: Reader,
    /// Bytes received but not yet split into lines.
    pending: Vec<u8>,
    /// Who this is in FAIL messages (usually the nickname).
    pub label: String,
    /// The last line sent, shown in FAIL messages as context.
    last_sent: String,
    timeout: Duration,
    verbose: bool,
    /// The server closed the connection (EOF or reset).
    closed: bool,
    /// Counter for the ids of [`Client::still_works`] pings.
    probes: u64,
}

/// What waiting for the next line gave (raw bytes, for the echo profile).
pub(crate) enum Line {
    Bytes(Vec<u8>),
    Timeout,
    /// EOF, reset or a close frame, with a word on which.
    Closed(String),
}

/// What waiting for the next frame gave.
pub(crate) enum Next {
    Frame(Value),
    Timeout,
    /// EOF or reset, with a word on which.
    Closed(String),
}

impl Client {
    /// Connects (within the reply timeout) to the next node in turn.
    pub fn connect(ctx: &Ctx, label: &str) -> Result<Client, String> {
        Client::connect_to(ctx, ctx.place(), label)
    }

    /// Connects to the node at `addr`.
    pub fn connect_to(ctx: &Ctx, addr: SocketAddr, label: &str) -> Result<Client, String> {
        let stream = TcpStream::connect_timeout(&addr, ctx.timeout())
            .map_err(|e| format!("{label}: cannot connect to {addr}: {e}"))?;
        Self::from_stream(ctx, label, stream)
    }

    /// Connects with a small receive buffer, so that a client that stops reading fills the
    /// server's backlog quickly instead of hiding megabytes in its own kernel buffer.
    pub fn connect_with_small_buffer(ctx: &Ctx, label: &str) -> Result<Client, String> {
        use socket2::{Domain, Socket, Type};
        let addr = ctx.place();
        let fail = |e: io::Error| format!("{label}: cannot connect to {addr}: {e}");
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(fail)?;
        socket.set_recv_buffer_size(4096).map_err(fail)?;
        socket
            .connect_timeout(&addr.into(), ctx.timeout())
            .map_err(fail)?;
        Self::from_stream(ctx, label, socket.into())
    }

    pub(crate) fn from_stream(
        ctx: &Ctx,
        label: &str,
        mut stream: TcpStream,
    ) -> Result<Client, String> {
        stream
            .set_nodelay(true)
            .and_then(|()| stream.set_write_timeout(Some(ctx.timeout())))
            .map_err(|e| format!("{label}: socket setup failed: {e}"))?;
        let ws = ctx.config.transport == Transport::Ws;
        let early = if ws {
            let addr = stream
                .peer_addr()
                .map_err(|e| format!("{label}: socket setup failed: {e}"))?;
            wire::upgrade(&mut stream, addr, &ctx.config.ws_path, ctx.timeout())
                .map_err(|e| format!("{label}: {e}"))?
        } else {
            Vec::new()
        };
        let writer = stream
            .try_clone()
            .map(|s| Writer::new(s, ws))
            .map_err(|e| format!("{label}: socket setup failed: {e}"))?;
        let mut client = Client {
            stream,
            writer,
            reader: Reader::new(ws),
            pending: Vec::new(),
            label: label.to_string(),
            last_sent: "(nothing yet)".into(),
            timeout: ctx.timeout(),
            verbose: ctx.config.verbose,
            closed: false,
            probes: 0,
        };
        if !early.is_empty() {
            client.take(&early)?;
        }
        Ok(client)
    }

    /// Adds bytes read from the socket to `pending` (over WebSocket: their text messages).
    fn take(&mut self, chunk: &[u8]) -> Result<(), String> {
        let taken = self
            .reader
            .take(chunk, &mut self.pending, &mut self.writer)
            .map_err(|e| format!("{}: {e}", self.label));
        if self.reader.close.is_some() {
            self.closed = true;
        }
        taken
    }

    /// The WebSocket close code the server ended the connection with, if it sent one.
    pub fn close_code(&self) -> Option<u16> {
        self.reader.close.as_ref().and_then(|c| c.0)
    }

    /// Connects and joins `room` (or the default room) as `nickname`; returns the `welcome`.
    pub fn join(ctx: &Ctx, nickname: &str, room: Option<&str>) -> Result<(Client, Value), String> {
        let mut client = Client::connect(ctx, nickname)?;
        let request = match room {
            Some(room) => json!({"type": "join", "nickname": nickname, "room": room}),
            None => json!({"type": "join", "nickname": nickname}),
        };
        client.send(&request)?;
        let welcome = client.expect_event("welcome")?;
        Ok((client, welcome))
    }

    /// A second handle on the socket, for a writer thread: it writes whole lines (masked text
    /// messages over WebSocket).
    pub fn writer(&self) -> Result<Writer, String> {
        self.writer
            .try_clone()
            .map_err(|e| format!("{}: cannot clone the socket: {e}", self.label))
    }

    /// This end's address: the source address and port of the connection.
    pub fn local_addr(&self) -> Result<SocketAddr, String> {
        self.writer
            .local_addr()
            .map_err(|e| format!("{}: cannot read the socket's address: {e}", self.label))
    }

    /// Sends one JSON value as one line.
    pub fn send(&mut self, value: &Value) -> Result<(), String> {
        let mut line = value.to_string();
        line.push('\n');
        self.send_raw(line.as_bytes())
    }

    /// Sends bytes exactly as given.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.last_sent = clip(&String::from_utf8_lossy(bytes));
        if self.verbose {
            eprintln!("{} > {}", self.label, self.last_sent);
        }
        self.writer
            .send(bytes)
            .map_err(|e| format!("{}: sending {} failed: {e}", self.label, self.last_sent))
    }

    /// Waits until `deadline` for the next frame. `Err` when the server sent something that is
    /// not a JSON object with a string `type`.
    pub fn next(&mut self, deadline: Instant) -> Result<Next, String> {
        Ok(match self.next_line(deadline)? {
            Line::Bytes(line) => Next::Frame(self.parse(&line)?),
            Line::Timeout => Next::Timeout,
            Line::Closed(how) => Next::Closed(how),
        })
    }

    /// Waits until `deadline` for the next line, as raw bytes with its `\n` (over WebSocket:
    /// the next text message, with a `\n` added).
    pub fn next_line(&mut self, deadline: Instant) -> Result<Line, String> {
        loop {
            if let Some(newline) = self.pending.iter().position(|&b| b == b'\n') {
                return Ok(Line::Bytes(self.pending.drain(..=newline).collect()));
            }
            if self.closed {
                let how = self
                    .reader
                    .close_text()
                    .unwrap_or_else(|| "the connection is closed".into());
                return Ok(Line::Closed(how));
            }
            if let Some(how) = self.read_once(deadline)? {
                return Ok(how);
            }
        }
    }

    /// One read from the socket, into `pending`, waiting at most until `deadline`:
    /// `Some(Timeout)` when it passed, `Some(Closed)` when the connection ended.
    fn read_once(&mut self, deadline: Instant) -> Result<Option<Line>, String> {
        let mut buf = [0u8; 64 * 1024];
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Some(Line::Timeout));
        }
        if let Err(e) = self.stream.set_read_timeout(Some(left)) {
            return Ok(Some(Line::Closed(format!("socket error: {e}"))));
        }
        match self.stream.read(&mut buf) {
            Ok(0) => {
                self.closed = true;
                if !self.pending.is_empty() {
                    return Err(format!(
                        "{}: the connection closed in the middle of a frame: {}",
                        self.label,
                        clip(&String::from_utf8_lossy(&self.pending))
                    ));
                }
                let how = self.reader.close_text().unwrap_or_else(|| "EOF".into());
                return Ok(Some(Line::Closed(how)));
            }
            Ok(n) => self.take(&buf[..n])?,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                self.closed = true;
                return Ok(Some(Line::Closed(format!("{e}"))));
            }
        }
        Ok(None)
    }

    /// Waits until `deadline` for a WebSocket pong (the answer to a ping control frame), and
    /// returns its payload. Lines that arrive meanwhile stay pending.
    pub fn expect_control_pong(&mut self, deadline: Instant) -> Result<Vec<u8>, String> {
        loop {
            if let Some(pong) = self.reader.pongs.pop() {
                return Ok(pong);
            }
            if self.closed {
                return Err(format!(
                    "{}: the connection closed before the pong",
                    self.label
                ));
            }
            match self.read_once(deadline)? {
                Some(Line::Timeout) => {
                    return Err(format!(
                        "{}: no pong for the ping frame within {} ms",
                        self.label,
                        self.timeout.as_millis()
                    ))
                }
                Some(Line::Closed(how)) => {
                    return Err(format!("{}: the connection closed ({how})", self.label))
                }
                Some(Line::Bytes(_)) | None => {}
            }
        }
    }

    /// How long each expected reply may take from now on.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// How long each expected reply may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn parse(&self, line: &[u8]) -> Result<Value, String> {
        let text = String::from_utf8_lossy(line);
        let value: Value = serde_json::from_slice(line).map_err(|e| {
            format!(
                "{}: the server sent a line that is not JSON ({e}): {}",
                self.label,
                clip(&text)
            )
        })?;
        if !value.get("type").is_some_and(Value::is_string) {
            return Err(format!(
                "{}: the server sent a frame without a string `type`: {}",
                self.label,
                clip(&text)
            ));
        }
        if self.verbose {
            eprintln!("{} < {}", self.label, clip(&text));
        }
        Ok(value)
    }

    /// The next frame, which must come within the reply timeout.
    pub fn recv(&mut self) -> Result<Value, String> {
        self.recv_for("a reply")
    }

    fn recv_for(&mut self, what: &str) -> Result<Value, String> {
        let deadline = Instant::now() + self.timeout;
        match self.next(deadline)? {
            Next::Frame(frame) => Ok(frame),
            Next::Timeout => Err(format!(
                "{}: after sending {}: expected {what}, got nothing within {} ms",
                self.label,
                self.last_sent,
                self.timeout.as_millis()
            )),
            Next::Closed(how) => Err(format!(
                "{}: after sending {}: expected {what}, but the connection closed ({how})",
                self.label, self.last_sent
            )),
        }
    }

    /// The next frame must be of type `kind`; returns it.
    pub fn expect_event(&mut self, kind: &str) -> Result<Value, String> {
        let what = format!("a `{kind}` event");
        let frame = self.recv_for(&what)?;
        if frame["type"] != kind {
            return Err(self.unexpected(&what, &frame));
        }
        Ok(frame)
    }

    /// The next frame must have every field of `expected` with exactly that value (`type`
    /// included); returns it.
    pub fn expect(&mut self, expected: &Value) -> Result<Value, String> {
        let what = compact(expected);
        let frame = self.recv_for(&what)?;
        match expect_fields(&frame, expected) {
            Ok(()) => Ok(frame),
            Err(_) => Err(self.unexpected(&what, &frame)),
        }
    }

    /// The next frame must be an `error` with `code` and a string `message`.
    pub fn expect_error(&mut self, code: &str) -> Result<Value, String> {
        let what = format!("error `{code}`");
        let frame = self.recv_for(&what)?;
        if frame["type"] != "error" || frame["code"] != code || !frame["message"].is_string() {
            return Err(self.unexpected(&format!("{what} with a string `message`"), &frame));
        }
        Ok(frame)
    }

    /// The server must close the connection (EOF or reset) within the reply timeout, sending
    /// nothing more.
    pub fn expect_closed(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + self.timeout;
        match self.next(deadline)? {
            Next::Closed(_) => Ok(()),
            Next::Frame(frame) => Err(self.unexpected("the connection to close", &frame)),
            Next::Timeout => Err(format!(
                "{}: after sending {}: expected the connection to close within {} ms, it stayed \
                 open",
                self.label,
                self.last_sent,
                self.timeout.as_millis()
            )),
        }
    }

    /// Nothing may arrive for `duration` (and the connection must stay open).
    pub fn expect_silence(&mut self, duration: Duration) -> Result<(), String> {
        match self.next(Instant::now() + duration)? {
            Next::Timeout => Ok(()),
            Next::Frame(frame) => Err(self.unexpected("nothing", &frame)),
            Next::Closed(how) => Err(format!(
                "{}: after sending {}: expected nothing, but the connection closed ({how})",
                self.label, self.last_sent
            )),
        }
    }

    /// A fresh connection's first ping, with `id`: `Ok(None)` when its pong came back,
    /// `Ok(Some(refusal))` when the server refused the connection (`server_full`, compacted),
    /// `Err` for anything else.
    ///
    /// A server refuses without waiting for the client to speak. Over WebSocket its refusal and
    /// close frame can come with the upgrade's response, and the checker answers that close at
    /// once, so the ping then meets a socket the server has already closed (a broken pipe):
    /// what the server sent first decides.
    pub fn first_ping(&mut self, id: &Value) -> Result<Option<String>, String> {
        let is_refusal = |reply: &Value| reply["type"] == "error" && reply["code"] == "server_full";
        if let Err(failed) = self.send(&json!({"type": "ping", "id": id})) {
            return match self.recv() {
                Ok(reply) if is_refusal(&reply) => Ok(Some(compact(&reply))),
                _ => Err(failed),
            };
        }
        let reply = self.recv()?;
        if is_refusal(&reply) {
            return Ok(Some(compact(&reply)));
        }
        if reply != json!({"type": "pong", "id": id}) {
            return Err(format!(
                "{}: expected its pong or server_full, got {reply}",
                self.label
            ));
        }
        Ok(None)
    }

    /// The connection is still served: a ping with a fresh id is answered with its pong next.
    pub fn still_works(&mut self) -> Result<(), String> {
        self.probes += 1;
        let id = format!("probe-{}", self.probes);
        self.send(&json!({"type": "ping", "id": id}))
            .map_err(|e| format!("the connection no longer works: {e}"))?;
        // Room notifications (`left` for a member the server just dropped, say) may
        // legitimately arrive before the pong: skip those, judge the first other frame.
        let expected = json!({"type": "pong", "id": id});
        for _ in 0..100_000 {
            let frame = self
                .recv_for(&compact(&expected))
                .map_err(|e| format!("the connection no longer works: {e}"))?;
            if matches!(
                frame["type"].as_str(),
                Some("joined" | "left" | "renamed" | "broadcast")
            ) {
                continue;
            }
            return expect_fields(&frame, &expected).map_err(|_| {
                format!(
                    "the connection no longer works: {}",
                    self.unexpected(&compact(&expected), &frame)
                )
            });
        }
        Err(format!(
            "{}: no pong among 100,000 room notifications",
            self.label
        ))
    }

    fn unexpected(&self, what: &str, frame: &Value) -> String {
        format!(
            "{}: after sending {}: expected {what}, got {}",
            self.label,
            self.last_sent,
            compact(frame)
        )
    }
}

/// `value` must not have `key` at all (not even `null`).
pub(crate) fn expect_no_key(value: &Value, key: &str) -> Result<(), String> {
    match value.get(key) {
        None => Ok(()),
        Some(_) => Err(format!(
            "expected no `{key}` key when the request had none, got {}",
            compact(value)
        )),
    }
}

/// `ts` must be an integer of milliseconds since the epoch, close to now.
pub(crate) fn expect_ts_near_now(value: &Value) -> Result<(), String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    match value["ts"].as_i64() {
        Some(ts) if (ts - now).abs() <= TS_TOLERANCE_MS => Ok(()),
        Some(ts) => Err(format!(
            "expected `ts` within {} s of now ({now} ms since the epoch), got {ts}",
            TS_TOLERANCE_MS / 1000
        )),
        None => Err(format!(
            "expected an integer `ts` (ms since the epoch), got {}",
            compact(value)
        )),
    }
}

/// A value as one line, cut short for messages.
pub(crate) fn compact(value: &Value) -> String {
    clip(&value.to_string())
}

/// Cuts text to 200 characters for messages, and escapes control characters (line ends
/// included) so a message stays on one printable line.
pub(crate) fn clip(text: &str) -> String {
    let text = text.trim_end_matches('\n');
    let mut out = String::new();
    for c in text.chars().take(200) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if text.chars().count() > 200 {
        out.push('…');
    }
    out
}

/// Joins one client per name base into `room`, in that order, checking each `welcome` (the
/// users so far, sorted) and the `joined` every earlier member gets. The clients' labels are
/// their nicknames.
pub(crate) fn join_group(ctx: &Ctx, room: &str, bases: &[&str]) -> Result<Vec<Client>, String> {
    let mut members: Vec<Client> = Vec::new();
    for base in bases {
        let nickname = ctx.fresh(base);
        let (client, welcome) = Client::join(ctx, &nickname, Some(room))?;
        let mut users: Vec<&str> = members.iter().map(|c| c.label.as_str()).collect();
        users.push(&nickname);
        users.sort_unstable();
        let expected =
            json!({"type": "welcome", "nickname": nickname, "room": room, "users": users});
        expect_fields(&welcome, &expected).map_err(|e| format!("{nickname}: {e}"))?;
        for member in &mut members {
            member.expect(&json!({"type": "joined", "nickname": nickname, "room": room}))?;
        }
        members.push(client);
    }
    Ok(members)
}

/// `frame` must have every field of `expected` with exactly that value.
pub(crate) fn expect_fields(frame: &Value, expected: &Value) -> Result<(), String> {
    let fields = expected.as_object().into_iter().flatten();
    for (key, value) in fields {
        if frame.get(key) != Some(value) {
            return Err(format!(
                "expected {}, got {}",
                compact(expected),
                compact(frame)
            ));
        }
    }
    Ok(())
}

impl Client {
    /// Reads and discards whatever arrives until the server closes the connection; `Ok(true)`
    /// if it closed before `deadline`. A cut-off frame at the end is fine here (a server may
    /// drop a slow reader in the middle of one).
    pub fn drain_until_closed(&mut self, deadline: Instant) -> Result<bool, String> {
        self.pending.clear();
        let mut buf = vec![0u8; 256 * 1024];
        while !self.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            if self.stream.set_read_timeout(Some(left)).is_err() {
                return Ok(true);
            }
            match self.stream.read(&mut buf) {
                Ok(0) => self.closed = true,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => self.closed = true,
            }
        }
        Ok(true)
    }
}

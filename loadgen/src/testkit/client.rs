//! # The blocking chat client the servers' tests share
//!
//! Every server crate's tests need the same small thing besides the conformance suite: a client
//! that speaks JSON lines over a real socket, one call per step, and *panics* with a useful
//! message the moment anything is not as expected, so the test reads like the scenario it pins
//! down:
//!
//! ```no_run
//! use loadgen::testkit::TestClient;
//! use serde_json::json;
//! # let addr: std::net::SocketAddr = "127.0.0.1:7000".parse().unwrap();
//! let mut alice = TestClient::join(addr, "alice", "lobby");
//! alice.send(&json!({"type": "ping", "id": 1}));
//! assert_eq!(alice.expect("pong")["id"], 1);
//! ```
//!
//! It is deliberately not the checker's client (`loadgen::check`), which turns every surprise
//! into a FAIL line of a report instead of a panic, and not `loadgen run`'s, which drives
//! thousands of connections asynchronously. This one is blocking: one socket, no threads of its
//! own (move it into a thread to read while another writes, see [`TestClient::writer`]).
//!
//! Every wait is bounded: each frame must arrive within the client's timeout
//! ([`TestClient::FRAME_TIMEOUT`] unless changed), generous because the test machine is shared,
//! and loops that skip frames give up after [`TestClient::MAX_SKIPPED`] of them.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

/// A blocking, panicking, line-oriented chat client for tests.
#[derive(Debug)]
pub struct TestClient {
    /// The socket's reading side, buffered so that frames are read a line at a time.
    reader: BufReader<TcpStream>,
    /// A second handle on the same socket for writing (and for [`TestClient::writer`] clones):
    /// writes go straight out, never behind buffered reads.
    writer: TcpStream,
    /// How long any one frame may take; also the socket's read timeout between calls.
    timeout: Duration,
}

impl TestClient {
    /// The default time any single expected frame may take to arrive. Generous: the machine is
    /// shared with compilers and other tests, and the servers run as debug builds.
    pub const FRAME_TIMEOUT: Duration = Duration::from_secs(30);

    /// How many frames of other types [`TestClient::expect`] and [`TestClient::sees_eof`] skip
    /// before giving up (a bound on the loop, not a number any test comes near).
    pub const MAX_SKIPPED: usize = 100_000;

    /// Connects to `addr`. `TCP_NODELAY` is set, so each request leaves at once rather than
    /// waiting on Nagle's algorithm for the previous one's ACK.
    pub fn connect(addr: SocketAddr) -> TestClient {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream
            .set_nodelay(true)
            .unwrap_or_else(|e| panic!("TCP_NODELAY: {e}"));
        TestClient::from_stream(stream)
    }

    /// Wraps an already connected socket, which must be in blocking mode. Only its read timeout
    /// is changed (to [`TestClient::FRAME_TIMEOUT`]).
    pub fn from_stream(stream: TcpStream) -> TestClient {
        let writer = stream
            .try_clone()
            .unwrap_or_else(|e| panic!("clone the socket: {e}"));
        let mut client = TestClient {
            reader: BufReader::new(stream),
            writer,
            timeout: Self::FRAME_TIMEOUT,
        };
        client.set_timeout(Self::FRAME_TIMEOUT);
        client
    }

    /// Connects, joins `room` as `nickname`, and returns once the `welcome` has arrived. Panics
    /// if the first frame is anything else (an `error` such as `server_full`, typically).
    pub fn join(addr: SocketAddr, nickname: &str, room: &str) -> TestClient {
        let mut client = TestClient::connect(addr);
        client.send(&json!({"type": "join", "nickname": nickname, "room": room}));
        let reply = client.recv();
        assert_eq!(reply["type"], "welcome", "{nickname} joins: got {reply}");
        client
    }

    /// Connects and pings: once the `pong` is back, the server is serving this client (for
    /// servers that serve a bounded number at a time, whose next client must wait).
    pub fn connect_served(addr: SocketAddr) -> TestClient {
        let mut client = TestClient::connect(addr);
        client.send(&json!({"type": "ping"}));
        let reply = client.recv();
        assert_eq!(reply["type"], "pong", "ping: got {reply}");
        client
    }

    /// Connects and asks to join as `nickname`, and asserts that no answer comes within `wait`
    /// (`why` says why none should): the server has nobody free to serve one more client (the
    /// blocking server's one client, the pool's busy workers). [`TestClient::welcomed`] then
    /// waits for its turn.
    pub fn join_unserved(
        addr: SocketAddr,
        nickname: &str,
        wait: Duration,
        why: &str,
    ) -> TestClient {
        let mut client = TestClient::connect(addr);
        client.send(&json!({"type": "join", "nickname": nickname}));
        assert!(!client.replies_within(wait), "{nickname}: {why}");
        client
    }

    /// Expects the `welcome` to an earlier join as the next frame, and returns the users it
    /// lists.
    pub fn welcomed(&mut self) -> Value {
        let welcome = self.recv();
        assert_eq!(welcome["type"], "welcome", "got {welcome}");
        welcome["users"].clone()
    }

    /// Sends `quit` and expects the `bye` that answers it as the next frame: the client leaves
    /// (the server closes the connection after the `bye`).
    pub fn quit(&mut self) {
        self.send(&json!({"type": "quit"}));
        let reply = self.recv();
        assert_eq!(reply["type"], "bye", "quit: got {reply}");
    }

    /// Sends one frame as a JSON line.
    pub fn send(&mut self, frame: &Value) {
        let mut line = serde_json::to_vec(frame).expect("a serde_json::Value always serializes");
        line.push(b'\n');
        self.send_raw(&line);
    }

    /// Sends `line` followed by a newline, exactly as written: for requests a test wants to
    /// spell out (or get wrong on purpose).
    pub fn send_line(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes());
    }

    /// Sends bytes exactly as given, in one `write_all`: several lines at once, half a line,
    /// invalid UTF-8...
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("send {} bytes: {e}", bytes.len()));
    }

    /// The next frame. Panics on EOF, on a reset, when none arrives within the timeout, or on a
    /// line that is not JSON.
    pub fn recv(&mut self) -> Value {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => panic!("the server closed the connection"),
            Ok(_) => serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}")),
            Err(e) if is_timeout(&e) => panic!("no frame within {:?}: {e}", self.timeout),
            Err(e) => panic!("read failed: {e}"),
        }
    }

    /// Skips frames of other types (`joined`, `left`, ...) until one of type `kind` arrives,
    /// and returns it. Each frame must come within the timeout, as in [`TestClient::recv`].
    pub fn expect(&mut self, kind: &str) -> Value {
        for _ in 0..=Self::MAX_SKIPPED {
            let frame = self.recv();
            if frame["type"] == kind {
                return frame;
            }
        }
        panic!("no {kind:?} frame among {} frames", Self::MAX_SKIPPED + 1);
    }

    /// Whether the server sends anything (or closes) within `wait`, rather than staying silent.
    /// Nothing is consumed: a frame that arrived is still there for the next
    /// [`TestClient::recv`]. The timeout is restored afterwards.
    pub fn replies_within(&mut self, wait: Duration) -> bool {
        self.set_socket_timeout(wait);
        let replied = match self.reader.fill_buf() {
            Ok(bytes) => !bytes.is_empty(),
            Err(_) => false,
        };
        self.set_socket_timeout(self.timeout);
        replied
    }

    /// Whether the next thing the server does, within the timeout, is close the connection (EOF
    /// or reset) rather than send a frame. A frame is consumed; silence counts as not closed.
    pub fn is_closed(&mut self) -> bool {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !is_timeout(&e),
        }
    }

    /// Whether the server closes the connection with an orderly EOF within the timeout (per
    /// frame), skipping any frames before it. A reset or silence counts as no EOF.
    pub fn sees_eof(&mut self) -> bool {
        let mut line = String::new();
        for _ in 0..=Self::MAX_SKIPPED {
            line.clear();
            match self.reader.read_line(&mut line) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(_) => return false,
            }
        }
        false
    }

    /// Shuts the sending side (`shutdown(SHUT_WR)`, what `printf '...' | nc` does once its input
    /// ends): the server reads EOF after what was sent, while this client can still read the
    /// replies.
    pub fn half_close(&mut self) {
        self.writer
            .shutdown(Shutdown::Write)
            .unwrap_or_else(|e| panic!("half-close: {e}"));
    }

    /// Another handle on the socket, for writing from another thread while this client reads.
    pub fn writer(&self) -> TcpStream {
        self.writer
            .try_clone()
            .unwrap_or_else(|e| panic!("clone the socket: {e}"))
    }

    /// Sets how long any one frame may take from now on.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
        self.set_socket_timeout(timeout);
    }

    /// How long any one frame may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn set_socket_timeout(&self, timeout: Duration) {
        // Both handles share one socket, so one call sets it for reading through either.
        self.writer
            .set_read_timeout(Some(timeout))
            .unwrap_or_else(|e| panic!("set the read timeout to {timeout:?}: {e}"));
    }
}

/// Whether a read failed because the read timeout passed (`EAGAIN` on Linux, `TimedOut`
/// elsewhere), as opposed to the connection failing.
fn is_timeout(error: &std::io::Error) -> bool {
    matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

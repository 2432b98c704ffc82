//! # Test fixtures: an in-process chat server with injectable faults, and a test client
//!
//! The server, [`TestServer`], is not one of the seven server models and not a lesson: it
//! exists so that the tests of `loadgen check` and `loadgen run` can start a correct server in a
//! line of code, and, more importantly, a *broken* one, to prove those tools notice when a server
//! loses, reorders or mislabels what it sends. A checker that never fails proves nothing.
//!
//! ```no_run
//! use loadgen::testkit::{Faults, TestServer};
//! let server = TestServer::start(Faults { reorder_broadcasts: true, ..Faults::default() })?;
//! println!("a chat server that swaps broadcasts listens on {}", server.addr());
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! It is built the simplest way that is still correct: one accept thread, one reader and one
//! writer thread per connection, chat-core's [`Hub`] behind a `Mutex`, and a byte-bounded
//! outbound queue per connection (bounded by `--max-backlog`), so a stalled client is
//! disconnected instead of blocking the rest, faults or not. The faults are applied by the writer
//! threads, between the queue and the socket: the Hub itself stays correct.
//!
//! Limits: by default those of `PROTOCOL.md` ([`TestServer::MAX_LINE`], [`TestServer::MAX_BACKLOG`] and
//! `HubConfig::default()`); [`TestServer::start_with`] sets the Hub's (max-conns, idle timeout,
//! rate limit) and [`TestServer::start_limited`] all of them, plus
//! [`Limits::one_at_a_time`], which serves one connection at a time like the blocking model (to
//! test `loadgen check --single`).
//!
//! [`TestServer::start_with_ws`] adds a WebSocket front (`ws.rs`): the same Hub behind a second
//! listener that speaks PROTOCOL.md's WebSocket rules, so the tools' WebSocket transport is
//! tested without the cluster node that serves `/ws` for real.
//!
//! The other fixture, [`TestClient`] (in `client.rs`), goes the other way: a blocking,
//! panicking JSON-lines client that every server crate's tests use to drive a real server
//! process step by step. Built on it, the scenarios several server crates run alike:
//! [`burst`] (a room and a pinger that write far more at once than one read takes) and
//! [`fanout`] (thousands of connections in rooms of ten, every broadcast accounted for).

pub mod burst;
pub mod client;
mod conn;
pub mod fanout;
mod ws;

pub use client::TestClient;

use crate::check::CheckConfig;
use chat_core::{BacklogFull, Hub, HubConfig, Outbox, SocketOptions};
use conn::{Connection, Shared};
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A loopback address where nothing listens, so that connecting to it is refused, for as long
/// as this value lives (for tests of what the tools say then). It holds a socket bound to a port
/// the kernel handed out, and never listens on it: a connect is refused (the kernel answers the
/// SYN with a reset), and, unlike a port closed again at once, no other test running meanwhile
/// can be given the port and start listening there.
pub struct NothingListens {
    _socket: socket2::Socket,
    addr: SocketAddr,
}

impl NothingListens {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// See [`NothingListens`].
pub fn nothing_listens() -> NothingListens {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .expect("a TCP socket");
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
    socket.bind(&any_port.into()).expect("bind a free port");
    let addr = socket
        .local_addr()
        .ok()
        .and_then(|addr| addr.as_socket())
        .expect("its address");
    NothingListens {
        _socket: socket,
        addr,
    }
}

/// Misbehaviour to inject. The default injects none: a correct server.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Drop every n-th broadcast frame written to any connection (counted per recipient).
    pub drop_every_nth_broadcast: Option<u64>,
    /// Swap each pair of consecutive broadcast frames to one recipient (delivery out of order).
    /// A broadcast still waiting for its partner is written on its own after 250 ms of quiet, so
    /// nothing is lost.
    pub reorder_broadcasts: bool,
    /// Answer every error with code `unknown_type` instead of the right code.
    pub wrong_error_codes: bool,
    /// Stop writing to every client for `length` once every `every`: writes are held during
    /// `[k·every, k·every + length)` for k = 1, 2, … after the server started (a stalling
    /// server, for the coordinated-omission test). Reading goes on; output waits in the queues.
    pub stall: Option<(Duration, Duration)>, // (every, length)
    /// Judge `--max-backlog` on every byte queued, written or not, instead of only on what the
    /// socket refused, and let the writers take their queues only every 20 ms (as a writer task
    /// that has not run yet): a burst then cuts off members that read at full speed.
    pub count_untried_backlog: bool,
    /// When a client's requests arrive together with its EOF (it half-closed after them), close
    /// at once without answering them.
    pub drop_replies_on_hangup: bool,
}

/// Every limit of a [`TestServer`]; the default is `PROTOCOL.md`'s defaults.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Max-conns, idle timeout and rate limit, enforced by the Hub.
    pub hub: HubConfig,
    /// Longest line in bytes, newline included (`--max-line`).
    pub max_line: usize,
    /// Unsent bytes per connection before it is disconnected (`--max-backlog`).
    pub max_backlog: usize,
    /// Serve one connection at a time, the others waiting in the listen backlog, like the
    /// blocking single-thread model (to test `loadgen check --single`).
    pub one_at_a_time: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            hub: HubConfig::default(),
            max_line: TestServer::MAX_LINE,
            max_backlog: TestServer::MAX_BACKLOG,
            one_at_a_time: false,
        }
    }
}

impl Limits {
    /// Small limits, so that the checker's limit scenarios reach them quickly: 32 connections,
    /// a 2 s idle timeout, lines of 4 KiB and a backlog of 256 KiB (the values
    /// `check::assert_conformance` starts a server with; no rate or per-address limit).
    pub fn small() -> Limits {
        Limits {
            hub: HubConfig {
                max_conns: 32,
                idle_timeout: Some(Duration::from_secs(2)),
                ..HubConfig::default()
            },
            max_line: 4096,
            max_backlog: 256 * 1024,
            ..Limits::default()
        }
    }

    /// A checker configuration that tells `loadgen check` every one of these limits (but the
    /// rate limit and the per-address one, whose scenarios then SKIP).
    pub fn check_config(&self) -> CheckConfig {
        CheckConfig {
            max_line: Some(self.max_line),
            max_conns: Some(self.hub.max_conns),
            idle_timeout: self.hub.idle_timeout,
            max_backlog: Some(self.max_backlog),
            ..CheckConfig::default()
        }
    }
}

/// A running in-process chat server. Dropping it stops accepting, sends `shutting_down` to every
/// client and closes every connection.
pub struct TestServer {
    addr: SocketAddr,
    /// The WebSocket front's address, when it has one ([`TestServer::start_with_ws`]).
    ws_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl TestServer {
    /// The default longest line in bytes, newline included (`PROTOCOL.md`'s default `--max-line`).
    pub const MAX_LINE: usize = chat_core::decoder::DEFAULT_MAX_LINE;
    /// The default unsent bytes per connection before it is disconnected (`PROTOCOL.md`'s default
    /// `--max-backlog`).
    pub const MAX_BACKLOG: usize = chat_core::send_queue::DEFAULT_MAX_BACKLOG;

    /// Starts a server with `PROTOCOL.md`'s default limits on `127.0.0.1:0`.
    pub fn start(faults: Faults) -> io::Result<TestServer> {
        Self::start_with(HubConfig::default(), faults)
    }

    /// Starts a server with the given Hub limits on `127.0.0.1:0`.
    pub fn start_with(config: HubConfig, faults: Faults) -> io::Result<TestServer> {
        let limits = Limits {
            hub: config,
            ..Limits::default()
        };
        Self::start_limited(limits, faults)
    }

    /// Starts a server with the given limits on `127.0.0.1:0`.
    pub fn start_limited(limits: Limits, faults: Faults) -> io::Result<TestServer> {
        Self::start_limited_at(SocketAddr::from(([127, 0, 0, 1], 0)), limits, faults)
    }

    /// Starts a server on a chosen address (SO_REUSEADDR is set, so a test can start a second
    /// server on the port of one it just dropped, to test reconnecting).
    pub fn start_at(addr: SocketAddr, config: HubConfig, faults: Faults) -> io::Result<TestServer> {
        let limits = Limits {
            hub: config,
            ..Limits::default()
        };
        Self::start_limited_at(addr, limits, faults)
    }

    /// Starts a server with the given limits on `127.0.0.1:0` that also speaks WebSocket, on
    /// a second listener ([`TestServer::ws_addr`], path `/ws`), with the rules of PROTOCOL.md,
    /// section 9: one text message is one frame, a binary message is a `bad_request`, and the
    /// server's closes carry the close codes 1000 (`quit`), 1001 (`shutting_down`), 1008
    /// (`idle_timeout`, `line_too_long`) and 1013 (`server_full`). TCP and WebSocket clients
    /// share one Hub, so they share rooms. The faults apply to both.
    pub fn start_with_ws(limits: Limits, faults: Faults) -> io::Result<TestServer> {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::start_full(any, limits, faults, Some(any))
    }

    /// Starts a server with the given limits on a chosen address.
    pub fn start_limited_at(
        addr: SocketAddr,
        limits: Limits,
        faults: Faults,
    ) -> io::Result<TestServer> {
        Self::start_full(addr, limits, faults, None)
    }

    fn start_full(
        addr: SocketAddr,
        limits: Limits,
        faults: Faults,
        ws_at: Option<SocketAddr>,
    ) -> io::Result<TestServer> {
        let listener = chat_core::net::bind_listener(addr, &SocketOptions::default())?;
        let ws_listener = ws_at
            .map(|at| chat_core::net::bind_listener(at, &SocketOptions::default()))
            .transpose()?;
        let ws_addr = ws_listener
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                hub: Hub::new(limits.hub),
                conns: Conns::default(),
            }),
            max_line: limits.max_line,
            max_backlog: limits.max_backlog,
            one_at_a_time: limits.one_at_a_time,
            faults,
            started: Instant::now(),
            stopping: AtomicBool::new(false),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("testkit-accept".into())
                .spawn(move || accept_loop(listener, &shared))?
        };
        let ticker = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("testkit-tick".into())
                .spawn(move || tick_loop(&shared))?
        };
        let mut threads = vec![acceptor, ticker];
        if let Some(ws_listener) = ws_listener {
            let shared = Arc::clone(&shared);
            threads.push(
                std::thread::Builder::new()
                    .name("testkit-ws-accept".into())
                    .spawn(move || ws::accept_loop(ws_listener, &shared))?,
            );
        }
        Ok(TestServer {
            addr,
            ws_addr,
            shared,
            threads,
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The WebSocket front's address (`ws://ADDR/ws`), when started with
    /// [`TestServer::start_with_ws`].
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws_addr
    }

    /// Open connections the Hub knows (joined or not).
    pub fn connections(&self) -> usize {
        self.shared.lock().hub.len()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the acceptors, blocked in accept(2), with a connection of our own.
        for addr in std::iter::once(self.addr).chain(self.ws_addr) {
            let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        // Tell every client, then give the writers a moment to deliver it before forcing the
        // sockets shut (a stalled client must not keep a test waiting).
        let conns: Vec<Arc<Connection>> = {
            let mut state = self.shared.lock();
            let mut out = Outbox::new();
            state.hub.shutdown(&mut out);
            state.dispatch(&mut out);
            state.conns.0.values().cloned().collect()
        };
        let deadline = Instant::now() + Duration::from_millis(500);
        while Instant::now() < deadline && conns.iter().any(|c| !c.is_written()) {
            std::thread::sleep(Duration::from_millis(5));
        }
        for conn in conns {
            conn.abort();
        }
    }
}

/// The Hub and the connections it routes to, behind one lock: each Hub call and the queueing of
/// its Outbox happen under it, so every member of a room queues broadcasts in the same order.
pub(crate) struct State {
    hub: Hub,
    conns: Conns,
}

/// Every connection's queue, by id: where chat-core's executor puts the Hub's frames.
#[derive(Default)]
pub(crate) struct Conns(HashMap<chat_core::ConnId, Arc<Connection>>);

impl chat_core::Sink for Conns {
    fn send(&mut self, to: chat_core::ConnId, frame: chat_core::Frame) -> Result<(), BacklogFull> {
        match self.0.get(&to) {
            Some(conn) => conn.push(frame),
            None => Ok(()),
        }
    }

    fn close(&mut self, conn: chat_core::ConnId, reason: chat_core::CloseReason) {
        if let Some(conn) = self.0.get(&conn) {
            conn.close_for(reason);
        }
    }

    fn cut(&mut self, conn: chat_core::ConnId) {
        if let Some(conn) = self.0.get(&conn) {
            conn.abort();
        }
    }
}

impl State {
    /// Carries out an Outbox (chat-core's executor): frames go to the connections' queues
    /// (never blocking), closes are queued behind them, a connection whose socket refused more
    /// than the backlog is cut off and disconnected.
    fn dispatch(&mut self, out: &mut Outbox) {
        chat_core::carry_out(&mut self.hub, out, &mut self.conns);
    }
}

fn accept_loop(listener: TcpListener, shared: &Arc<Shared>) {
    loop {
        let accepted = listener.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) if chat_core::net::is_transient_accept_error(&e) => continue,
            Err(_) => {
                // Out of descriptors or similar: back off instead of spinning.
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        match conn::spawn(stream, shared) {
            Ok(conn) if shared.one_at_a_time => {
                // The next connection waits in the listen backlog until this one is over.
                while !conn.is_finished() && !shared.stopping.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            Ok(_) => {}
            Err(e) => eprintln!("testkit: cannot start a connection's threads: {e}"),
        }
    }
}

/// Enforces the idle timeout, looking every 20 ms (plenty for timeouts counted in seconds).
fn tick_loop(shared: &Arc<Shared>) {
    while !shared.stopping.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
        let mut state = shared.lock();
        let mut out = Outbox::new();
        state.hub.tick(Instant::now(), &mut out);
        state.dispatch(&mut out);
    }
}

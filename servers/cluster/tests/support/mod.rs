//! What the cluster's tests share: a throw-away `redis-server` that can be stopped and started
//! again on the same port, chat-cluster nodes on it (or on their in-process bus), a tiny HTTP
//! GET, and a WebSocket client (`ws.rs`).
//!
//! Every process is killed on drop, also when a test panics. Each test uses its own Redis (on
//! a free port) and its own key prefix.

#![allow(dead_code)] // each test file uses a part

pub mod browser;
pub mod nginx;
pub mod ws;

use loadgen::sweep::redis_process_id;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The chat-cluster binary under test.
pub const PROGRAM: &str = env!("CARGO_BIN_EXE_chat-cluster");

/// A redis-server child on a fixed loopback port, killed on drop.
pub struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    /// Starts redis-server on a free port, or returns `None` when it is not installed (outside
    /// CI; in CI, which installs it, a missing Redis fails the test).
    pub fn start() -> Option<Redis> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            return not_installed("redis-server");
        }
        // A free port can be lost to another test's server before ours binds it (see
        // `loadgen::sweep::RedisServer`): then try another.
        let mut why = String::new();
        for _ in 0..5 {
            let mut redis = Redis {
                port: free_port(),
                child: None,
            };
            match redis.try_start() {
                Ok(()) => return Some(redis),
                Err(lost) => why = lost,
            }
        }
        panic!("redis-server did not start in 5 tries: {why}");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Kills it (SIGKILL: what it had in memory is gone, as after a crash).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again) on the same port, empty, and waits until it answers.
    pub fn start_again(&mut self) {
        if let Err(why) = self.try_start() {
            panic!("redis-server did not start again: {why}");
        }
    }

    /// Starts it on its port and waits until the server answering there is this child (asked
    /// its pid): `Err` when it exited at start or another server holds the port.
    fn try_start(&mut self) -> Result<(), String> {
        self.stop();
        let port = self.port.to_string();
        let child = Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--maxclients", "1000"])
            .stdin(Stdio::null())
            .stdout(if std::env::var_os("CLUSTER_TEST_LOGS").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let pid = child.id();
        let addr = self.addr();
        let child = self.child.insert(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("it exited at start on port {port} ({status})"));
            }
            match redis_process_id(addr) {
                Some(answering) if answering == pid => return Ok(()),
                Some(other) => return Err(format!("port {port} is held by redis pid {other}")),
                None => assert!(
                    Instant::now() < deadline,
                    "redis-server did not accept within 10 s"
                ),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One command, inline, and its first reply line (for assertions on the shared state).
    pub fn command(&self, line: &str) -> String {
        let mut stream = TcpStream::connect(self.addr()).expect("connect to redis");
        stream
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("send to redis");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut reply = String::new();
        let _ = BufReader::new(stream).read_line(&mut reply);
        reply.trim_end().to_string()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where a program a test needs (`what`) is not installed: outside CI the test says so and is
/// skipped (`None`); in CI, which installs every one of them, it fails.
pub fn not_installed<T>(what: &str) -> Option<T> {
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(!in_ci, "{what} is missing, and CI must install it");
    eprintln!("{what} is not installed: skipping this test");
    None
}

/// A free port on 127.0.0.1, asked of the kernel, for a program that cannot pick its own and
/// report it (redis-server, nginx, chromedriver); held for the rest of the run, so that no other
/// test's server is given it first (see `loadgen::sweep::free_port`).
pub fn free_port() -> u16 {
    loadgen::sweep::free_port().expect("a free port")
}

/// A key prefix no other test of this run uses.
pub fn unique_prefix(test: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "t{}-{}-{test}:",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A chat-cluster process, with its addresses, killed on drop.
pub struct Node {
    child: Child,
    pub addr: SocketAddr,
    /// Where its `/health` and `/metrics` are.
    pub http: SocketAddr,
}

impl Node {
    /// Starts chat-cluster on free ports (chat and HTTP) with `args`, and reads its
    /// `listening on` and `http on` lines.
    pub fn start(redis: &Redis, prefix: &str, args: &[&str]) -> Node {
        let url = redis.url();
        let bus = ["--redis", &url, "--redis-prefix", prefix];
        Node::spawn(&[&bus[..], args].concat())
    }

    /// Starts a node on its in-process bus (`--redis memory`: no Redis needed) on free ports;
    /// its `http` address serves `/ws` and the browser client. (The test of `loadgen check
    /// --transport ws` starts its node with this.)
    pub fn memory(args: &[&str]) -> Node {
        Node::spawn(&[&["--redis", "memory"][..], args].concat())
    }

    fn spawn(args: &[&str]) -> Node {
        let mut child = Command::new(PROGRAM)
            .args(["--addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // CLUSTER_TEST_LOGS=1 shows the nodes' logs (with RUST_LOG=debug, everything).
            .stderr(if std::env::var_os("CLUSTER_TEST_LOGS").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("chat-cluster starts");
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok).unwrap_or_default();
            let second = lines.next().and_then(Result::ok).unwrap_or_default();
            let _ = tx.send((first, second));
            for _ in lines {} // keep draining
        });
        let (first, second) = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("chat-cluster prints its addresses");
        let addr = first
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("expected `listening on ADDR`, got {first:?}"));
        let http = second
            .strip_prefix("http on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("expected `http on ADDR`, got {second:?}"));
        Node { child, addr, http }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no goodbye to anyone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits up to `within`; the exit status, or `None` if it had to be killed.
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        // SAFETY: signals our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                self.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `GET path` over HTTP/1.0: the status code and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Asserts that `/metrics` at `http` answers 200 with every one of `expected` (each a line, or
/// the start of one).
pub fn assert_metrics(http: SocketAddr, expected: &[&str]) {
    let (status, text) = http_get(http, "/metrics");
    assert_eq!(status, 200);
    for expected in expected {
        assert!(text.contains(expected), "no {expected:?} in:\n{text}");
    }
}

/// Waits until `check` holds, polling every 50 ms, for at most `within`.
pub fn eventually(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The limits the conformance tests' nodes run with, told to the checker (as
/// `assert_conformance` does): [`limits_checked`].
pub const LIMITS: [&str; 8] = [
    "--max-conns",
    "32",
    "--max-line",
    "4096",
    "--idle-timeout",
    "2",
    "--max-backlog",
    "262144",
];

/// The checker's settings for nodes started with [`LIMITS`].
pub fn limits_checked() -> loadgen::check::CheckConfig {
    loadgen::check::CheckConfig {
        max_line: Some(4096),
        max_conns: Some(32),
        idle_timeout: Some(Duration::from_secs(2)),
        max_backlog: Some(262_144),
        ..loadgen::check::CheckConfig::default()
    }
}

/// `own`'s results replace `report`'s for `scenario` (a scenario run on a node of its own,
/// started with the limit it needs); then every scenario must have passed, none skipped but
/// those the checker runs over TCP only.
pub fn assert_every_scenario_passes(
    mut report: loadgen::check::CheckReport,
    limited: Vec<(&str, loadgen::check::CheckReport)>,
    what: &str,
) -> loadgen::check::CheckReport {
    for (scenario, own) in limited {
        report.results.retain(|r| r.name != scenario);
        report.results.extend(own.results);
    }
    println!("{what}:\n{report}");
    let failures: Vec<String> = report.failures().map(ToString::to_string).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Over WebSocket the checker leaves out what only TCP has (line ends, half-close, a line in
    // pieces), each with its reason; its `ws.*` scenarios test the frames instead. Any other
    // skip is a scenario this suite forgot to enable.
    let skipped: Vec<String> = report
        .results
        .iter()
        .filter(|r| {
            matches!(&r.outcome, loadgen::check::Outcome::Skip(why) if !why.starts_with("TCP only"))
        })
        .map(ToString::to_string)
        .collect();
    assert!(skipped.is_empty(), "skipped: {}", skipped.join("\n"));
    report
}

//! Starting a throw-away `redis-server` for the comparison, and always stopping it.
//!
//! Redis cannot be told to pick its own port and report it (`--port 0` disables TCP), so we
//! ask the kernel for a free port by binding one, release it, and hand it to Redis. Nothing is
//! persisted (`--save ""`, no AOF), and it listens on loopback only.
//!
//! A port is free when the kernel hands it out, not necessarily when Redis binds it a moment
//! later: another thread (tests run in parallel) may have been handed the same number and
//! started its own Redis there. Ours then fails to bind and exits, and the first server to
//! answer on the port is somebody else's, which disappears when its owner is done. So the
//! server that answers is asked its process id (`INFO server`), and a start that lost the port
//! is tried again on another.
//!
//! Redis writes its log to a temporary file beside the process (removed on drop), so that a
//! test that finds the server gone can say why: [`RedisServer::describe`].

use crate::affinity::CpuSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A running redis-server child. Killed on drop.
pub struct RedisServer {
    child: Child,
    addr: SocketAddr,
    /// Redis's stdout and stderr: its log.
    log: PathBuf,
}

/// How many ports a start tries before it gives up.
const ATTEMPTS: usize = 5;

impl RedisServer {
    /// Starts `program` on a free loopback port and waits until it accepts connections and
    /// answers with its own process id.
    pub fn start(program: &Path) -> Result<RedisServer, String> {
        RedisServer::start_pinned(program, None)
    }

    /// [`start`](Self::start), the server running only on `cpus` when given.
    pub fn start_pinned(program: &Path, cpus: Option<&CpuSet>) -> Result<RedisServer, String> {
        let mut why = String::new();
        for _ in 0..ATTEMPTS {
            match RedisServer::start_on(program, free_port()?, cpus)? {
                Ok(server) => return Ok(server),
                Err(lost) => why = lost,
            }
        }
        Err(format!(
            "redis-server did not start in {ATTEMPTS} tries: {why}"
        ))
    }

    /// One try on `port`: `Err` when it cannot be started at all, `Ok(Err(why))` when it lost
    /// the port (it exited at start, or another server answers there).
    fn start_on(
        program: &Path,
        port: u16,
        cpus: Option<&CpuSet>,
    ) -> Result<Result<RedisServer, String>, String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log =
            std::env::temp_dir().join(format!("c10k-redis-{}-{port}.log", std::process::id()));
        let file = File::create(&log)
            .map_err(|e| format!("cannot create Redis's log {}: {e}", log.display()))?;
        let file_too = file
            .try_clone()
            .map_err(|e| format!("cannot share Redis's log: {e}"))?;
        let mut command = Command::new(program);
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--maxclients", "100000", "--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(file_too);
        if let Some(cpus) = cpus {
            cpus.pin(&mut command);
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let mut server = RedisServer { child, addr, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Ok(Err(format!(
                    "it exited at start on port {port} ({status}); its log ends:\n{}",
                    server.log_tail()
                )));
            }
            match process_id(addr) {
                Some(pid) if pid == server.pid() => return Ok(Ok(server)),
                Some(pid) => {
                    return Ok(Err(format!(
                        "port {port} was taken by another redis-server (pid {pid})"
                    )))
                }
                None if Instant::now() > deadline => {
                    return Err("redis-server did not accept connections within 10 s".into())
                }
                None => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// For a failed test's message: whether the server still runs (and answers as itself), and
    /// the end of its log.
    pub fn describe(&mut self) -> String {
        let state = match self.child.try_wait() {
            Ok(Some(status)) => format!("redis-server (pid {}) has exited: {status}", self.pid()),
            Ok(None) => match process_id(self.addr) {
                Some(pid) if pid == self.pid() => format!("redis-server runs at {}", self.addr),
                Some(pid) => format!(
                    "redis-server (pid {}) runs, but pid {pid} answers at {}",
                    self.pid(),
                    self.addr
                ),
                None => format!(
                    "redis-server (pid {}) runs, but nothing answers at {}",
                    self.pid(),
                    self.addr
                ),
            },
            Err(e) => format!("redis-server (pid {}): {e}", self.pid()),
        };
        format!("{state}; its log ends:\n{}", self.log_tail())
    }

    /// The last lines of Redis's log.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A loopback port the kernel calls free, for a program that cannot pick its own and report it
/// (redis-server, nginx, chromedriver).
///
/// The port stays bound for the rest of this process's life, by a socket that never listens and
/// sets `SO_REUSEADDR`: the kernel then hands it to nobody who asks for any free port (another
/// test's server on port 0 could otherwise take it between now and the program's start, and the
/// program would fail to bind, or a check would reach the wrong server), while the program, which
/// binds that very port with `SO_REUSEADDR` as Redis, nginx and chromedriver do, still gets it.
pub fn free_port() -> Result<u16, String> {
    static HELD: Mutex<Vec<socket2::Socket>> = Mutex::new(Vec::new());
    let hold = || -> std::io::Result<(socket2::Socket, u16)> {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
        let port = socket.local_addr()?.as_socket().map_or(0, |a| a.port());
        Ok((socket, port))
    };
    let (socket, port) = hold().map_err(|e| format!("no free loopback port: {e}"))?;
    HELD.lock().unwrap_or_else(|e| e.into_inner()).push(socket);
    Ok(port)
}

/// The process id of the Redis answering at `addr` (from `INFO server`), or `None` while
/// nothing answers there yet.
pub fn process_id(addr: SocketAddr) -> Option<u32> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(b"INFO server\r\n").ok()?;
    // The reply is one bulk string of `field:value` lines; `process_id` is among the first.
    BufReader::new(stream)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("process_id:")?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::models::redis_server_path;

    /// redis-server, or `None` (with the reason) where it is not installed, outside CI.
    fn program() -> Option<std::path::PathBuf> {
        let program = redis_server_path();
        if program.is_none() {
            let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(!in_ci, "CI must install redis-server");
            eprintln!("redis-server is not installed: skipping");
        }
        program
    }

    /// A start that finds another Redis on its port says so, instead of taking that server
    /// for its own (the race that let a test measure a server that was killed under it).
    #[test]
    fn a_port_taken_by_another_redis_is_noticed() {
        let Some(program) = program() else { return };
        let first = RedisServer::start(&program).expect("the first redis-server");
        assert_eq!(process_id(first.addr()), Some(first.pid()));
        let lost = RedisServer::start_on(&program, first.addr().port(), None).expect("it runs");
        let why = lost.err().expect("the second start loses the port");
        assert!(
            why.contains("exited at start") || why.contains("another redis-server"),
            "{why}"
        );
        // The first is untouched, and a start without a port given finds a port of its own.
        assert_eq!(process_id(first.addr()), Some(first.pid()));
        let second = RedisServer::start(&program).expect("a second redis-server");
        assert_ne!(second.addr(), first.addr());
        assert_eq!(process_id(second.addr()), Some(second.pid()));
    }

    /// A pinned Redis runs every thread (its I/O and background threads too) on its set.
    #[test]
    fn a_pinned_redis_stays_on_its_cpus() {
        let Some(program) = program() else { return };
        let available = CpuSet::available().expect("sched_getaffinity");
        let one = CpuSet::parse(&available.cpus()[0].to_string()).expect("one CPU");
        let server = RedisServer::start_pinned(&program, Some(&one)).expect("redis-server");
        let sets = CpuSet::of_threads(server.pid()).expect("/proc/PID/task");
        assert!(!sets.is_empty());
        assert!(sets.iter().all(|set| *set == one), "{sets:?}");
    }

    /// A test that finds its Redis gone can say what became of it: `describe` tells a live
    /// server from a dead one, and shows the end of Redis's own log.
    #[test]
    fn describe_tells_what_became_of_the_server() {
        let Some(program) = program() else { return };
        let mut server = RedisServer::start(&program).expect("redis-server");
        let live = server.describe();
        assert!(live.contains("redis-server runs at"), "{live}");
        assert!(live.contains("Ready to accept connections"), "{live}");
        server.child.kill().expect("kill");
        server.child.wait().expect("wait");
        let dead = server.describe();
        assert!(dead.contains("has exited"), "{dead}");
    }
}

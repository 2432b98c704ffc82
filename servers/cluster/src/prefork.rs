//! `--processes N`: the prefork pattern. One supervisor process, N worker processes serving
//! one port.
//!
//! One process holds at most as many connections as its open-file limit (here 20,000), and
//! uses the cores its runtime threads get. Several processes on one port get past both. The
//! classic way (Apache's prefork, nginx's workers) is to open the listening socket once and
//! `fork`: the children inherit it and all `accept` from it. Two things make us do it a little
//! differently:
//!
//! - **Our state cannot just fork.** A forked child starts with a *copy* of the parent's
//!   memory: a chat room in it would be a different room in every child, and a nickname taken
//!   in one child would be free in the next. That is why the workers keep nothing of the chat
//!   to themselves: each is a node of the cluster, sharing rooms and nicknames through Redis.
//!   (And `fork` in a process that already runs threads, as a tokio runtime does, copies only
//!   the calling thread, with every lock the others held: the supervisor therefore starts its
//!   workers with `exec` of its own binary, before it has any runtime.)
//! - **SO_REUSEPORT instead of one inherited socket.** Each worker binds and listens on the
//!   same port with SO_REUSEPORT, and the kernel spreads new connections evenly over the
//!   listening sockets by a hash of the addresses; with one shared socket, the worker whose
//!   `epoll_wait` wakes first takes the connection, which loads them unevenly.
//!
//! Port 0 needs care: the supervisor binds a socket with SO_REUSEPORT to learn the real port
//! and keeps it *bound but not listening* while it runs. That reserves the port for restarts,
//! and a socket that does not listen is not in the kernel's group of listeners, so it takes no
//! share of the connections (a listening one would, and never accept them). The workers get
//! the real port on their command line. The HTTP port is shared the same way, so each request
//! reaches one worker (`/health` names it).
//!
//! The supervisor prints `listening on` (and `http on`) once every worker listens, restarts a
//! worker that dies, forwards SIGTERM/SIGINT, and exits 0 within 2 s of it.

use crate::args::{generated_node_id, ClusterArgs};
use chat_core::Shutdown;
use socket2::{Domain, Protocol, Socket, Type};
use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a worker may take to print `listening on`.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A worker that dies sooner than this after starting is restarted only after this long, so
/// a worker that cannot start (bad flags, no memory) is not restarted in a tight loop.
const MIN_LIFETIME: Duration = Duration::from_secs(1);

/// After SIGTERM, how long the workers get to finish before they are killed (the supervisor
/// itself must be gone within 2 s).
const STOP_GRACE: Duration = Duration::from_millis(1700);

/// One worker process.
struct Worker {
    index: usize,
    child: Child,
    started: Instant,
}

/// Everything a worker is started with.
struct Plan {
    /// The user's flags, passed on as they are.
    args: Vec<std::ffi::OsString>,
    addr: SocketAddr,
    http: Option<SocketAddr>,
    /// Workers are `<base>-<index>`.
    base_id: String,
}

/// Runs the supervisor until SIGTERM/SIGINT; returns the exit status.
pub fn supervise(args: &ClusterArgs) -> ExitCode {
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &ClusterArgs) -> anyhow::Result<()> {
    let chat = reserve(args.server.addr)?;
    let http = args.http_addr.0.map(reserve).transpose()?;
    let plan = Plan {
        args: std::env::args_os().skip(1).collect(),
        addr: local_addr(&chat)?,
        http: http.as_ref().map(local_addr).transpose()?,
        base_id: args.node_id.clone().unwrap_or_else(generated_node_id),
    };
    let shutdown = Shutdown::on_signal(|| {})?;

    let mut workers = Vec::with_capacity(args.processes);
    for index in 0..args.processes {
        match spawn_ready(&plan, index) {
            Ok(worker) => workers.push(worker),
            Err(e) => {
                stop_all(&mut workers);
                return Err(e);
            }
        }
    }
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "listening on {}", plan.addr)?;
    if let Some(http) = plan.http {
        writeln!(stdout, "http on {http}")?;
    }
    stdout.flush()?;
    drop(stdout);
    tracing::info!("{} workers on {}", workers.len(), plan.addr);

    // Supervise: a dead worker is replaced (after a pause if it died young).
    let mut restarts: Vec<(usize, Instant)> = Vec::new();
    while !shutdown.is_requested() {
        std::thread::sleep(Duration::from_millis(50));
        let mut alive = Vec::with_capacity(workers.len());
        for mut worker in workers.drain(..) {
            match worker.child.try_wait() {
                Ok(None) => alive.push(worker),
                Ok(Some(status)) => {
                    tracing::warn!("worker {} exited ({status}); restarting", worker.index);
                    let at = if worker.started.elapsed() < MIN_LIFETIME {
                        Instant::now() + MIN_LIFETIME
                    } else {
                        Instant::now()
                    };
                    restarts.push((worker.index, at));
                }
                Err(e) => {
                    tracing::warn!("worker {}: {e}", worker.index);
                    alive.push(worker);
                }
            }
        }
        workers = alive;
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = restarts.drain(..).partition(|(_, at)| *at <= now);
        restarts = later;
        for (index, _) in due {
            match spawn(&plan, index) {
                Ok((worker, _ready)) => workers.push(worker),
                Err(e) => {
                    tracing::warn!("cannot restart worker {index}: {e}");
                    restarts.push((index, now + MIN_LIFETIME));
                }
            }
        }
    }
    stop_all(&mut workers);
    drop(chat);
    drop(http);
    Ok(())
}

/// Binds `addr` with SO_REUSEPORT without listening: learns the real port, reserves it, and
/// takes no connections.
fn reserve(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

fn local_addr(socket: &Socket) -> io::Result<SocketAddr> {
    socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("not an IP socket"))
}

/// Starts worker `index` and waits until it listens.
fn spawn_ready(plan: &Plan, index: usize) -> anyhow::Result<Worker> {
    let (mut worker, ready) = spawn(plan, index)?;
    match ready.recv_timeout(START_TIMEOUT) {
        Ok(()) => Ok(worker),
        Err(_) => {
            let _ = worker.child.kill();
            let _ = worker.child.wait();
            anyhow::bail!("worker {index} did not start listening (see its log above)")
        }
    }
}

/// Starts worker `index`: this binary, with the user's flags, then the real ports, SO_REUSEPORT
/// and its own node id. Returns it and a channel that fires when it prints `listening on`.
fn spawn(plan: &Plan, index: usize) -> io::Result<(Worker, mpsc::Receiver<()>)> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args(&plan.args)
        .arg("--addr")
        .arg(plan.addr.to_string())
        .arg("--http-addr")
        .arg(plan.http.map_or("off".to_string(), |a| a.to_string()))
        .args(["--reuse-port", "true", "--processes", "1"])
        .arg("--node-id")
        .arg(format!("{}-{index}", plan.base_id))
        .arg("--worker")
        .arg(index.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    // SAFETY: prctl is async-signal-safe; it only asks the kernel to SIGTERM the worker when
    // its parent (this supervisor) dies, so that a killed supervisor leaves no orphans.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    let (ready_tx, ready_rx) = mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        // Reads the worker's announcements (the supervisor prints its own, once) and then
        // keeps draining, so a worker never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("listening on ") {
                    let _ = ready_tx.send(());
                }
            }
        });
    }
    let worker = Worker {
        index,
        child,
        started: Instant::now(),
    };
    Ok((worker, ready_rx))
}

/// SIGTERM to every worker; SIGKILL to those still running after the grace period.
fn stop_all(workers: &mut [Worker]) {
    for worker in workers.iter() {
        if let Ok(pid) = i32::try_from(worker.child.id()) {
            // SAFETY: kill only sends a signal to our own child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }
    let deadline = Instant::now() + STOP_GRACE;
    for worker in workers.iter_mut() {
        loop {
            match worker.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = worker.child.kill();
                    let _ = worker.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

//! The operating-system side that every server shares: the listening socket, socket options,
//! the open-file limit, the accept-error ladder, the `listening on` line, logging, and the shape
//! of every server's `main`.
//!
//! This module and [`shutdown`](crate::shutdown) are the only parts of `chat-core` that talk to
//! the OS, and only about sockets a server hands them; the protocol, decoder, Hub and executor
//! do no I/O. Waiting for sockets, the heart of each I/O model, stays in the servers.

use crate::config::SocketOptions;
use crate::shutdown::Shutdown;
use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};
use std::io::{self, IsTerminal, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::Duration;

/// Creates the listening socket with socket2, because std's `TcpListener::bind` fixes the
/// backlog at 128 and sets no options: with 10,000 clients connecting at once, a backlog of 128
/// makes the kernel drop SYNs and clients wait a whole retransmission timeout (1 s, then 3 s).
pub fn bind_listener(addr: SocketAddr, opts: &SocketOptions) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(opts.reuse_addr)?;
    if opts.reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(opts.backlog)?;
    Ok(socket.into())
}

/// One `read(2)` on a socket, whoever owns it: what chat-async does inside tokio's `try_io`,
/// which hands over the readiness and expects the raw call (std's `Read` needs a std socket).
pub fn recv<S: AsFd>(socket: &S, buf: &mut [u8]) -> io::Result<usize> {
    use std::io::Read;
    (&*SockRef::from(socket)).read(buf)
}

/// Applies the per-connection options to an accepted socket (std, mio or tokio: anything with a
/// file descriptor). With `RUST_LOG=debug`, logs what the kernel made of them ([`read_options`]).
pub fn configure_accepted<S: AsFd>(stream: &S, opts: &SocketOptions) -> io::Result<()> {
    let sock = SockRef::from(stream);
    sock.set_nodelay(opts.nodelay)?;
    if let Some(secs) = opts.keepalive {
        let mut keepalive = TcpKeepalive::new().with_time(Duration::from_secs(secs));
        if let Some(secs) = opts.keepalive_interval {
            keepalive = keepalive.with_interval(Duration::from_secs(secs));
        }
        if let Some(probes) = opts.keepalive_count {
            keepalive = keepalive.with_retries(probes);
        }
        sock.set_tcp_keepalive(&keepalive)?;
    }
    if let Some(bytes) = opts.recv_buffer {
        sock.set_recv_buffer_size(bytes)?;
    }
    if let Some(bytes) = opts.send_buffer {
        sock.set_send_buffer_size(bytes)?;
    }
    if let Some(secs) = opts.linger {
        sock.set_linger(Some(Duration::from_secs(secs)))?;
    }
    if tracing::enabled!(tracing::Level::DEBUG) {
        match read_options(stream) {
            Ok(applied) => tracing::debug!("socket options (getsockopt): {applied}"),
            Err(e) => tracing::debug!("cannot read the socket options back: {e}"),
        }
    }
    Ok(())
}

/// A socket's options as the kernel reports them (`getsockopt`): what was applied, which is not
/// always what was asked (Linux doubles a buffer size, for its own bookkeeping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedOptions {
    /// `TCP_NODELAY`: small writes leave at once.
    pub nodelay: bool,
    /// `SO_KEEPALIVE`, with its timers, or `None` when it is off.
    pub keepalive: Option<KeepaliveTimers>,
    /// `SO_RCVBUF` in bytes.
    pub recv_buffer: usize,
    /// `SO_SNDBUF` in bytes.
    pub send_buffer: usize,
    /// `SO_LINGER`: how long `close()` waits for unsent data, or `None` when it is off.
    pub linger: Option<Duration>,
}

/// The three timers of TCP keepalive (`man 7 tcp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepaliveTimers {
    /// `TCP_KEEPIDLE`: silence before the first probe.
    pub idle: Duration,
    /// `TCP_KEEPINTVL`: time between probes.
    pub interval: Duration,
    /// `TCP_KEEPCNT`: unanswered probes before the connection is declared dead.
    pub count: u32,
}

/// Reads a socket's options back from the kernel with `getsockopt`.
pub fn read_options<S: AsFd>(stream: &S) -> io::Result<AppliedOptions> {
    let sock = SockRef::from(stream);
    let keepalive = match sock.keepalive()? {
        true => Some(KeepaliveTimers {
            idle: sock.keepalive_time()?,
            interval: sock.keepalive_interval()?,
            count: sock.keepalive_retries()?,
        }),
        false => None,
    };
    Ok(AppliedOptions {
        nodelay: sock.nodelay()?,
        keepalive,
        recv_buffer: sock.recv_buffer_size()?,
        send_buffer: sock.send_buffer_size()?,
        linger: sock.linger()?,
    })
}

/// The options by their C names, as `man 7 socket` and `man 7 tcp` spell them.
impl std::fmt::Display for AppliedOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TCP_NODELAY={}", u8::from(self.nodelay))?;
        match self.keepalive {
            Some(k) => write!(
                f,
                " SO_KEEPALIVE=1 TCP_KEEPIDLE={} TCP_KEEPINTVL={} TCP_KEEPCNT={}",
                k.idle.as_secs(),
                k.interval.as_secs(),
                k.count
            )?,
            None => write!(f, " SO_KEEPALIVE=0")?,
        }
        write!(
            f,
            " SO_RCVBUF={} SO_SNDBUF={}",
            self.recv_buffer, self.send_buffer
        )?;
        match self.linger {
            Some(t) => write!(f, " SO_LINGER={}", t.as_secs()),
            None => write!(f, " SO_LINGER=off"),
        }
    }
}

/// Raises the open-file soft limit to the hard limit and returns the new soft limit.
///
/// Every connection is a file descriptor, and the usual soft limit (1024) is far below 10,000.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(limit.rlim_cur)
}

/// Prints the one line `PROTOCOL.md` asks for, `listening on ADDR`, with the real address, and
/// flushes it: scripts and tests start a server on port 0 and read the port from this line.
pub fn announce(addr: SocketAddr) {
    let mut stdout = io::stdout().lock();
    let _ = writeln!(stdout, "listening on {addr}");
    let _ = stdout.flush();
}

/// Logs to stderr (stdout carries only the `listening on` line). `RUST_LOG` overrides the level,
/// e.g. `RUST_LOG=debug`.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .with_target(false)
        // A closed stderr (a server piped into `head`) must not turn a log line into a panic.
        .log_internal_errors(false)
        .try_init();
}

/// How long accepting pauses after an `accept` error that retrying at once would only repeat
/// (see [`accept_failed`]). The clients already connected are served meanwhile, and one of them
/// leaving frees the descriptor the next try needs.
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// How long a connection being closed may take to read its last frames (`bye`, an error) and hang
/// up before the server drops it anyway: a client that stopped reading must not hold its
/// descriptor forever.
pub const CLOSE_LINGER: Duration = Duration::from_secs(5);

/// What a server does after `accept` failed: the accept-error ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptFailed {
    /// Only the connection being accepted failed (the client reset it before we took it,
    /// EPROTO, EPERM from a firewall, EINTR): go on with the next one at once.
    Retry,
    /// Out of descriptors (EMFILE: this process, ENFILE: the whole system) or of socket memory
    /// (ENOBUFS, ENOMEM), or something unexpected: pause accepting for [`ACCEPT_PAUSE`]. The
    /// pending connection stays in the listen backlog, so the listener stays readable, and a
    /// loop that retried at once would spin a core at 100% without serving anyone.
    Pause,
}

/// Climbs the accept-error ladder for `err` (logging what deserves it). `WouldBlock` is not an
/// error for a non-blocking listener: callers treat it as "nothing left to accept" first.
pub fn accept_failed(err: &io::Error) -> AcceptFailed {
    if is_transient_accept_error(err) {
        return AcceptFailed::Retry;
    }
    if is_fd_exhaustion(err) {
        tracing::warn!("accept: {err}; pausing accept for {ACCEPT_PAUSE:?}");
    } else {
        tracing::error!("accept: {err}; pausing accept for {ACCEPT_PAUSE:?}");
    }
    AcceptFailed::Pause
}

/// Whether an `accept` error means "out of file descriptors" (EMFILE, ENFILE) or out of socket
/// memory (ENOBUFS, ENOMEM): they last until something is freed. The event loops meet it with a
/// spare descriptor before pausing (see chat-readiness' `SpareFd`).
pub fn is_fd_exhaustion(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}

/// Whether an `accept` error concerns only the connection being accepted (the first rung of
/// [`accept_failed`]), so the server just moves on to the next one.
pub fn is_transient_accept_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    ) || matches!(err.raw_os_error(), Some(libc::EPROTO) | Some(libc::EPERM))
}

/// The accept loop's step for the blocking servers: waits for the next connection, climbing
/// the ladder of [`accept_failed`] on errors. `None` once a stop was requested (the signal
/// watcher wakes a blocked `accept` by connecting to [`loopback`] of the listener).
pub fn accept_blocking(
    listener: &TcpListener,
    shutdown: &Shutdown,
) -> Option<(TcpStream, SocketAddr)> {
    while !shutdown.is_requested() {
        match listener.accept() {
            Ok(accepted) => return Some(accepted),
            Err(e) => {
                if accept_failed(&e) == AcceptFailed::Pause {
                    std::thread::sleep(ACCEPT_PAUSE);
                }
            }
        }
    }
    None
}

/// The address to connect to in order to reach our own listener: `addr` itself, unless it is
/// the unspecified address (`0.0.0.0`, `::`), which can be bound but not connected to.
pub fn loopback(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

/// Wakes a thread blocked in `accept` on our own listener at `addr`, by connecting to it (the
/// signal watcher of the blocking servers calls it).
pub fn wake_acceptor(addr: SocketAddr) {
    let _ = TcpStream::connect_timeout(&loopback(addr), Duration::from_secs(1));
}

/// Every server's `main`: parses its flags `A` (`--help` and a bad flag exit here, with clap's
/// message), starts logging, runs `serve`, and turns its outcome into the exit status.
pub fn main<A: clap::Parser>(serve: impl FnOnce(A) -> io::Result<()>) -> ExitCode {
    let args = A::parse();
    init_logging();
    exit_status(serve(args))
}

/// How many cores this process may use (the default of the flags that size thread pools).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The end of every server's `main`: exit status 0 when `served` is `Ok`, else the error on
/// stderr and status 1.
pub fn exit_status(served: io::Result<()>) -> ExitCode {
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("cannot serve: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An accepted loopback connection, the client end kept open beside it.
    fn accepted() -> (TcpStream, TcpStream) {
        let listener = bind_listener(
            "127.0.0.1:0".parse().expect("addr"),
            &SocketOptions::default(),
        )
        .expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        (server, client)
    }

    /// Every option given is what the kernel reports back: the keepalive timers (interval and
    /// count included), the linger time, the buffers (at least what was asked: Linux doubles
    /// them) and Nagle off.
    #[test]
    fn the_kernel_reports_the_options_applied() {
        let (server, _client) = accepted();
        let opts = SocketOptions {
            keepalive: Some(30),
            keepalive_interval: Some(5),
            keepalive_count: Some(3),
            recv_buffer: Some(4096),
            send_buffer: Some(4096),
            linger: Some(2),
            ..SocketOptions::default()
        };
        configure_accepted(&server, &opts).expect("configure");
        let applied = read_options(&server).expect("getsockopt");
        assert!(applied.nodelay);
        let timers = KeepaliveTimers {
            idle: Duration::from_secs(30),
            interval: Duration::from_secs(5),
            count: 3,
        };
        assert_eq!(applied.keepalive, Some(timers));
        assert_eq!(applied.linger, Some(Duration::from_secs(2)));
        assert!(applied.recv_buffer >= 4096, "{applied}");
        assert!(applied.send_buffer >= 4096, "{applied}");
        let line = applied.to_string();
        assert!(
            line.contains("TCP_KEEPIDLE=30 TCP_KEEPINTVL=5 TCP_KEEPCNT=3"),
            "{line}"
        );
        assert!(line.ends_with("SO_LINGER=2"), "{line}");
    }

    /// With nothing asked, keepalive and linger stay off, and the report says so.
    #[test]
    fn defaults_leave_keepalive_and_linger_off() {
        let (server, _client) = accepted();
        configure_accepted(&server, &SocketOptions::default()).expect("configure");
        let applied = read_options(&server).expect("getsockopt");
        assert_eq!(applied.keepalive, None);
        assert_eq!(applied.linger, None);
        let line = applied.to_string();
        assert!(line.contains("SO_KEEPALIVE=0"), "{line}");
        assert!(line.ends_with("SO_LINGER=off"), "{line}");
    }

    /// The interval and the count need `--keepalive`, and stay within the kernel's ranges.
    #[test]
    fn keepalive_timers_are_checked_by_the_parser() {
        use clap::Parser;
        #[derive(Parser)]
        struct Args {
            #[command(flatten)]
            socket: SocketOptions,
        }
        let parse = |args: &[&str]| Args::try_parse_from([&["server"], args].concat());
        let args = parse(&[
            "--keepalive",
            "30",
            "--keepalive-interval",
            "5",
            "--keepalive-count",
            "3",
        ])
        .expect("valid timers");
        assert_eq!(args.socket.keepalive_interval, Some(5));
        assert_eq!(args.socket.keepalive_count, Some(3));
        assert!(
            parse(&["--keepalive-interval", "5"]).is_err(),
            "without --keepalive"
        );
        assert!(parse(&["--keepalive", "30", "--keepalive-interval", "0"]).is_err());
        assert!(parse(&["--keepalive", "30", "--keepalive-count", "128"]).is_err());
    }
}

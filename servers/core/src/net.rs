//! The operating-system side that every server shares: the listening socket, socket options,
//! the open-file limit, the `listening on` line and logging.
//!
//! This module and [`shutdown`](crate::shutdown) are the only parts of `chat-core` that talk to
//! the OS; the protocol, decoder and Hub do no I/O.

use crate::config::SocketOptions;
use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};
use std::io::{self, IsTerminal, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsFd;
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

/// Applies the per-connection options to an accepted socket (std, mio or tokio: anything with a
/// file descriptor).
pub fn configure_accepted<S: AsFd>(stream: &S, opts: &SocketOptions) -> io::Result<()> {
    let sock = SockRef::from(stream);
    sock.set_nodelay(opts.nodelay)?;
    if let Some(secs) = opts.keepalive {
        sock.set_tcp_keepalive(&TcpKeepalive::new().with_time(Duration::from_secs(secs)))?;
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
    Ok(())
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

/// Prints the one line the spec asks for, `listening on ADDR`, with the real address, and
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

/// Whether an `accept` error means "out of file descriptors" (EMFILE: this process, ENFILE: the
/// whole system). A server must not treat it as fatal, and must not retry in a tight loop either:
/// the pending connection stays in the backlog, so the listener stays readable and a naive event
/// loop spins a core at 100%.
///
/// ENOBUFS and ENOMEM (the kernel is out of socket memory) are treated the same way: they last
/// until something is freed, so retrying at once would spin just as well.
pub fn is_fd_exhaustion(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}

/// Whether an `accept` error concerns only the connection being accepted (the client reset it
/// before we got to it, ...), so the server just moves on to the next one.
pub fn is_transient_accept_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    ) || matches!(err.raw_os_error(), Some(libc::EPROTO) | Some(libc::EPERM))
}

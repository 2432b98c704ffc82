//! Opening one connection without blocking: a non-blocking TCP connect (from a chosen source
//! address), finished when the socket turns writable. The handshake that follows (`join` →
//! `welcome`, or Redis' `HELLO 3` + `SUBSCRIBE`) is the event loop's, in `conn.rs`. Every way
//! this can fail is named, so the report can say *why* connections did not open.

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;

/// Why a connection did not open.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    /// A short category for the report: `refused`, `connect_timeout`, `join_timeout`, `reset`,
    /// `closed`, `no_local_port`, `local_fd_limit`, `io_error`, or the server's error code
    /// (`server_full`…).
    pub kind: String,
    /// The error text, for the examples in the report.
    pub detail: String,
}

impl Failure {
    pub(crate) fn new(kind: impl Into<String>, detail: impl Into<String>) -> Failure {
        Failure {
            kind: kind.into(),
            detail: detail.into(),
        }
    }

    pub(crate) fn io(stage: &str, e: &io::Error) -> Failure {
        Failure::new(io_kind(e), format!("{stage}: {e}"))
    }
}

/// Names an I/O error the way the report groups them.
pub(crate) fn io_kind(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE) => return "local_fd_limit",
        Some(libc::EADDRNOTAVAIL) => return "no_local_port",
        _ => {}
    }
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "refused",
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => "reset",
        io::ErrorKind::TimedOut => "connect_timeout",
        io::ErrorKind::UnexpectedEof => "closed",
        _ => "io_error",
    }
}

/// Starts connecting to `addr` from `source` (when given); the connect goes on in the kernel.
/// The returned socket is non-blocking, with `TCP_NODELAY` (small frames must leave at once, not
/// wait for Nagle's algorithm to batch them).
pub(crate) fn start(addr: SocketAddr, source: Option<IpAddr>) -> Result<TcpStream, Failure> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| Failure::io("socket", &e))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| Failure::io("socket", &e))?;
    let _ = socket.set_nodelay(true);
    if let Some(ip) = source {
        // IP_BIND_ADDRESS_NO_PORT: without it, bind() would pick the source port right away,
        // without knowing the destination, and run out of ports far sooner.
        let one: libc::c_int = 1;
        // SAFETY: setsockopt reads an int we own, on a descriptor we own.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        socket
            .bind(&SockAddr::from(SocketAddr::new(ip, 0)))
            .map_err(|e| Failure::io("bind", &e))?;
    }
    match socket.connect(&SockAddr::from(addr)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(Failure::io("connect", &e)),
    }
    Ok(socket.into())
}

/// After the socket turned writable: did the connect succeed?
pub(crate) fn finished(stream: &TcpStream) -> Result<(), Failure> {
    match stream.take_error() {
        Ok(None) => Ok(()),
        Ok(Some(e)) | Err(e) => Err(Failure::io("connect", &e)),
    }
}

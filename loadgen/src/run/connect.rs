//! Opening one connection: TCP connect (from a chosen source address), then the handshake
//! (`join` → `welcome`, or Redis' `HELLO 3` + `SUBSCRIBE`), each bounded by a timeout. Every way
//! this can fail is named, so the report can say *why* connections did not open.

use super::codec::{Codec, Incoming};
use super::workload::Clock;
use bytes::BytesMut;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;

/// A joined connection, ready for the workload.
pub(crate) struct Opened {
    pub stream: TcpStream,
    /// Bytes read past the handshake's reply, for the reader to decode.
    pub leftover: BytesMut,
    /// Frames decoded after the handshake's reply in the same read.
    pub pending: Vec<Incoming>,
    /// TCP connect time.
    pub connect_us: u64,
    /// From the start of the connect to the handshake's reply.
    pub join_us: u64,
}

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
    fn new(kind: impl Into<String>, detail: impl Into<String>) -> Failure {
        Failure {
            kind: kind.into(),
            detail: detail.into(),
        }
    }

    fn io(stage: &str, e: &io::Error) -> Failure {
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

/// What one connection attempt needs to know.
pub(crate) struct Dial<'a> {
    pub addr: SocketAddr,
    /// Bind to this address first (port chosen at connect time), to use more than one source
    /// address's worth of ephemeral ports.
    pub source: Option<IpAddr>,
    pub codec: Codec,
    pub nickname: &'a str,
    pub room: &'a str,
    /// Bound on the TCP connect and, separately, on the handshake.
    pub timeout: Duration,
    pub clock: Clock,
}

pub(crate) async fn open(dial: &Dial<'_>) -> Result<Opened, Failure> {
    let started = dial.clock.now_us();
    let socket = new_socket(dial.addr, dial.source).map_err(|e| Failure::io("socket", &e))?;
    let stream = match timeout(dial.timeout, socket.connect(dial.addr)).await {
        Err(_) => {
            return Err(Failure::new(
                "connect_timeout",
                format!("no TCP connection within {:?}", dial.timeout),
            ))
        }
        Ok(Err(e)) => return Err(Failure::io("connect", &e)),
        Ok(Ok(stream)) => stream,
    };
    let connect_us = dial.clock.now_us().saturating_sub(started);
    // Small frames must leave at once, not wait for Nagle's algorithm to batch them.
    let _ = stream.set_nodelay(true);
    match timeout(dial.timeout, handshake(stream, dial)).await {
        Err(_) => Err(Failure::new(
            "join_timeout",
            format!(
                "connected, but no reply to the handshake within {:?} (a server that is not \
                 accepting, or serves one connection at a time, leaves us in its listen backlog)",
                dial.timeout
            ),
        )),
        Ok(Err(failure)) => Err(failure),
        Ok(Ok((stream, leftover, pending))) => Ok(Opened {
            stream,
            leftover,
            pending,
            connect_us,
            join_us: dial.clock.now_us().saturating_sub(started),
        }),
    }
}

fn new_socket(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpSocket> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
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
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    Ok(socket)
}

async fn handshake(
    mut stream: TcpStream,
    dial: &Dial<'_>,
) -> Result<(TcpStream, BytesMut, Vec<Incoming>), Failure> {
    let mut hello = Vec::new();
    dial.codec.handshake(&mut hello, dial.nickname, dial.room);
    stream
        .write_all(&hello)
        .await
        .map_err(|e| Failure::io("handshake write", &e))?;
    let mut buf = BytesMut::with_capacity(4096);
    let mut frames = Vec::new();
    loop {
        let n = stream
            .read_buf(&mut buf)
            .await
            .map_err(|e| Failure::io("handshake read", &e))?;
        if n == 0 {
            return Err(Failure::new(
                "closed",
                "the server closed the connection before the handshake's reply",
            ));
        }
        dial.codec
            .decode(&mut buf, &mut frames)
            .map_err(|e| Failure::new("io_error", format!("handshake: {e}")))?;
        let mut rest = std::mem::take(&mut frames).into_iter();
        for frame in rest.by_ref() {
            match frame {
                Incoming::Ready => return Ok((stream, buf, rest.collect())),
                Incoming::Error(code) => {
                    return Err(Failure::new(
                        code.clone(),
                        format!("the server answered the handshake with `{code}`"),
                    ))
                }
                _ => {}
            }
        }
    }
}

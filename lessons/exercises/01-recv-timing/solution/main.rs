//! # recv-timing: what a blocking `recv` costs, and what a non-blocking one costs
//!
//! The model answer to exercise 1, the source course's 练习1 ("阻塞 vs 非阻塞：分别测量阻塞和非阻塞
//! recv() 的耗时"). It connects to a server that answers a line (any chat server of the course
//! answers `ping` with `pong`; an echo server echoes it) and measures three ways of waiting for
//! that answer, printing wall-clock time *and* the CPU time the process used meanwhile:
//!
//! ```text
//! blocking recv: waited 2.002 s, CPU 0.000 s, got 16 bytes
//! non-blocking recv: returned in 7 µs with EAGAIN
//! non-blocking loop: waited 2.001 s, CPU 1.987 s, 3810022 calls returned EAGAIN
//! ```
//!
//! 1. **Blocking.** `recv` on a socket with nothing to read puts the thread to sleep. A second
//!    thread sends the `ping` two seconds later; the answer wakes the sleeper. Two seconds of
//!    waiting, no CPU: the kernel does not run a thread that waits.
//! 2. **Non-blocking, once.** With `O_NONBLOCK` the same `recv` returns at once, microseconds
//!    later, with the error `EAGAIN` (`EWOULDBLOCK`): "nothing yet, come back later".
//! 3. **Non-blocking, in a loop.** Come back when? Calling it again and again until the answer
//!    arrives is *busy polling*: the same two seconds, but a whole core burnt asking. Telling the
//!    kernel "wake me when any of these sockets is ready" is what select, poll and epoll are for
//!    (lessons 04 and 05).
//!
//! ```text
//! chat-epoll --addr 127.0.0.1:8888 &
//! cargo run -p exercises --bin recv-timing -- 127.0.0.1:8888
//! lessons/exercises/01-recv-timing/check lessons/exercises/01-recv-timing/solution
//! ```

use clap::Parser;
use exercises::{exit_with, ClientArgs};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

/// How long the helper thread waits before it sends the request that gets an answer.
const DELAY: Duration = Duration::from_secs(2);

/// The request: a `ping` for a chat server, any line for an echo server.
const REQUEST: &[u8] = b"{\"type\":\"ping\"}\n";

fn main() -> ExitCode {
    exit_with("recv-timing", run(ClientArgs::parse().addr))
}

fn run(addr: SocketAddr) -> io::Result<()> {
    // 1. A blocking recv: the thread sleeps until the answer comes.
    let stream = TcpStream::connect(addr)?;
    let (wall, cpu) = (Instant::now(), cpu_time());
    let sender = send_later(&stream)?;
    let mut buf = [0u8; 4096];
    let got = (&stream).read(&mut buf)?;
    println!(
        "blocking recv: waited {:.3} s, CPU {:.3} s, got {got} bytes",
        wall.elapsed().as_secs_f64(),
        (cpu_time() - cpu).as_secs_f64()
    );
    join(sender)?;

    // 2. One non-blocking recv on a fresh connection, with nothing to read.
    let stream = TcpStream::connect(addr)?;
    stream.set_nonblocking(true)?;
    let wall = Instant::now();
    let result = (&stream).read(&mut buf);
    let took = wall.elapsed();
    match result {
        Err(e) if e.kind() == ErrorKind::WouldBlock => println!(
            "non-blocking recv: returned in {} µs with {}",
            took.as_micros(),
            errno_name(&e)
        ),
        Err(e) => return Err(e),
        Ok(n) => return Err(io::Error::other(format!("expected EAGAIN, read {n} bytes"))),
    }

    // 3. The same call in a loop until the answer comes: busy polling.
    let (wall, cpu) = (Instant::now(), cpu_time());
    let sender = send_later(&stream)?;
    let mut eagain: u64 = 0;
    loop {
        match (&stream).read(&mut buf) {
            Ok(0) => return Err(io::Error::other("the server closed the connection")),
            Ok(_) => break,
            Err(e) if e.kind() == ErrorKind::WouldBlock => eagain += 1,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    println!(
        "non-blocking loop: waited {:.3} s, CPU {:.3} s, {eagain} calls returned EAGAIN",
        wall.elapsed().as_secs_f64(),
        (cpu_time() - cpu).as_secs_f64()
    );
    join(sender)
}

/// Sends [`REQUEST`] on `stream` after [`DELAY`], from a thread of its own (the main thread is
/// busy waiting for the answer). The clone shares the socket, and its `O_NONBLOCK` flag with it:
/// a few bytes into an empty socket buffer are taken at once either way.
fn send_later(stream: &TcpStream) -> io::Result<thread::JoinHandle<io::Result<()>>> {
    let mut writer = stream.try_clone()?;
    Ok(thread::spawn(move || {
        thread::sleep(DELAY);
        writer.write_all(REQUEST)
    }))
}

fn join(sender: thread::JoinHandle<io::Result<()>>) -> io::Result<()> {
    sender
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the sending thread panicked")))
}

/// CPU time used by the whole process so far, user and system (`getrusage(RUSAGE_SELF)`).
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage fills the struct we pass; on failure (impossible for RUSAGE_SELF) we
    // report zero rather than read it.
    let usage = unsafe {
        if libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) != 0 {
            return Duration::ZERO;
        }
        usage.assume_init()
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// The C name of the error: on Linux EWOULDBLOCK and EAGAIN are the same number.
fn errno_name(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EAGAIN) => "EAGAIN",
        _ => "EWOULDBLOCK",
    }
}

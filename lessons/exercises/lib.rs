//! # exercises: the course's model answers and starting points
//!
//! Every exercise of the course is graded by a command, `lessons/exercises/NN-name/check`, that
//! takes the student's hand-in folder (the convention is in `lessons/README.md`, "Exercises").
//! The programs an exercise asks for are binaries of this package, each one beside its exercise:
//!
//! | binary | exercise | what it is |
//! |---|---|---|
//! | `recv-timing` | 1 (练习1) | times a blocking `recv`, a non-blocking one, and a busy-polling loop |
//! | `recv-timing-starter` | 1 | where a student starts: it connects and times nothing yet |
//! | `select-echo` | 6 (练习2) | an echo server on one thread and select(2) |
//! | `closed-loop-ping` | 9 | a closed-loop benchmark, the kind that hides a stalled server |
//! | `chat-ext` | 12 to 14 (练习4) | the chat server with login, history and file transfer |
//! | `epoll-echo` | 30 | the echo server again, on edge-triggered epoll |
//! | `starter-server` | 4, 6, 7, 30, 37 | a server that listens and answers nothing: the start |
//! | `starter-client` | 9 | a client that connects and measures nothing: the start |
//!
//! This library holds what the two echo servers share ([`echo`]), the flags and startup of every
//! server here ([`ServerFlags`], [`listen`]), the client programs' one argument
//! ([`ClientArgs`]), and how every program here ends ([`exit_with`]).

pub mod echo;

use clap::Parser;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;

/// The one flag the graded servers must take: where to listen (port 0: any free port). The
/// checks start a hand-in's server with `--addr 127.0.0.1:0` and read the port it prints.
#[derive(Parser, Debug, Clone)]
pub struct ServerFlags {
    /// Address to listen on; port 0 picks a free port (the real one is printed).
    #[arg(long, default_value = "127.0.0.1:8888")]
    pub addr: SocketAddr,
}

/// The one argument of the client programs: the server to talk to.
#[derive(Parser, Debug, Clone)]
pub struct ClientArgs {
    /// The server, HOST:PORT: any chat server of the course (it answers `ping` with `pong`).
    pub addr: SocketAddr,
}

/// How every program here ends: exit 0, or the error on stderr after the program's name and
/// exit 1. (A bad flag or argument has already ended it with exit 2, clap's usage error.)
pub fn exit_with(program: &str, result: io::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Binds `addr` and announces it the way every server of the course does: one line,
/// `listening on ADDR`, with the port really bound, flushed at once (a check waits for it).
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "listening on {bound}")?;
    stdout.flush()?;
    Ok(listener)
}

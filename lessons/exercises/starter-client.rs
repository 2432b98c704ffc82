//! # starter-client: where a "write a client program" exercise starts
//!
//! It takes the server's address, connects, and stops there: every check of a program exercise
//! fails against it, with a reason (exercise 9 wants round trips timed; exercise 1 has its own
//! starter with the steps written out, `recv-timing-starter`).
//!
//! ```text
//! cargo run -p exercises --bin starter-client -- 127.0.0.1:8888
//! ```

use clap::Parser;
use exercises::{exit_with, ClientArgs};
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;

fn main() -> ExitCode {
    exit_with("starter-client", run(ClientArgs::parse().addr))
}

fn run(addr: SocketAddr) -> io::Result<()> {
    let _stream = TcpStream::connect(addr)?;
    // TODO (the exercise): talk to the server and measure what the exercise asks.
    println!("connected to {addr}; nothing measured yet");
    Ok(())
}

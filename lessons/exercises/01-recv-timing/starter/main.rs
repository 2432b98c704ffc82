//! # recv-timing-starter: where exercise 1 starts
//!
//! It connects to the server and stops there. Exercise 1 (the source course's 练习1) is to time
//! the three ways of waiting for an answer and print them in the format of the exercise's
//! README; `lessons/exercises/01-recv-timing/check` fails against this program until you do.
//!
//! ```text
//! cargo run -p exercises --bin recv-timing-starter -- 127.0.0.1:8888
//! ```

use clap::Parser;
use exercises::{exit_with, ClientArgs};
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;

fn main() -> ExitCode {
    exit_with("recv-timing-starter", run(ClientArgs::parse().addr))
}

fn run(addr: SocketAddr) -> io::Result<()> {
    let _stream = TcpStream::connect(addr)?;
    // TODO 1: a blocking recv; a thread sends `{"type":"ping"}` two seconds later. Print
    //         "blocking recv: waited S s, CPU S s, got N bytes".
    // TODO 2: one recv with O_NONBLOCK and nothing to read. Print
    //         "non-blocking recv: returned in N µs with EAGAIN".
    // TODO 3: recv with O_NONBLOCK in a loop until the answer comes. Print
    //         "non-blocking loop: waited S s, CPU S s, N calls returned EAGAIN".
    println!("connected to {addr}; nothing timed yet");
    Ok(())
}

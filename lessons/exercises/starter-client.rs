//! # starter-client: where a "write a client program" exercise starts
//!
//! It takes the server's address, connects, and stops there: every check of a program exercise
//! fails against it, with a reason (exercise 9 wants round trips timed; exercise 1 has its own
//! starter with the steps written out, `recv-timing-starter`).
//!
//! ```text
//! cargo run -p exercises --bin starter-client -- 127.0.0.1:8888
//! ```

use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(addr) = std::env::args()
        .nth(1)
        .and_then(|a| a.parse::<SocketAddr>().ok())
    else {
        eprintln!("usage: starter-client HOST:PORT");
        return ExitCode::from(2);
    };
    match TcpStream::connect(addr) {
        // TODO (the exercise): talk to the server and measure what the exercise asks.
        Ok(_stream) => {
            println!("connected to {addr}; nothing measured yet");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot connect to {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

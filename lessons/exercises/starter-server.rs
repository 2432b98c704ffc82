//! # starter-server: where every "write your own server" exercise starts
//!
//! It does the two things every graded server must do, and nothing else: it takes `--addr` and
//! prints `listening on ADDR` once it listens. It accepts every client and reads what it sends,
//! but answers nothing: no echo, no `welcome`, no `pong`. So every check of a server exercise
//! fails against it, with a reason; the exercise is to make the check pass.
//!
//! ```text
//! cargo run -p exercises --bin starter-server -- --addr 127.0.0.1:8888
//! ```

use clap::Parser;
use exercises::{exit_with, listen, ServerFlags};
use std::io::{self, Read};
use std::net::TcpStream;
use std::process::ExitCode;
use std::thread;

fn main() -> ExitCode {
    exit_with("starter-server", run(ServerFlags::parse()))
}

fn run(flags: ServerFlags) -> io::Result<()> {
    let listener = listen(flags.addr)?;
    for stream in listener.incoming() {
        match stream {
            // TODO (the exercise): answer the client. For now its bytes are read and dropped.
            Ok(stream) => {
                thread::spawn(move || swallow(stream));
            }
            Err(e) => eprintln!("starter-server: accept: {e}"),
        }
    }
    Ok(())
}

/// Reads until the client hangs up, and throws everything away.
fn swallow(mut stream: TcpStream) {
    let mut buf = [0u8; 4096];
    while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
}

//! # closed-loop-ping: a benchmark that lies about a stall
//!
//! The model answer to exercise 9 ("Catch a liar", lesson 08): the simplest benchmark there is.
//! One connection sends a `ping`, waits for its `pong`, and only then sends the next, 10,000
//! times; it prints the percentiles of the measured round trips:
//!
//! ```text
//! round trips: 10000
//! p50: 61 µs
//! p99: 170 µs
//! max: 1000381 µs
//! ```
//!
//! Freeze the server for a second while it runs (`kill -STOP`, then `kill -CONT`): the max shows
//! the second, yet the p99 hardly moves. A *closed loop* sends nothing while it waits, so the
//! second of stall is one slow sample among 10,000, instead of the thousands of requests a real
//! client population would have sent, and waited for, during that second. That is coordinated
//! omission; `loadgen run` measures from each request's *intended* send time (an open loop), and
//! its p99 under the same freeze is about a second (lesson 08).
//!
//! ```text
//! cargo run -p exercises --bin closed-loop-ping -- 127.0.0.1:8888
//! lessons/exercises/09-catch-a-liar/check lessons/exercises/09-catch-a-liar/solution
//! ```

use clap::Parser;
use exercises::{exit_with, ClientArgs};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Round trips to measure.
const ROUND_TRIPS: usize = 10_000;

fn main() -> ExitCode {
    exit_with("closed-loop-ping", run(ClientArgs::parse().addr))
}

fn run(addr: SocketAddr) -> io::Result<()> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut samples = Vec::with_capacity(ROUND_TRIPS);
    let mut line = String::new();
    for i in 0..ROUND_TRIPS {
        let sent = Instant::now();
        writeln!(writer, "{{\"type\":\"ping\",\"id\":{i}}}")?;
        // Wait for our pong: this waiting is what makes the loop "closed".
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Err(io::Error::other("the server closed the connection"));
            }
            if line.contains("\"pong\"") {
                break;
            }
        }
        samples.push(sent.elapsed());
    }
    samples.sort_unstable();
    println!("round trips: {}", samples.len());
    println!("p50: {} µs", percentile(&samples, 0.50).as_micros());
    println!("p99: {} µs", percentile(&samples, 0.99).as_micros());
    println!("max: {} µs", percentile(&samples, 1.0).as_micros());
    Ok(())
}

/// The sample at quantile `q` of `sorted` (nearest rank).
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied().unwrap_or_default()
}

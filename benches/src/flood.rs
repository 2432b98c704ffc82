//! A connect flood: connections opened as fast as asked, each read until the server closes it,
//! for the flood bench (PROTOCOL.md, guarantee 8: past `--max-conns` a connection gets
//! `server_full` and is closed; the clients being served must not pay for it).
//!
//! The flood runs on its own threads, paced to a rate, and counts how each connection ended:
//! refused with `server_full` (what a full server must say), closed without it, refused by the
//! kernel, or timed out.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long one flood connection may take, connect and answer together.
const PER_CONN: Duration = Duration::from_secs(2);

/// How the flood's connections ended.
#[derive(Debug, Default)]
pub struct FloodCounts {
    /// Answered `server_full`, then closed.
    pub server_full: AtomicU64,
    /// Served after all (no `server_full` in what came back before the close or the timeout).
    pub served: AtomicU64,
    /// Connect refused, reset, or no answer in time.
    pub failed: AtomicU64,
}

/// A running flood; stops (and joins its threads) when dropped or [`Flood::stop`]ped.
pub struct Flood {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    started: Instant,
    pub counts: Arc<FloodCounts>,
}

impl Flood {
    /// Starts `threads` threads opening `rate` connections per second in all to `addr`.
    pub fn start(addr: SocketAddr, rate: f64, threads: usize) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(FloodCounts::default());
        let threads = threads.max(1);
        let interval = Duration::from_secs_f64(threads as f64 / rate.max(0.001));
        let handles = (0..threads)
            .map(|t| {
                let (stop, counts) = (Arc::clone(&stop), Arc::clone(&counts));
                std::thread::spawn(move || {
                    // Threads start at staggered phases so the connects spread evenly.
                    let mut next = Instant::now() + interval.mul_f64(t as f64 / threads as f64);
                    while !stop.load(Ordering::Relaxed) {
                        let now = Instant::now();
                        if now < next {
                            std::thread::sleep((next - now).min(Duration::from_millis(50)));
                            continue;
                        }
                        next += interval;
                        let counter = match one(addr) {
                            Outcome::ServerFull => &counts.server_full,
                            Outcome::Served => &counts.served,
                            Outcome::Failed => &counts.failed,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Flood {
            stop,
            threads: handles,
            started: Instant::now(),
            counts,
        }
    }

    /// Stops the flood; returns the connections per second it achieved.
    pub fn stop(&mut self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        let c = &self.counts;
        let total = c.server_full.load(Ordering::Relaxed)
            + c.served.load(Ordering::Relaxed)
            + c.failed.load(Ordering::Relaxed);
        total as f64 / self.started.elapsed().as_secs_f64().max(1e-9)
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop();
    }
}

enum Outcome {
    ServerFull,
    Served,
    Failed,
}

/// One flood connection: connect, read what the server says until it closes.
fn one(addr: SocketAddr) -> Outcome {
    let deadline = Instant::now() + PER_CONN;
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, PER_CONN) else {
        return Outcome::Failed;
    };
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
        if got.len() > 64 * 1024 {
            break;
        }
    }
    if String::from_utf8_lossy(&got).contains("\"server_full\"") {
        Outcome::ServerFull
    } else if got.is_empty() {
        Outcome::Failed
    } else {
        Outcome::Served
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::HubConfig;
    use loadgen::testkit::{Faults, TestServer};

    /// Against a full server every flood connection is answered `server_full`, at about the
    /// rate asked.
    #[test]
    fn a_full_server_answers_server_full() {
        let server = TestServer::start_with(
            HubConfig {
                max_conns: 0,
                ..HubConfig::default()
            },
            Faults::default(),
        )
        .expect("start");
        let mut flood = Flood::start(server.addr(), 100.0, 2);
        std::thread::sleep(Duration::from_millis(500));
        let rate = flood.stop();
        let full = flood.counts.server_full.load(Ordering::Relaxed);
        assert!(full >= 20, "{full} server_full");
        assert_eq!(flood.counts.served.load(Ordering::Relaxed), 0);
        assert!(rate > 20.0 && rate < 200.0, "{rate}/s");
    }
}

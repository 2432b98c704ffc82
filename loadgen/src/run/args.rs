//! The flags of `loadgen run`, and [`RunConfig`], the same settings for library callers (the
//! benches and `loadgen sweep` build one directly).

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What each connection does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// Members of a room each send messages; every member receives each one (fan-out). The
    /// sender's own copy is its acknowledgement.
    Chat,
    /// `ping` / `pong`: request and response, no fan-out.
    Ping,
    /// Each member sends `private` messages to the next member of its room; the sender's
    /// receipt is its acknowledgement, the partner's copy a delivery.
    Private,
    /// Connect, join and hold: connect latency and the server's memory per connection.
    Idle,
}

/// Which protocol the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The chat protocol of this workspace.
    Chat,
    /// Redis pub/sub (SUBSCRIBE / PUBLISH, PING) over RESP3: a production epoll server to compare.
    Redis,
}

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Address of the server under test.
    #[arg(long, default_value = "127.0.0.1:8888")]
    pub addr: SocketAddr,

    /// Connections to open.
    #[arg(long, default_value_t = 100)]
    pub conns: usize,

    /// Members per room (default 10); the last room may be smaller.
    #[arg(long, conflicts_with = "rooms")]
    pub room_size: Option<usize>,

    /// Number of rooms instead of a room size: the connections are shared out evenly.
    #[arg(long)]
    pub rooms: Option<usize>,

    /// Messages per second sent by each connection, on a fixed schedule (open loop).
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,

    /// Closed loop: send the next message as soon as the previous one is acknowledged
    /// (maximum throughput; hides stalls, see the README). Ignores --rate.
    #[arg(long)]
    pub closed: bool,

    /// Measured time (e.g. 10s, 500ms, 2m; a bare number is seconds).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Time spent sending before measuring, so caches, buffers and the server settle.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,

    /// New connections per second while ramping up.
    #[arg(long, default_value_t = 2000.0)]
    pub connect_rate: f64,

    #[arg(long, value_enum, default_value_t = Workload::Chat)]
    pub workload: Workload,

    #[arg(long, value_enum, default_value_t = Target::Chat)]
    pub target: Target,

    /// Bytes of `content` per message.
    #[arg(long, default_value_t = 32)]
    pub message_size: usize,

    /// Write the report as JSON (schema `c10k-lab/loadgen-run/v1`) to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// The server's process id: its CPU and memory are sampled during the run.
    #[arg(long)]
    pub server_pid: Option<u32>,

    /// Give up on a connection whose TCP connect, or whose join, takes longer than this.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// After sending stops, wait at most this long for the last deliveries.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub drain: Duration,

    /// Spread the connections over this many source addresses 127.0.0.1, 127.0.0.2, … (default:
    /// one per 28,000 connections, the size of the usual ephemeral port range).
    #[arg(long)]
    pub source_addrs: Option<usize>,

    /// Runtime worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Everything a run needs. Build it with [`RunConfig::new`] and change the public fields.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub addr: SocketAddr,
    pub target: Target,
    pub workload: Workload,
    pub conns: usize,
    pub room_size: usize,
    /// Messages per second per connection; `None` is closed loop.
    pub rate: Option<f64>,
    pub duration: Duration,
    pub warmup: Duration,
    pub connect_rate: f64,
    pub message_size: usize,
    pub connect_timeout: Duration,
    pub drain: Duration,
    pub server_pid: Option<u32>,
    /// `None`: automatic (one per 28,000 connections).
    pub source_addrs: Option<usize>,
    pub threads: Option<usize>,
    /// Draw the live progress line (only ever on a terminal).
    pub progress: bool,
}

/// Connections per source address before the generator moves to the next 127.0.0.x.
pub const CONNS_PER_SOURCE: usize = 28_000;

impl RunConfig {
    /// The defaults of the command line: chat workload, rooms of 10, 1 message/s per connection.
    pub fn new(addr: SocketAddr, conns: usize) -> RunConfig {
        RunConfig {
            addr,
            target: Target::Chat,
            workload: Workload::Chat,
            conns,
            room_size: 10,
            rate: Some(1.0),
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            connect_rate: 2000.0,
            message_size: 32,
            connect_timeout: Duration::from_secs(10),
            drain: Duration::from_secs(3),
            server_pid: None,
            source_addrs: None,
            threads: None,
            progress: false,
        }
    }

    pub fn from_args(args: &RunArgs) -> anyhow::Result<RunConfig> {
        let room_size = match (args.room_size, args.rooms) {
            (Some(size), _) => size,
            (None, Some(rooms)) => args.conns.div_ceil(rooms.max(1)),
            (None, None) => 10,
        };
        let config = RunConfig {
            addr: args.addr,
            target: args.target,
            workload: args.workload,
            conns: args.conns,
            room_size,
            rate: (!args.closed).then_some(args.rate),
            duration: args.duration,
            warmup: args.warmup,
            connect_rate: args.connect_rate,
            message_size: args.message_size,
            connect_timeout: args.connect_timeout,
            drain: args.drain,
            server_pid: args.server_pid,
            source_addrs: args.source_addrs,
            threads: args.threads,
            progress: true,
        };
        config.validate()?;
        Ok(config)
    }

    /// Refuses settings that cannot make a meaningful run, with the reason.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.conns > 0, "--conns must be at least 1");
        anyhow::ensure!(self.room_size > 0, "--room-size must be at least 1");
        if let Some(rate) = self.rate {
            anyhow::ensure!(
                rate.is_finite() && rate > 0.0,
                "--rate must be a positive number of messages per second"
            );
        }
        anyhow::ensure!(
            self.connect_rate.is_finite() && self.connect_rate > 0.0,
            "--connect-rate must be positive"
        );
        anyhow::ensure!(!self.duration.is_zero(), "--duration must be above zero");
        anyhow::ensure!(self.conns <= u32::MAX as usize, "--conns is too large");
        if self.workload == Workload::Private {
            anyhow::ensure!(
                self.target == Target::Chat,
                "--workload private has no Redis equivalent; use chat or ping with --target redis"
            );
            anyhow::ensure!(
                self.room_size >= 2,
                "--workload private needs rooms of at least 2 (a partner to write to)"
            );
        }
        let sources = self.source_count();
        if sources > 1 {
            anyhow::ensure!(
                matches!(self.addr, SocketAddr::V4(a) if a.ip().is_loopback()),
                "{} connections need several source addresses (127.0.0.x), which only works \
                 against a loopback IPv4 server; run several generators for a remote one",
                self.conns
            );
            anyhow::ensure!(sources <= 250, "too many source addresses ({sources})");
        }
        Ok(())
    }

    /// How many 127.0.0.x source addresses the connections are spread over.
    pub fn source_count(&self) -> usize {
        self.source_addrs
            .unwrap_or_else(|| self.conns.div_ceil(CONNS_PER_SOURCE))
            .max(1)
    }
}

/// Parses `10s`, `250ms`, `2m`, `1.5s`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 10s, 500ms or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in `{text}` (use ms, s, m or h)"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Durations take the usual units, and a bare number is seconds.
    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5y").is_err());
    }

    /// Source addresses are added per 28,000 connections, and refused for a remote server.
    #[test]
    fn source_addresses() {
        let mut c = RunConfig::new("127.0.0.1:1".parse().expect("addr"), 60_000);
        assert_eq!(c.source_count(), 3);
        assert!(c.validate().is_ok());
        c.addr = "10.0.0.1:1".parse().expect("addr");
        assert!(c.validate().is_err());
        c.conns = 100;
        assert!(c.validate().is_ok());
    }
}

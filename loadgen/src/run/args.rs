//! The flags of `loadgen run`, and [`RunConfig`], the same settings for library callers (the
//! benches and `loadgen sweep` build one directly; the parent hands it to its worker processes
//! as JSON).

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
    /// For an echo server, not a chat server: no join; each connection sends lines carrying a
    /// unique payload and expects exactly those lines back, in order (the round trip is the
    /// latency).
    Echo,
}

/// How the bytes travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// JSON lines over TCP (PROTOCOL.md, section 1).
    Tcp,
    /// WebSocket at `--ws-path`: one text message per frame (PROTOCOL.md, section 9).
    Ws,
}

/// How the connections are spread over several server addresses (`--addr A,B,C`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Spread {
    /// Each room's members are dealt out over the servers, so every message crosses between
    /// them: the way to measure a cluster's cross-node delivery. Against servers that are not
    /// one cluster, every copy that would have to cross is lost, and the run says so.
    Members,
    /// Each room lives on one server (rooms dealt out round robin): independent servers.
    Rooms,
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
    /// Address of the server under test; several, comma-separated, to spread the connections
    /// over them (see --spread).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:8888")]
    pub addr: Vec<SocketAddr>,

    /// With several addresses: deal each room's members out over them (`members`, cross-node
    /// delivery in a cluster), or keep each room on one (`rooms`, independent servers).
    #[arg(long, value_enum, default_value_t = Spread::Members)]
    pub spread: Spread,

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

    /// TCP (JSON lines), or WebSocket (`ws`: an HTTP upgrade at --ws-path on each --addr, then
    /// one masked text message per frame).
    #[arg(long, value_enum, default_value_t = Transport::Tcp)]
    pub transport: Transport,

    /// The WebSocket endpoint's path, with --transport ws.
    #[arg(long, default_value = crate::ws::DEFAULT_PATH)]
    pub ws_path: String,

    /// Churn: close and reopen this many connections per second, continuously, while messages
    /// flow. The last member of every room churns (it stops sending, waits for its last
    /// message to come back, closes, reconnects under a fresh nickname and carries on); the
    /// others stay, and are checked for zero loss and kept order. 0: no churn.
    #[arg(long, default_value_t = 0.0)]
    pub churn: f64,

    /// How often the report's time series samples the servers' and the generator's memory and
    /// open descriptors.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub sample_every: Duration,

    /// Bytes of `content` per message.
    #[arg(long, default_value_t = 32)]
    pub message_size: usize,

    /// Write the report as JSON (schema `c10k-lab/loadgen-run/v2`) to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// The server's process id: its CPU and memory are sampled during the run. Several,
    /// comma-separated, for several servers (their figures are added up).
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,

    /// Give up on a connection whose TCP connect, or whose join, takes longer than this.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// After sending stops, wait at most this long for the last deliveries.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub drain: Duration,

    /// Spread the connections over this many source addresses 127.0.0.1, 127.0.0.2, … (default:
    /// one per 28,000 connections of each process, the size of the usual ephemeral port range).
    /// With several processes each gets its own share of them (rounded up).
    #[arg(long)]
    pub source_addrs: Option<usize>,

    /// Generator processes, each holding whole rooms (default: enough that none holds more than
    /// 16,000 connections; one process may hold only as many sockets as its open-file limit).
    #[arg(long)]
    pub procs: Option<usize>,

    /// Engine threads per process (default: the cores shared out over the processes; a heavy
    /// paced run against a server on this machine leaves that server one core).
    #[arg(long)]
    pub threads: Option<usize>,

    /// The generator counts as fallen behind (the run fails) when its send lag p99 is above
    /// this, with more than one send late: its figures then bound the generator, not the server.
    #[arg(long, default_value = "1ms", value_parser = parse_duration)]
    pub max_send_lag: Duration,

    /// Report a generator that fell behind (send lag p99 over --max-send-lag, more than 1% of
    /// the measured messages never sent, or its busiest thread at 90% of a core or more) as a
    /// warning instead of failing the run: for smoke runs on a busy machine, where only the
    /// server's behaviour is judged. Loss, duplicates, disorder, dropped connections and failed
    /// connects still fail the run.
    #[arg(long)]
    pub tolerate_generator_lag: bool,

    /// Wake this many microseconds before each due send and spin to it (less send lag on a busy
    /// machine, more generator CPU; 0: sleep until the due time).
    #[arg(long, default_value_t = 0)]
    pub spin_us: u64,

    /// Ask the kernel to run each engine thread in slices of this many microseconds (Linux
    /// 6.12+, 100 to 100,000), so that a thread woken for a due send preempts a busy server
    /// instead of waiting out its slice (0: the kernel's default slice).
    #[arg(long, default_value_t = DEFAULT_SLICE_US)]
    pub slice_us: u64,

    /// Internal: run as a worker process of a parent `loadgen run` (reads its share on stdin).
    #[arg(long, hide = true)]
    pub worker: bool,
}

/// Everything a run needs. Build it with [`RunConfig::new`] and change the public fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunConfig {
    /// The servers; connections are spread over them as `spread` says.
    pub addrs: Vec<SocketAddr>,
    pub spread: Spread,
    pub target: Target,
    pub workload: Workload,
    /// TCP or WebSocket, and the WebSocket endpoint's path.
    pub transport: Transport,
    pub ws_path: String,
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
    /// The server processes to sample (CPU, memory); empty: none.
    pub server_pids: Vec<u32>,
    /// `None`: automatic (one per 28,000 connections of each process).
    pub source_addrs: Option<usize>,
    /// Generator processes; `None`: automatic (at most 16,000 connections each).
    pub procs: Option<usize>,
    /// Engine threads per process; `None`: automatic ([`RunConfig::thread_count`]).
    pub threads: Option<usize>,
    /// Send lag p99 above which the generator counts as fallen behind.
    pub max_send_lag: Duration,
    /// A generator that fell behind is a warning, not a failure: only the server is judged.
    pub tolerate_generator_lag: bool,
    /// Wake this long before a due send and spin to it (0: no spinning).
    pub spin_us: u64,
    /// The engine threads' scheduler slice to ask for, µs (0: the kernel's default).
    #[serde(default)]
    pub slice_us: u64,
    /// Connections closed and reopened per second (`None`: no churn).
    pub churn: Option<f64>,
    /// The time series' sampling interval.
    pub sample_every: Duration,
    /// Draw the live progress line (only ever on a terminal).
    pub progress: bool,
}

/// The engine threads' scheduler slice, µs: the shortest the kernel grants (see `slice.rs`).
pub const DEFAULT_SLICE_US: u64 = 100;

/// The offered load, in copies the servers write per second, from which a paced run against
/// servers on this machine leaves them a core ([`RunConfig::thread_count`]). Side by side on 2
/// cores, one engine thread fewer had the lower send-lag tail in every pair from 80,000 up, and
/// no clear winner below (benches/results/2026-12-04-threads-slice-wait).
pub const LEAVE_A_CORE_FROM: f64 = 80_000.0;

/// Connections per source address before the generator moves to the next 127.0.0.x.
pub const CONNS_PER_SOURCE: usize = 28_000;

/// Connections per generator process when `--procs` is not given: well inside this machine's
/// hard limit of 20,000 open files per process.
pub const CONNS_PER_PROC: usize = 16_000;

impl RunConfig {
    /// The defaults of the command line: chat workload, rooms of 10, 1 message/s per connection.
    pub fn new(addr: SocketAddr, conns: usize) -> RunConfig {
        RunConfig {
            addrs: vec![addr],
            spread: Spread::Members,
            target: Target::Chat,
            workload: Workload::Chat,
            transport: Transport::Tcp,
            ws_path: crate::ws::DEFAULT_PATH.to_string(),
            conns,
            room_size: 10,
            rate: Some(1.0),
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            connect_rate: 2000.0,
            message_size: 32,
            connect_timeout: Duration::from_secs(10),
            drain: Duration::from_secs(3),
            server_pids: Vec::new(),
            source_addrs: None,
            procs: None,
            threads: None,
            max_send_lag: Duration::from_millis(1),
            tolerate_generator_lag: false,
            spin_us: 0,
            slice_us: DEFAULT_SLICE_US,
            churn: None,
            sample_every: Duration::from_secs(1),
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
            addrs: args.addr.clone(),
            spread: args.spread,
            target: args.target,
            workload: args.workload,
            transport: args.transport,
            ws_path: args.ws_path.clone(),
            conns: args.conns,
            room_size,
            rate: (!args.closed).then_some(args.rate),
            duration: args.duration,
            warmup: args.warmup,
            connect_rate: args.connect_rate,
            message_size: args.message_size,
            connect_timeout: args.connect_timeout,
            drain: args.drain,
            server_pids: args.server_pid.clone(),
            source_addrs: args.source_addrs,
            procs: args.procs,
            threads: args.threads,
            max_send_lag: args.max_send_lag,
            tolerate_generator_lag: args.tolerate_generator_lag,
            spin_us: args.spin_us,
            slice_us: args.slice_us,
            churn: (args.churn != 0.0).then_some(args.churn),
            sample_every: args.sample_every,
            progress: true,
        };
        config.validate()?;
        Ok(config)
    }

    /// Refuses settings that cannot make a meaningful run, with the reason.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.addrs.is_empty(), "--addr needs at least one address");
        anyhow::ensure!(self.addrs.len() <= 1024, "too many addresses in --addr");
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
        anyhow::ensure!(
            self.slice_us == 0 || (100..=100_000).contains(&self.slice_us),
            "--slice-us must be 0 (the kernel's default) or from 100 to 100000, the bounds the \
             kernel allows"
        );
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
        if self.target == Target::Redis {
            anyhow::ensure!(
                self.workload != Workload::Echo,
                "--workload echo is for an echo server; it has no Redis equivalent"
            );
            anyhow::ensure!(
                self.transport == Transport::Tcp,
                "--transport ws is for a chat node's WebSocket endpoint; Redis speaks RESP over TCP"
            );
        }
        if self.transport == Transport::Ws {
            anyhow::ensure!(
                self.ws_path.starts_with('/') && !self.ws_path.contains(char::is_whitespace),
                "--ws-path must be a path such as /ws"
            );
        }
        if let Some(churn) = self.churn {
            anyhow::ensure!(
                churn.is_finite() && churn > 0.0,
                "--churn must be a positive number of connections per second (or 0 for none)"
            );
            anyhow::ensure!(
                self.workload != Workload::Private,
                "--churn renames the churning members, so private messages to them would miss; \
                 use chat, ping, echo or idle"
            );
            anyhow::ensure!(
                self.room_size >= 2,
                "--churn needs rooms of at least 2: the last member of each room churns and the \
                 others stay"
            );
        }
        anyhow::ensure!(
            !self.sample_every.is_zero(),
            "--sample-every must be above zero"
        );
        let rooms = self.conns.div_ceil(self.room_size);
        if let Some(procs) = self.procs {
            anyhow::ensure!(procs > 0, "--procs must be at least 1");
            anyhow::ensure!(
                procs <= rooms,
                "--procs {procs} needs at least {procs} rooms (each process holds whole rooms); \
                 this run has {rooms}"
            );
        }
        if self.threads == Some(0) {
            anyhow::bail!("--threads must be at least 1");
        }
        let sources = self.source_count();
        if self.source_addrs.is_some_and(|n| n > 1) || self.sources_per_proc() > 1 {
            anyhow::ensure!(
                self.all_loopback_v4(),
                "{} connections need several source addresses (127.0.0.x), which only works \
                 against loopback IPv4 servers; run several generators for a remote one",
                self.conns
            );
        }
        anyhow::ensure!(sources <= 250, "too many source addresses ({sources})");
        Ok(())
    }

    /// Generator processes: as asked, or enough that none holds more than
    /// [`CONNS_PER_PROC`] connections (never more than there are rooms).
    pub fn proc_count(&self) -> usize {
        let rooms = self.conns.div_ceil(self.room_size.max(1)).max(1);
        self.procs
            .unwrap_or_else(|| self.conns.div_ceil(CONNS_PER_PROC))
            .clamp(1, rooms)
    }

    /// The copies the servers write per second at the offered rate, every message's copies and
    /// its sender's acknowledgement included; `None` in closed loop, and for an idle run.
    pub fn offered_writes_per_sec(&self) -> Option<f64> {
        let copies = match self.workload {
            Workload::Chat => self.room_size.min(self.conns),
            Workload::Private => 2,
            Workload::Ping | Workload::Echo => 1,
            Workload::Idle => return None,
        };
        Some(self.conns as f64 * self.rate? * copies as f64)
    }

    /// Engine threads per process: as asked, or the machine's `cores` shared out over the
    /// processes. A heavy paced run (from [`LEAVE_A_CORE_FROM`] copies a second) whose servers
    /// are all on this machine (loopback addresses) leaves them one core: the server then needs
    /// most of a core, and an engine thread that wakes for a due send while the server and the
    /// other threads hold every core sends late. Below that the threads keep every core: a
    /// lighter server leaves room, and beside a server that never yields (lesson 04's chat-poll
    /// over thousands of idle clients) one thread fewer was worse. A closed loop keeps every core
    /// too: there the generator's speed is the measurement's limit, and nothing is ever late.
    pub fn thread_count(&self, cores: usize) -> usize {
        let procs = self.proc_count();
        let heavy = self
            .offered_writes_per_sec()
            .is_some_and(|writes| writes >= LEAVE_A_CORE_FROM);
        let on_this_machine = self.addrs.iter().all(|a| a.ip().is_loopback());
        let cores = if heavy && on_this_machine {
            cores.saturating_sub(1)
        } else {
            cores
        };
        self.threads.unwrap_or((cores / procs).max(1))
    }

    /// Source addresses per process: as asked (shared out, rounded up), or one per
    /// [`CONNS_PER_SOURCE`] connections of a process.
    pub fn sources_per_proc(&self) -> usize {
        let procs = self.proc_count();
        match self.source_addrs {
            Some(n) => n.div_ceil(procs).max(1),
            None => self.conns.div_ceil(procs).div_ceil(CONNS_PER_SOURCE).max(1),
        }
    }

    /// How many 127.0.0.x source addresses the run uses, over all processes (1 when the kernel
    /// chooses).
    pub fn source_count(&self) -> usize {
        self.sources_per_proc() * self.proc_count()
    }

    /// Whether the run binds its sockets to chosen source addresses: when it needs more than
    /// one (several processes each get their own, so they never compete for ports), and only
    /// against loopback IPv4 servers, where 127.0.0.x are all ours.
    pub fn binds_sources(&self) -> bool {
        self.source_count() > 1 && self.all_loopback_v4()
    }

    fn all_loopback_v4(&self) -> bool {
        self.addrs
            .iter()
            .all(|a| matches!(a, SocketAddr::V4(a) if a.ip().is_loopback()))
    }

    /// The addresses as `--addr` takes them.
    pub fn addr_list(&self) -> String {
        let addrs: Vec<String> = self.addrs.iter().map(|a| a.to_string()).collect();
        addrs.join(",")
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

    /// Processes hold at most 16,000 connections by default; source addresses are added per
    /// 28,000 connections of a process, each process gets its own, and several are refused for
    /// a remote server.
    #[test]
    fn processes_and_source_addresses() {
        let mut c = RunConfig::new("127.0.0.1:1".parse().expect("addr"), 60_000);
        assert_eq!(c.proc_count(), 4);
        assert_eq!(c.sources_per_proc(), 1);
        assert_eq!(c.source_count(), 4);
        assert!(c.binds_sources());
        c.procs = Some(2);
        assert_eq!(c.sources_per_proc(), 2);
        c.source_addrs = Some(3);
        assert_eq!(
            c.source_count(),
            4,
            "rounded up to a multiple of the processes"
        );
        assert!(c.validate().is_ok());
        c.addrs = vec!["10.0.0.1:1".parse().expect("addr")];
        assert!(c.validate().is_err());
        c.source_addrs = None;
        assert!(
            c.validate().is_err(),
            "30,000 connections per process need two"
        );
        c.procs = None;
        assert!(
            c.validate().is_ok(),
            "processes alone need no source addresses"
        );
        assert!(!c.binds_sources());
        c.conns = 100;
        c.procs = None;
        assert_eq!(c.proc_count(), 1);
        assert!(c.validate().is_ok());
        c.procs = Some(11);
        assert!(c.validate().is_err(), "10 rooms cannot make 11 processes");
    }

    /// A heavy paced run against loopback leaves the server a core; a lighter one, a closed
    /// loop, an idle run, a remote server or `--threads` do not.
    #[test]
    fn threads_leave_a_local_server_a_core_only_under_a_heavy_paced_load() {
        let mut c = RunConfig::new("127.0.0.1:1".parse().expect("addr"), 5_000);
        c.rate = Some(2.0);
        assert_eq!(
            c.offered_writes_per_sec(),
            Some(100_000.0),
            "10 copies of 10,000 msg/s"
        );
        assert_eq!(
            c.thread_count(2),
            1,
            "heavy, paced, on this machine: a core left"
        );
        assert_eq!(c.thread_count(16), 15);
        assert_eq!(c.thread_count(1), 1, "never no thread");
        c.conns = 2_000;
        assert_eq!(c.thread_count(2), 2, "40,000 copies a second: every core");
        c.conns = 4_000;
        assert_eq!(c.thread_count(2), 1, "80,000: the threshold");
        c.workload = Workload::Ping;
        assert_eq!(
            c.offered_writes_per_sec(),
            Some(8_000.0),
            "one reply a message"
        );
        assert_eq!(c.thread_count(2), 2);
        c.workload = Workload::Idle;
        assert_eq!(c.offered_writes_per_sec(), None, "idle sends nothing");
        assert_eq!(c.thread_count(2), 2);
        c.workload = Workload::Chat;
        c.rate = None;
        assert_eq!(c.thread_count(2), 2, "closed loop: every core");
        c.rate = Some(2.0);
        c.addrs = vec!["10.0.0.1:1".parse().expect("addr")];
        assert_eq!(c.thread_count(2), 2, "a remote server: every core");
        c.addrs = vec!["[::1]:1".parse().expect("addr")];
        assert_eq!(c.thread_count(2), 1, "IPv6 loopback is this machine too");
        c.threads = Some(2);
        assert_eq!(c.thread_count(2), 2, "as asked");
        c.threads = None;
        c.addrs = vec!["127.0.0.1:1".parse().expect("addr")];
        c.conns = 100_000;
        assert_eq!(c.proc_count(), 7);
        assert_eq!(c.thread_count(16), 2, "15 cores over 7 processes");
    }
}

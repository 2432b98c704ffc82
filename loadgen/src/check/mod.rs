//! # `loadgen check`: the conformance checker
//!
//! Grades any server that claims to speak the protocol of `PROTOCOL.md`, written in any
//! language: it talks raw bytes over TCP and judges every reply as plain JSON
//! (`serde_json::Value`) against that contract, never through chat-core's types, so a bug shared
//! by chat-core and the checker cannot hide.
//!
//! ```text
//! loadgen check --addr 127.0.0.1:8888                         # everything that needs no limit
//! loadgen check --addr 127.0.0.1:8888 --max-line 4096 --max-conns 32 --idle-timeout 2 \
//!               --max-backlog 262144                          # tell it the server's limits
//! loadgen check --addr 127.0.0.1:8888 --single                # a one-client-at-a-time server
//! loadgen check --addr 127.0.0.1:8888 --rate-limit 10         # a server started with it
//! loadgen check --addr 127.0.0.1:8888 --max-conns-per-ip 4    # a server started with it
//! loadgen check --addr 127.0.0.1:8001,127.0.0.1:8002,127.0.0.1:8003   # the nodes of a cluster
//! loadgen check --addr A,B,C --cluster-ctl ./ctl.sh           # plus node death and Redis restart
//! loadgen check --addr 127.0.0.1:8080 --transport ws          # a node's WebSocket endpoint (/ws)
//! loadgen check --addr 127.0.0.1:9000 --profile echo          # an echo server, not a chat server
//! ```
//!
//! With `--transport ws` every client upgrades at `--ws-path` (`/ws`) and each line travels as
//! one masked text message (`wire.rs`); the scenarios about TCP's byte stream are skipped with
//! their reason (`transport.rs`), and the `ws.*` scenarios check WebSocket's own rules.
//!
//! Given several addresses (the nodes of one cluster), the checker places each new client on
//! the next node in turn, so every scenario with two or more clients crosses nodes.
//!
//! It prints one line per scenario (`PASS name`, `FAIL name: why`, `SKIP name: why`), then
//! `N passed, N failed, N skipped`, and exits 0 only when nothing failed.
//!
//! | file | scenarios |
//! |---|---|
//! | `check/requests.rs` | join, nick, message, private, ping, quit: each reply, every field checked |
//! | `check/rooms.rs` | join_room, list_users, list_rooms |
//! | `check/errors.rs` | every error code, and that the connection still works after each |
//! | `check/framing.rs` | `\r\n`, blank lines, split and coalesced frames, the line limit |
//! | `check/ordering.rs` | reply order, one total order per room, stalled readers, isolation |
//! | `check/limits.rs` | `server_full`, `idle_timeout`, `rate_limited` |
//! | `check/burst.rs` | a burst far above `--max-backlog`: only the stalled reader is cut off |
//! | `check/half_close.rs` | a client that half-closes still gets every reply, then the close |
//! | `check/abuse.rs` | slowloris (only a complete frame is activity), `--max-conns-per-ip` |
//! | `check/process.rs` | the assertions that need the server *process* (for the servers' tests) |
//! | `check/cluster.rs` | a node killed, Redis restarted (with `--cluster-ctl`, or from tests) |
//! | `check/extensions.rs` | the exercises' protocol extensions, only with `--extension login,history,file` |
//! | `check/websocket.rs` | `--transport ws`: fragments, binary and bad text, control frames, close codes |
//! | `check/echo.rs` | `--profile echo`: an echo server's lines, exactly, in order, split, long, many clients |
//! | `check/wire.rs`, `check/transport.rs` | the transports, and which scenarios each runs |

mod abuse;
mod burst;
mod client;
mod cluster;
mod echo;
mod errors;
mod extensions;
mod framing;
mod half_close;
mod limits;
mod model_tests;
mod ordering;
mod process;
mod report;
mod requests;
mod rooms;
mod transport;
mod websocket;
mod wire;

pub use burst::{assert_burst_passes_repeatedly, BURST};
pub use cluster::{ClusterControl, CommandControl};
pub use extensions::Extension;
pub use process::{
    assert_aborts_with_linger_zero, assert_conformance, assert_graceful_shutdown,
    assert_survives_fd_exhaustion,
};
pub use report::{CheckReport, Outcome, ScenarioResult};

use crate::run::Transport;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `loadgen check` flags.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The server to check; several, comma-separated, for the nodes of one cluster (each
    /// scenario's clients are spread over them).
    #[arg(long, value_delimiter = ',', required = true)]
    pub addr: Vec<SocketAddr>,
    /// A program that controls the cluster, enabling the `cluster.*` scenarios. It is run as
    /// `PROGRAM kill-node ADDR` (SIGKILL the node serving ADDR), `PROGRAM stop-redis` and
    /// `PROGRAM start-redis` (the same Redis, on the same address), and must exit 0.
    #[arg(long)]
    pub cluster_ctl: Option<String>,
    /// The server serves one client at a time: scenarios needing two clients at once are SKIPped.
    #[arg(long)]
    pub single: bool,
    /// The server's --max-line (enables the line_too_long scenarios).
    #[arg(long)]
    pub max_line: Option<usize>,
    /// The server's --max-conns (enables server_full; keep it small, e.g. 32).
    #[arg(long)]
    pub max_conns: Option<usize>,
    /// The server's --idle-timeout in seconds (enables idle_timeout; 2 or more).
    #[arg(long)]
    pub idle_timeout: Option<u64>,
    /// The server's --rate-limit. Every other scenario sends faster than a rate limit allows,
    /// so with this flag only the rate scenario runs.
    #[arg(long)]
    pub rate_limit: Option<u32>,
    /// The server's --max-backlog in bytes (enables the stalled-reader and burst scenarios).
    #[arg(long)]
    pub max_backlog: Option<usize>,
    /// The server's --max-conns-per-ip (enables its scenario; keep it small, e.g. 4). Every
    /// other scenario may open more connections than that, so with this flag only it runs.
    #[arg(long)]
    pub max_conns_per_ip: Option<usize>,
    /// Run only the scenarios whose name contains this.
    #[arg(long)]
    pub only: Option<String>,
    /// Also check these protocol extensions of the course's exercises (12 to 14; their frames
    /// are in lessons/exercises/*/README.md), comma-separated. Add `--only ext.` for them alone.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub extension: Vec<Extension>,
    /// How long to wait for each expected reply, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub timeout_ms: u64,
    /// Print every frame sent and received (to stderr).
    #[arg(long)]
    pub verbose: bool,
    /// TCP (JSON lines), or WebSocket (`ws`: each client upgrades at --ws-path on --addr, and
    /// each line is one text message).
    #[arg(long, value_enum, default_value_t = Transport::Tcp)]
    pub transport: Transport,
    /// The WebSocket endpoint's path, with --transport ws.
    #[arg(long, default_value = crate::ws::DEFAULT_PATH)]
    pub ws_path: String,
    /// What the server is: a chat server (PROTOCOL.md), or an echo server (every line back
    /// exactly as sent, to its sender).
    #[arg(long, value_enum, default_value_t = Profile::Chat)]
    pub profile: Profile,
}

/// Which scenarios `loadgen check` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// The chat protocol of PROTOCOL.md.
    Chat,
    /// An echo server: lines come back exactly as sent (`check/echo.rs`).
    Echo,
}

/// Runs the checker from the command line.
pub fn main(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let config = CheckConfig {
        single: args.single,
        max_line: args.max_line,
        max_conns: args.max_conns,
        idle_timeout: args.idle_timeout.map(Duration::from_secs),
        rate_limit: args.rate_limit,
        max_backlog: args.max_backlog,
        max_conns_per_ip: args.max_conns_per_ip,
        only: args.only,
        extensions: args.extension,
        reply_timeout: Duration::from_millis(args.timeout_ms),
        verbose: args.verbose,
        transport: args.transport,
        ws_path: args.ws_path,
        profile: args.profile,
        cluster: args
            .cluster_ctl
            .map(|program| Arc::new(CommandControl::new(program)) as Arc<dyn ClusterControl>),
    };
    let report = run_checks_with(&args.addr, &config, |result| println!("{result}"));
    println!("{}", report.summary());
    Ok(if report.failed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What the checker knows about the server under test. `None` limits are unknown: the
/// scenarios that need them are SKIPped.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    /// The server serves one client at a time.
    pub single: bool,
    pub max_line: Option<usize>,
    pub max_conns: Option<usize>,
    pub idle_timeout: Option<Duration>,
    pub rate_limit: Option<u32>,
    pub max_backlog: Option<usize>,
    pub max_conns_per_ip: Option<usize>,
    /// Run only scenarios whose name contains this.
    pub only: Option<String>,
    /// The exercises' protocol extensions to check as well (`--extension`).
    pub extensions: Vec<Extension>,
    /// How long to wait for each expected reply.
    pub reply_timeout: Duration,
    /// Log every frame to stderr.
    pub verbose: bool,
    /// How to kill a node and restart Redis (enables the `cluster.*` scenarios).
    pub cluster: Option<Arc<dyn ClusterControl>>,
    /// TCP or WebSocket, and the WebSocket endpoint's path.
    pub transport: Transport,
    pub ws_path: String,
    /// Chat or echo scenarios.
    pub profile: Profile,
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            single: false,
            max_line: None,
            max_conns: None,
            idle_timeout: None,
            rate_limit: None,
            max_backlog: None,
            max_conns_per_ip: None,
            only: None,
            extensions: Vec::new(),
            reply_timeout: Duration::from_millis(3000),
            verbose: false,
            cluster: None,
            transport: Transport::Tcp,
            ws_path: crate::ws::DEFAULT_PATH.to_string(),
            profile: Profile::Chat,
        }
    }
}

/// Runs every scenario (or those matching `config.only`) against `addr`.
pub fn run_checks(addr: SocketAddr, config: &CheckConfig) -> CheckReport {
    run_checks_with(&[addr], config, |_| {})
}

/// Runs every scenario against the nodes of one cluster, spreading each scenario's clients
/// over them.
pub fn run_cluster_checks(addrs: &[SocketAddr], config: &CheckConfig) -> CheckReport {
    run_checks_with(addrs, config, |_| {})
}

/// Like [`run_checks`], calling `on_result` as each scenario finishes (the CLI prints as it goes).
fn run_checks_with(
    addrs: &[SocketAddr],
    config: &CheckConfig,
    mut on_result: impl FnMut(&ScenarioResult),
) -> CheckReport {
    let ctx = Ctx::with_addrs(addrs, config.clone());
    let mut results = Vec::new();
    // Against a single server, the cluster scenarios are not even listed: they only exist for
    // the nodes of a cluster, or when the checker can kill nodes (`--cluster-ctl`).
    let cluster = addrs.len() > 1 || config.cluster.is_some();
    let ws = config.transport == Transport::Ws;
    for scenario in all_scenarios(cluster, ws, config.profile, &config.extensions) {
        if let Some(only) = &config.only {
            if !scenario.name.contains(only.as_str()) {
                continue;
            }
        }
        let outcome = match skip_reason(&scenario, config) {
            Some(reason) => Outcome::Skip(reason),
            None => run_one(&scenario, &ctx),
        };
        let result = ScenarioResult {
            name: scenario.name,
            outcome,
        };
        on_result(&result);
        results.push(result);
    }
    CheckReport { results }
}

fn run_one(scenario: &Scenario, ctx: &Ctx) -> Outcome {
    if ctx.config.verbose {
        eprintln!("--- {}", scenario.name);
    }
    // A panic in a scenario is a checker bug, but it must not hide the other results.
    match catch_unwind(AssertUnwindSafe(|| (scenario.run)(ctx))) {
        Ok(Ok(())) => Outcome::Pass,
        Ok(Err(why)) => Outcome::Fail(why),
        Err(panic) => {
            let text = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            Outcome::Fail(format!("the checker panicked: {text}"))
        }
    }
}

/// What a scenario needs beyond one client and no limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// Two or more clients connected at once.
    TwoClients,
    MaxLine,
    MaxConns,
    IdleTimeout,
    RateLimit,
    MaxBacklog,
    /// A backlog large enough for the checker's bursts (see [`MIN_BURST_BACKLOG`]).
    BurstBacklog,
    MaxConnsPerIp,
    /// A way to kill nodes and restart Redis (`--cluster-ctl`), and two nodes or more.
    ClusterControl,
    /// A WebSocket connection (`--transport ws`).
    WebSocket,
}

/// The ordering scenarios send bursts of up to ~100 KB to each member at once. A server
/// configured with a smaller `--max-backlog` may legitimately cut a member whose reader thread
/// (on a busy machine) falls that far behind, so below this those scenarios are skipped.
pub const MIN_BURST_BACKLOG: usize = 256 * 1024;

/// One named check.
pub(crate) struct Scenario {
    pub name: &'static str,
    pub needs: &'static [Need],
    pub run: fn(&Ctx) -> Result<(), String>,
}

/// The scenarios of `profile`; the WebSocket ones only over WebSocket (`ws`), the cluster ones
/// only for a cluster.
fn all_scenarios(
    cluster: bool,
    ws: bool,
    profile: Profile,
    extensions: &[Extension],
) -> Vec<Scenario> {
    if profile == Profile::Echo {
        return echo::scenarios();
    }
    let mut all = Vec::new();
    all.extend(requests::scenarios());
    all.extend(rooms::scenarios());
    all.extend(errors::scenarios());
    all.extend(framing::scenarios());
    all.extend(ordering::scenarios());
    all.extend(limits::scenarios());
    all.extend(burst::scenarios());
    all.extend(half_close::scenarios());
    all.extend(abuse::scenarios());
    all.extend(extensions::scenarios(extensions));
    if ws {
        all.extend(websocket::scenarios());
    }
    if cluster {
        // Last: a killed node stays dead for the rest of the run.
        all.extend(cluster::scenarios());
    }
    all
}

fn skip_reason(scenario: &Scenario, config: &CheckConfig) -> Option<String> {
    let ws = config.transport == Transport::Ws;
    if ws {
        if let Some(why) = transport::tcp_only(scenario.name) {
            return Some(format!("TCP only: {why}"));
        }
    } else if scenario.needs.contains(&Need::WebSocket) {
        return Some("a WebSocket scenario: run with --transport ws".into());
    }
    if config.max_conns_per_ip.is_some() && !scenario.needs.contains(&Need::MaxConnsPerIp) {
        return Some(
            "the server limits connections per address (--max-conns-per-ip), which this \
             scenario may exceed; check it against a server without the limit"
                .into(),
        );
    }
    if config.rate_limit.is_some() && !scenario.needs.contains(&Need::RateLimit) {
        return Some(
            "the server has a rate limit (--rate-limit), which this scenario would trip; \
             check it against a server without one"
                .into(),
        );
    }
    for need in scenario.needs {
        let missing = match need {
            Need::TwoClients if config.single => {
                return Some(
                    "needs two clients connected at once; the server serves one at a time \
                     (--single)"
                        .into(),
                )
            }
            Need::TwoClients => None,
            Need::MaxLine => config.max_line.is_none().then_some("--max-line"),
            Need::MaxConns => config.max_conns.is_none().then_some("--max-conns"),
            Need::IdleTimeout => config.idle_timeout.is_none().then_some("--idle-timeout"),
            Need::RateLimit => config.rate_limit.is_none().then_some("--rate-limit"),
            Need::MaxBacklog => config.max_backlog.is_none().then_some("--max-backlog"),
            Need::MaxConnsPerIp => config
                .max_conns_per_ip
                .is_none()
                .then_some("--max-conns-per-ip"),
            Need::BurstBacklog => match config.max_backlog {
                Some(backlog) if backlog < MIN_BURST_BACKLOG => {
                    return Some(format!(
                        "the server's --max-backlog ({backlog}) is below the {MIN_BURST_BACKLOG} \
                         bytes this scenario's bursts may queue for a reader"
                    ))
                }
                _ => None,
            },
            Need::ClusterControl if config.cluster.is_none() => {
                return Some(
                    "a cluster scenario: pass --cluster-ctl (a program that kills nodes and \
                     restarts Redis) and the nodes' addresses"
                        .into(),
                )
            }
            Need::ClusterControl | Need::WebSocket => None,
        };
        if let Some(flag) = missing {
            return Some(format!(
                "pass {flag} (the server's setting) to test {}",
                scenario.name
            ));
        }
    }
    None
}

/// What every scenario gets: the server, the configuration, and fresh names.
pub(crate) struct Ctx {
    /// The server, or the nodes of a cluster.
    pub addrs: Vec<SocketAddr>,
    /// Turns for [`Ctx::place`]: which node the next client connects to.
    placement: AtomicUsize,
    /// Nodes a scenario killed: no client is placed there any more.
    dead: Mutex<HashSet<SocketAddr>>,
    pub config: CheckConfig,
    /// Distinguishes this run's names from those of an earlier run against the same server.
    run_tag: String,
    counter: AtomicUsize,
}

impl Ctx {
    fn new(addr: SocketAddr, config: CheckConfig) -> Ctx {
        Ctx::with_addrs(&[addr], config)
    }

    fn with_addrs(addrs: &[SocketAddr], config: CheckConfig) -> Ctx {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0)
            ^ u128::from(std::process::id());
        Ctx {
            addrs: addrs.to_vec(),
            placement: AtomicUsize::new(0),
            dead: Mutex::new(HashSet::new()),
            config,
            run_tag: base36(seed % 36u128.pow(4)),
            counter: AtomicUsize::new(0),
        }
    }

    /// A name no other scenario of this run uses: `base` (ASCII, a few letters) plus a suffix.
    /// Scenarios use fresh rooms so that leftovers of earlier scenarios never show up in them.
    pub fn fresh(&self, base: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{base}{n}_{}", self.run_tag)
    }

    pub fn timeout(&self) -> Duration {
        self.config.reply_timeout
    }

    /// Where the next client connects: the live nodes in turn (always the server, if one).
    pub fn place(&self) -> SocketAddr {
        let dead = self.dead.lock().unwrap_or_else(|p| p.into_inner());
        let live: Vec<SocketAddr> = self
            .addrs
            .iter()
            .copied()
            .filter(|a| !dead.contains(a))
            .collect();
        let live = if live.is_empty() { &self.addrs } else { &live };
        live[self.placement.fetch_add(1, Ordering::Relaxed) % live.len()]
    }

    /// The first node: for scenarios whose clients must share one server (its limits are
    /// per process).
    pub fn first(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// A scenario killed this node.
    pub fn mark_dead(&self, addr: SocketAddr) {
        self.dead
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(addr);
    }
}

fn base36(mut n: u128) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(digits[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

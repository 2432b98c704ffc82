//! # `loadgen fuzz`: a network fuzzer any server can face
//!
//! It speaks only the protocol, over TCP, so it grades a server written in any language. For
//! `--duration` it attacks the server from `--conns` connections at once with what broken and
//! hostile clients send (see `attack.rs`: random and mutated frames, partial lines, invalid
//! UTF-8, lines past `--max-line`, floods, abrupt resets), while a witness client (see
//! `witness.rs`) checks on its own connection that the server keeps answering it within
//! `--witness-timeout`, and correctly. It reports:
//!
//! - **crashes**: a connection is refused, or the witness is cut off and nobody can connect;
//! - **hangs**: the witness got no reply in time;
//! - **wrong answers**: a reply that is not what the protocol says (an invalid frame to
//!   anyone, a wrong error code to the witness, pongs missing or out of order after a flood, a
//!   line past the limit that does not end the connection, …).
//!
//! ```text
//! loadgen fuzz --addr 127.0.0.1:8888 --duration 60s                  # a server of many clients
//! loadgen fuzz --addr 127.0.0.1:8888 --duration 60s --single         # one client at a time
//! loadgen fuzz --addr 127.0.0.1:8888 --seed 42 --max-line 4096       # replay; the server's limit
//! ```
//!
//! The first line printed is the verdict (`OK: …` or `FAILED: …` with the seed to replay),
//! then the problems, then a summary; the exit status is 0 only when nothing was found. A seed
//! replays what each connection sends, in order; the interleaving of connections follows the
//! scheduler, so a found problem may need a few replays, or a longer run, to show again.
//!
//! The server must run without `--rate-limit` (the witness and the floods would trip it) and
//! with its `--max-line` told to the fuzzer.

mod attack;
mod frames;
mod report;
mod rng;
mod wire;
mod witness;

pub use report::{FuzzReport, Problem, ProblemKind, Setup};

use crate::run::parse_duration;
use anyhow::Context as _;
use attack::Attacker;
use report::Tally;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use witness::Witness;

/// `loadgen fuzz` flags.
#[derive(clap::Args, Debug)]
pub struct FuzzArgs {
    /// The server to fuzz.
    #[arg(long)]
    pub addr: SocketAddr,
    /// How long to attack (`60s`, `2m`, …); the run then checks the server once more and stops.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Attacking connections at once (besides the witness).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub conns: u16,
    /// The seed of everything the run sends (default: from the clock; printed to replay it).
    #[arg(long)]
    pub seed: Option<u64>,
    /// The server's --max-line: the oversized and at-the-limit lines are sized from it.
    #[arg(long, default_value_t = chat_core::decoder::DEFAULT_MAX_LINE)]
    pub max_line: usize,
    /// How long the witness waits for each reply before calling it a hang.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub witness_timeout: Duration,
    /// The server serves one client at a time: attack sessions and witness visits take turns.
    #[arg(long)]
    pub single: bool,
}

/// The settings of a run (what [`fuzz`] takes; the flags map one to one).
#[derive(Debug, Clone)]
pub struct FuzzConfig {
    /// The server to fuzz.
    pub addr: SocketAddr,
    /// How long to attack.
    pub duration: Duration,
    /// Attacking connections at once, besides the witness (ignored with `single`).
    pub conns: usize,
    /// The seed of everything the run sends.
    pub seed: u64,
    /// The server's `--max-line`, which sizes the oversized and at-the-limit lines.
    pub max_line: usize,
    /// How long the witness waits for each reply before calling it a hang.
    pub witness_timeout: Duration,
    /// The server serves one client at a time: attacks and witness visits take turns.
    pub single: bool,
}

impl FuzzConfig {
    /// The defaults of the flags, for `addr`, with a seed from the clock.
    pub fn new(addr: SocketAddr) -> FuzzConfig {
        FuzzConfig {
            addr,
            duration: Duration::from_secs(60),
            conns: 8,
            seed: clock_seed(),
            max_line: chat_core::decoder::DEFAULT_MAX_LINE,
            witness_timeout: Duration::from_secs(2),
            single: false,
        }
    }
}

/// Runs `loadgen fuzz` from the command line: prints the report, exits 1 on any problem.
pub fn main(args: FuzzArgs) -> anyhow::Result<ExitCode> {
    let config = FuzzConfig {
        addr: args.addr,
        duration: args.duration,
        conns: usize::from(args.conns),
        seed: args.seed.unwrap_or_else(clock_seed),
        max_line: args.max_line,
        witness_timeout: args.witness_timeout,
        single: args.single,
    };
    eprintln!(
        "loadgen fuzz: {:.0} s against {} with seed {} …",
        config.duration.as_secs_f64(),
        config.addr,
        config.seed
    );
    let report = fuzz(&config)?;
    print!("{}", report.render());
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Fuzzes the server at `config.addr` for `config.duration`; returns what was found. `Err`
/// only when the server cannot be reached at the start.
pub fn fuzz(config: &FuzzConfig) -> anyhow::Result<FuzzReport> {
    TcpStream::connect_timeout(&config.addr, Duration::from_secs(5))
        .with_context(|| format!("cannot connect to {} to start fuzzing", config.addr))?;
    let started = Instant::now();
    let ctx = Ctx {
        addr: config.addr,
        seed: config.seed,
        max_line: config.max_line,
        witness_timeout: config.witness_timeout,
        tag: base36((config.seed ^ u64::from(std::process::id()) << 20) % 36u64.pow(5)),
        end: started + config.duration,
        stop: AtomicBool::new(false),
        halted: AtomicBool::new(false),
        tally: Tally::new(started),
    };
    let mut witness = Witness::new(&ctx);
    if config.single {
        take_turns(&ctx, &mut witness);
    } else {
        std::thread::scope(|scope| {
            let witness = scope.spawn(|| witness.run());
            for id in 0..config.conns {
                let ctx = &ctx;
                scope.spawn(move || Attacker::new(ctx, id).run());
            }
            while Instant::now() < ctx.end && !ctx.stopping() {
                std::thread::sleep(Duration::from_millis(20));
            }
            ctx.stop.store(true, Ordering::SeqCst);
            let _ = witness.join();
        });
    }
    // The attack is over: the server must still serve, old connection and new.
    if !ctx.halted.load(Ordering::SeqCst) {
        if let Err(failure) = witness.finale() {
            ctx.report("witness, after the attack", failure);
        }
    }
    let setup = Setup {
        addr: config.addr,
        seed: config.seed,
        duration: config.duration,
        conns: config.conns,
        single: config.single,
        max_line: config.max_line,
        witness_timeout: config.witness_timeout,
    };
    Ok(ctx.tally.report(setup, started.elapsed()))
}

/// The one-client-at-a-time mode: an attack session, then (every few sessions) a witness
/// visit, in turn, on one thread; never two connections at once.
fn take_turns(ctx: &Ctx, witness: &mut Witness<'_>) {
    let mut attacker = Attacker::new(ctx, 0);
    let mut sessions = 0u64;
    while Instant::now() < ctx.end && !ctx.stopping() {
        attacker.one_session();
        sessions += 1;
        if sessions.is_multiple_of(4) && !ctx.stopping() {
            if let Err(failure) = witness.visit() {
                ctx.report("witness", failure);
            }
        }
    }
    ctx.stop.store(true, Ordering::SeqCst);
}

/// What every thread of a run shares.
pub(crate) struct Ctx {
    /// The server under test.
    addr: SocketAddr,
    /// The run's seed; each attacker and the witness derive their own generator from it.
    seed: u64,
    /// The server's `--max-line`.
    max_line: usize,
    /// The witness's bound on each reply.
    witness_timeout: Duration,
    /// Part of every name this run uses, so that they collide with no other run's.
    tag: String,
    /// When the attack ends.
    end: Instant,
    /// Set when the attack ends (its time is up, or a crash or hang was found).
    stop: AtomicBool,
    /// Set when a crash or hang stopped the run: later failures are its echoes, not news.
    halted: AtomicBool,
    /// Everything counted and found so far.
    tally: Tally,
}

/// What went wrong in a session or a witness check, before it is classified.
pub(crate) enum Failure {
    /// A connection was refused: nobody is listening any more.
    Refused(io::Error),
    /// The witness got no reply in time.
    Silent(String),
    /// The witness's connection closed under it.
    Closed(String),
    /// A reply the protocol does not allow.
    Wrong(String),
}

impl Ctx {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// How long an attacker waits for a reply it can predict (the oversized line's close,
    /// pongs after a flood): generous, because the witness, not the attackers, judges speed.
    fn slow_bound(&self) -> Duration {
        (self.witness_timeout * 5).max(Duration::from_secs(10))
    }

    /// The deadline of an attacker's wait for a predictable reply, and whether the run's end
    /// cut it short (a wait cut short proves nothing).
    fn slow_deadline(&self) -> (Instant, bool) {
        let now = Instant::now();
        let full = now + self.slow_bound();
        let cutoff = if self.halted.load(Ordering::SeqCst) {
            now
        } else {
            self.end + self.witness_timeout
        };
        (full.min(cutoff), cutoff < full)
    }

    /// The next frame on an attacker's connection, waiting until `deadline` unless a crash or
    /// hang stops the run first (then it gives up within a tenth of a second).
    fn next(&self, wire: &mut wire::Wire<'_>, deadline: Instant) -> wire::Next {
        loop {
            let slice = deadline.min(Instant::now() + Duration::from_millis(100));
            match wire.next(slice) {
                wire::Next::Timeout if slice < deadline && !self.halted.load(Ordering::SeqCst) => {}
                other => return other,
            }
        }
    }

    fn connect_timeout(&self) -> Duration {
        self.witness_timeout.max(Duration::from_secs(5))
    }

    /// Classifies and records a failure; a crash or a hang stops the run.
    fn report(&self, who: &str, failure: Failure) {
        if self.halted.load(Ordering::SeqCst) {
            return;
        }
        let (kind, detail) = match failure {
            Failure::Refused(e) => (
                ProblemKind::Crash,
                format!("a connection was refused ({e}): the server is gone"),
            ),
            Failure::Silent(detail) => (ProblemKind::Hang, detail),
            Failure::Closed(detail) => self.after_close(detail),
            Failure::Wrong(detail) => (ProblemKind::WrongAnswer, detail),
        };
        if self.tally.problem(kind, who, detail) {
            self.halted.store(true, Ordering::SeqCst);
            self.stop.store(true, Ordering::SeqCst);
        }
    }

    /// The witness was cut off: a crash if nobody can connect any more, a hang if connecting
    /// hangs, else a wrong answer (the server closed a well-behaved client).
    fn after_close(&self, detail: String) -> (ProblemKind, String) {
        match TcpStream::connect_timeout(&self.addr, self.witness_timeout) {
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => (
                ProblemKind::Crash,
                format!("{detail}, and new connections are refused: the server is gone"),
            ),
            Err(e) => (
                ProblemKind::Hang,
                format!("{detail}, and a new connection could not be made ({e})"),
            ),
            Ok(_) => (ProblemKind::WrongAnswer, detail),
        }
    }
}

fn clock_seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        % 1_000_000_007
}

fn base36(mut n: u64) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(char::from(digits[(n % 36) as usize]));
        n /= 36;
        if n == 0 {
            return out.into_iter().rev().collect();
        }
    }
}

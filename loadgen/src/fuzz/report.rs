//! What a fuzzing run found: the problems (crashes, hangs, wrong answers), the counters, and
//! the verdict line and summary that `loadgen fuzz` prints.

use crate::run::counts;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many problems are kept with their details (all are counted).
const KEPT_PROBLEMS: usize = 20;

/// The three things the fuzzer looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProblemKind {
    /// The server is gone: a connection was refused, or the witness was cut off and nobody
    /// can connect any more.
    Crash,
    /// The server stopped answering: the witness got no reply within `--witness-timeout`.
    Hang,
    /// The server answered, but not as the protocol says.
    WrongAnswer,
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProblemKind::Crash => "crash",
            ProblemKind::Hang => "hang",
            ProblemKind::WrongAnswer => "wrong answer",
        })
    }
}

/// One problem, with who saw it and when.
#[derive(Debug, Clone)]
pub struct Problem {
    /// Crash, hang or wrong answer.
    pub kind: ProblemKind,
    /// Time since the start of the run.
    pub at: Duration,
    /// `witness`, or `attacker N, session M (kind)`.
    pub who: String,
    /// What was sent, what was expected, what came.
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at {:.1} s, {}: {}",
            self.kind,
            self.at.as_secs_f64(),
            self.who,
            self.detail
        )
    }
}

/// The attack session kinds, in the order of the summary.
pub const SESSION_KINDS: [&str; 10] = [
    "chatter",
    "mutant",
    "garbage",
    "dribble",
    "oversize",
    "at-limit",
    "flood",
    "reset",
    "half-close",
    "hold",
];

/// Counters shared by every thread of a run.
#[derive(Debug)]
pub struct Tally {
    /// The start of the run: problems are stamped relative to it.
    started: Instant,
    /// Sessions run, by kind (the index in [`SESSION_KINDS`]).
    pub sessions: [AtomicU64; SESSION_KINDS.len()],
    /// Connections opened (attackers and witness).
    pub connections: AtomicU64,
    /// Connections that could not be opened for a reason other than a refusal (a timeout).
    pub connect_failures: AtomicU64,
    /// Connections we ended with a reset (`SO_LINGER` 0).
    pub resets_sent: AtomicU64,
    /// Bytes written to the server.
    pub bytes_out: AtomicU64,
    /// Complete lines received from the server.
    pub frames_in: AtomicU64,
    /// Connections the server closed while we still used them.
    pub closed_by_server: AtomicU64,
    /// Witness requests answered, and their reply times.
    witness: Mutex<Vec<Duration>>,
    /// Error frames received, by code.
    errors: Mutex<BTreeMap<String, u64>>,
    /// The first problems in detail, and how many of each kind there were in all.
    problems: Mutex<(Vec<Problem>, BTreeMap<ProblemKind, u64>)>,
}

impl Tally {
    pub fn new(started: Instant) -> Tally {
        Tally {
            started,
            sessions: Default::default(),
            connections: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            resets_sent: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            frames_in: AtomicU64::new(0),
            closed_by_server: AtomicU64::new(0),
            witness: Mutex::new(Vec::new()),
            errors: Mutex::new(BTreeMap::new()),
            problems: Mutex::new((Vec::new(), BTreeMap::new())),
        }
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn error_code(&self, code: &str) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        *errors.entry(code.to_string()).or_default() += 1;
    }

    pub fn witness_reply(&self, took: Duration) {
        let mut replies = self.witness.lock().unwrap_or_else(|e| e.into_inner());
        replies.push(took);
    }

    /// Records a problem; returns whether it ends the run (crashes and hangs do).
    pub fn problem(&self, kind: ProblemKind, who: &str, detail: String) -> bool {
        let problem = Problem {
            kind,
            at: self.started.elapsed(),
            who: who.to_string(),
            detail,
        };
        let mut problems = self.problems.lock().unwrap_or_else(|e| e.into_inner());
        *problems.1.entry(kind).or_default() += 1;
        if problems.0.len() < KEPT_PROBLEMS {
            problems.0.push(problem);
        }
        kind != ProblemKind::WrongAnswer
    }

    /// The report, once every thread has stopped.
    pub fn report(&self, setup: Setup, wall: Duration) -> FuzzReport {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (problems, counts) = self
            .problems
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut replies = self
            .witness
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        replies.sort_unstable();
        let percentile = |p: f64| {
            let last = replies.len().checked_sub(1)?;
            replies.get(((last as f64) * p).round() as usize).copied()
        };
        FuzzReport {
            setup,
            wall,
            crashes: counts.get(&ProblemKind::Crash).copied().unwrap_or(0),
            hangs: counts.get(&ProblemKind::Hang).copied().unwrap_or(0),
            wrong_answers: counts.get(&ProblemKind::WrongAnswer).copied().unwrap_or(0),
            problems,
            sessions: SESSION_KINDS
                .iter()
                .zip(&self.sessions)
                .map(|(kind, n)| (kind.to_string(), load(n)))
                .collect(),
            connections: load(&self.connections),
            connect_failures: load(&self.connect_failures),
            resets_sent: load(&self.resets_sent),
            bytes_out: load(&self.bytes_out),
            frames_in: load(&self.frames_in),
            closed_by_server: load(&self.closed_by_server),
            errors: self
                .errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            witness_replies: replies.len() as u64,
            witness_p50: percentile(0.5),
            witness_p99: percentile(0.99),
            witness_max: replies.last().copied(),
        }
    }
}

/// The run's settings, as the report shows them.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The server fuzzed.
    pub addr: SocketAddr,
    /// The seed that replays the run.
    pub seed: u64,
    /// The attack time asked for.
    pub duration: Duration,
    /// Attacking connections at once.
    pub conns: usize,
    /// One client at a time (`--single`).
    pub single: bool,
    /// The `--max-line` the lines were sized for.
    pub max_line: usize,
    /// The witness's bound on each reply.
    pub witness_timeout: Duration,
}

/// The outcome of a run (see [`FuzzReport::render`] for the printed form).
#[derive(Debug, Clone)]
pub struct FuzzReport {
    /// What was run.
    pub setup: Setup,
    /// How long the run took, the final checks included.
    pub wall: Duration,
    /// Problems found, by kind (all of them, not only those in `problems`).
    pub crashes: u64,
    pub hangs: u64,
    pub wrong_answers: u64,
    /// The first problems found, in order, with their details.
    pub problems: Vec<Problem>,
    /// Sessions run, by kind.
    pub sessions: Vec<(String, u64)>,
    /// The run's counters, at the end.
    pub connections: u64,
    pub connect_failures: u64,
    pub resets_sent: u64,
    pub bytes_out: u64,
    pub frames_in: u64,
    pub closed_by_server: u64,
    /// Error frames received, by code.
    pub errors: BTreeMap<String, u64>,
    /// Witness requests answered correctly, and their reply times (`None`: no reply).
    pub witness_replies: u64,
    pub witness_p50: Option<Duration>,
    pub witness_p99: Option<Duration>,
    pub witness_max: Option<Duration>,
}

impl FuzzReport {
    /// No crash, no hang, no wrong answer.
    pub fn ok(&self) -> bool {
        self.crashes + self.hangs + self.wrong_answers == 0
    }

    /// The first line: `OK: …` or `FAILED: …`, with the seed to replay it.
    pub fn verdict(&self) -> String {
        let s = &self.setup;
        if self.ok() {
            return format!(
                "OK: no crash, no hang, no wrong answer in {:.1} s of fuzzing {} (seed {})",
                self.wall.as_secs_f64(),
                s.addr,
                s.seed
            );
        }
        let mut parts = Vec::new();
        for (n, what) in [
            (self.crashes, "crash"),
            (self.hangs, "hang"),
            (self.wrong_answers, "wrong answer"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}{}", if n == 1 { "" } else { "s" }));
            }
        }
        format!(
            "FAILED: {} fuzzing {} (seed {}; replay with --seed {})",
            parts.join(", "),
            s.addr,
            s.seed,
            s.seed
        )
    }

    /// The verdict line, the problems, then the summary.
    pub fn render(&self) -> String {
        let s = &self.setup;
        let mut out = self.verdict();
        out.push('\n');
        for problem in &self.problems {
            let _ = writeln!(out, "  {problem}");
        }
        let total = self.crashes + self.hangs + self.wrong_answers;
        if total > self.problems.len() as u64 {
            let _ = writeln!(out, "  … and {} more", total - self.problems.len() as u64);
        }
        let ms = |d: Option<Duration>| {
            d.map(|d| format!("{:.1} ms", d.as_secs_f64() * 1000.0))
                .unwrap_or_else(|| "-".into())
        };
        let mode = if s.single {
            "one connection at a time (--single)".to_string()
        } else {
            format!("{} attacking connections at once", s.conns)
        };
        let _ = writeln!(
            out,
            "target      {}, {mode}, --max-line {}",
            s.addr, s.max_line
        );
        let _ = writeln!(
            out,
            "run         {:.1} s of {:.1} s, seed {}",
            self.wall.as_secs_f64(),
            s.duration.as_secs_f64(),
            s.seed
        );
        let sessions: u64 = self.sessions.iter().map(|(_, n)| n).sum();
        let kinds = counts(self.sessions.iter().map(|(kind, n)| (kind, n)));
        let _ = writeln!(out, "sessions    {sessions} ({kinds})");
        let _ = writeln!(
            out,
            "connections {} opened, {} failed to open, {} reset by us, {} closed by the server",
            self.connections, self.connect_failures, self.resets_sent, self.closed_by_server
        );
        let _ = writeln!(
            out,
            "traffic     {} bytes sent, {} frames received",
            self.bytes_out, self.frames_in
        );
        let errors = if self.errors.is_empty() {
            "none".to_string()
        } else {
            counts(&self.errors)
        };
        let _ = writeln!(out, "errors      {errors}");
        let _ = writeln!(
            out,
            "witness     {} replies checked; reply time p50 {}, p99 {}, max {} (bound {:.1} s)",
            self.witness_replies,
            ms(self.witness_p50),
            ms(self.witness_p99),
            ms(self.witness_max),
            s.witness_timeout.as_secs_f64()
        );
        out
    }
}

/// Cuts text to 160 characters for messages, escaping control characters so that a message
/// stays on one line.
pub fn clip(text: &str) -> String {
    let text = text.trim_end_matches('\n');
    let mut out: String = text
        .chars()
        .take(160)
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect();
    if text.chars().count() > 160 {
        out.push('…');
    }
    out
}

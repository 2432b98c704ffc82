//! What the `redis_ratio` bench runs, and how its table is made: our fastest servers against
//! `redis-server`, side by side, in alternating rounds.
//!
//! The question is a ratio, not a rate: how many requests (ping) and deliveries (chat) per
//! second chat-epoll, chat-async and chat-reactor serve where Redis serves one, with the same
//! load generator, on the same machine, at the same moment. A single run swings by a fifth on a
//! shared machine, so the bench alternates: round 1 runs every target once, round 2 again in a
//! rotated order, and so on; each figure is the median of its rounds, and the ratios are ratios
//! of medians. A slow moment of the machine then costs every target a round, not one target
//! all of them.
//!
//! | workload | what each of the 1,000 connections does | the figure |
//! |---|---|---|
//! | `ping` | `ping`, wait for `pong`, next `ping` (Redis: `PING`) | replies per second |
//! | `chat` | in a room of 10: a message, wait for its own copy, the next (Redis: `PUBLISH` to the room's channel, every member `SUBSCRIBE`d) | deliveries per second to the other members |
//! | `idle` | connect, join (Redis: `SUBSCRIBE`), hold; 10,000 connections | server memory per connection |
//!
//! The targets of issue 17 are in [`GOALS`]; the table says next to each ratio whether it was
//! met. This module is pure (no processes): the plan, the rotation, the medians and the table,
//! unit-tested; `benches/redis_ratio.rs` runs it.

use serde::Serialize;
use std::fmt::Write as _;
use std::time::Duration;

/// One server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Target {
    /// Its name in the table.
    pub name: &'static str,
    /// The binary in `target/release`; `None` is `redis-server` (found on `PATH`).
    pub program: Option<&'static str>,
    /// Its flags, besides `--addr` and `--idle-timeout 0`.
    pub args: &'static [&'static str],
}

impl Target {
    pub fn is_redis(&self) -> bool {
        self.program.is_none()
    }
}

/// The servers, in the order of the first round. chat-epoll runs edge-triggered: with the
/// short-read rule it makes one `read` per ready socket and never `epoll_ctl(MOD)`, the least
/// system calls per request of its two modes.
pub const TARGETS: [Target; 4] = [
    Target {
        name: "chat-epoll (edge)",
        program: Some("chat-epoll"),
        args: &["--trigger", "edge"],
    },
    Target {
        name: "chat-async",
        program: Some("chat-async"),
        args: &[],
    },
    Target {
        name: "chat-reactor",
        program: Some("chat-reactor"),
        args: &[],
    },
    Target {
        name: "Redis",
        program: None,
        args: &[],
    },
];

/// The index of chat-epoll and of Redis in [`TARGETS`]: the two ends of every ratio.
pub const EPOLL: usize = 0;
pub const REDIS: usize = 3;

/// A workload of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Load {
    /// Closed-loop `ping`: replies per second.
    Ping,
    /// Closed-loop chat in rooms of 10: deliveries per second.
    Chat,
}

impl Load {
    pub const ALL: [Load; 2] = [Load::Ping, Load::Chat];

    pub fn name(self) -> &'static str {
        match self {
            Load::Ping => "ping",
            Load::Chat => "chat",
        }
    }

    /// What the table calls its figure.
    pub fn figure(self) -> &'static str {
        match self {
            Load::Ping => "replies/s",
            Load::Chat => "deliveries/s",
        }
    }
}

/// The targets of issue 17, checked in the table.
pub struct Goals {
    /// chat-epoll ÷ Redis, ping.
    pub ping_vs_redis: f64,
    /// chat-epoll ÷ Redis, chat.
    pub chat_vs_redis: f64,
    /// chat-async and chat-reactor ÷ chat-epoll, both workloads, at least.
    pub vs_epoll: f64,
    /// chat-async's memory per idle connection, bytes, at most.
    pub async_idle_bytes: f64,
}

pub const GOALS: Goals = Goals {
    ping_vs_redis: 1.2,
    chat_vs_redis: 1.3,
    vs_epoll: 0.85,
    async_idle_bytes: 2048.0,
};

/// Sizes and durations of one run of the bench.
#[derive(Debug, Clone, Serialize)]
pub struct RatioPlan {
    pub quick: bool,
    /// Rounds; each runs every target once per workload.
    pub rounds: usize,
    /// Connections of the ping and chat runs.
    pub conns: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Connections of the idle (memory) run.
    pub idle_conns: usize,
    pub idle_duration: Duration,
}

impl RatioPlan {
    /// The plan of issue 17 (3 rounds of 4 s after 1 s of warm-up, 1,000 connections; 10,000
    /// idle), or a smoke test in quick mode.
    pub fn new(quick: bool) -> RatioPlan {
        if quick {
            RatioPlan {
                quick,
                rounds: 1,
                conns: 200,
                warmup: Duration::from_millis(500),
                duration: Duration::from_secs(1),
                idle_conns: 500,
                idle_duration: Duration::from_secs(1),
            }
        } else {
            RatioPlan {
                quick,
                rounds: 3,
                conns: 1_000,
                warmup: Duration::from_secs(1),
                duration: Duration::from_secs(4),
                idle_conns: 10_000,
                idle_duration: Duration::from_secs(2),
            }
        }
    }

    /// The targets of round `round` (0-based), in the order they run: the list rotated by the
    /// round, so each target runs first once, and never always right after the same one.
    pub fn order(&self, round: usize) -> Vec<usize> {
        let n = TARGETS.len();
        (0..n).map(|i| (i + round) % n).collect()
    }
}

/// What one run measured (from the load generator's report).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sample {
    /// Replies/s (ping) or deliveries/s (chat).
    pub rate: f64,
    /// The generator's send lag, p50 and p99 (µs).
    pub send_lag_p50_us: f64,
    pub send_lag_p99_us: f64,
    /// CPU per acknowledged message (µs), the generator's and the server's.
    pub generator_us_per_msg: f64,
    pub server_us_per_msg: f64,
    /// The server's CPU, % of one core.
    pub server_cpu_percent: f64,
    /// The run's verdict was not OK, and why (lost copies, the generator fell behind...).
    pub problems: Vec<String>,
}

/// The median of `values` (the mean of the middle two for an even count); NaN for none.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    match sorted.len() % 2 {
        1 => sorted[mid],
        _ => (sorted[mid - 1] + sorted[mid]) / 2.0,
    }
}

/// Every sample of a bench run: `samples[load][target]` holds one per round.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Results {
    pub samples: [[Vec<Sample>; 4]; 2],
    /// Memory per idle connection of each target, bytes.
    pub idle_bytes: [Option<f64>; 4],
}

impl Results {
    /// The median of a field over the rounds of one target and workload.
    pub fn median_of(&self, load: Load, target: usize, field: impl Fn(&Sample) -> f64) -> f64 {
        let values: Vec<f64> = self.samples[load as usize][target]
            .iter()
            .map(field)
            .collect();
        median(&values)
    }

    /// The median rate of `target` divided by the median rate of `of`.
    pub fn ratio(&self, load: Load, target: usize, of: usize) -> f64 {
        self.median_of(load, target, |s| s.rate) / self.median_of(load, of, |s| s.rate)
    }

    /// Every problem reported by a run, with where it happened.
    pub fn problems(&self) -> Vec<String> {
        let mut all = Vec::new();
        for load in Load::ALL {
            for (target, samples) in self.samples[load as usize].iter().enumerate() {
                for (round, sample) in samples.iter().enumerate() {
                    for problem in &sample.problems {
                        all.push(format!(
                            "{} {}, round {}: {problem}",
                            TARGETS[target].name,
                            load.name(),
                            round + 1
                        ));
                    }
                }
            }
        }
        all
    }
}

/// The report: the machine and the load on it, the rates, the ratios against the goals, the
/// generator's send lag and CPU beside the servers', and the memory per idle connection.
pub fn to_markdown(plan: &RatioPlan, machine: &str, context: &str, results: &Results) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "machine: {machine}{}",
        if plan.quick {
            " (QUICK MODE: a smoke test, not a measurement)"
        } else {
            ""
        }
    );
    let _ = writeln!(md, "{context}\n");
    let _ = writeln!(
        md,
        "{} connections, closed loop (chat: rooms of 10); each figure is the median of {} \
         alternating round(s) of {} s after {} s of warm-up.\n",
        plan.conns,
        plan.rounds,
        plan.duration.as_secs_f64(),
        plan.warmup.as_secs_f64()
    );
    let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
    let _ = writeln!(md, "| workload | {} |", names.join(" | "));
    let _ = writeln!(md, "|---|{}", "---:|".repeat(TARGETS.len()));
    for load in Load::ALL {
        let cells: Vec<String> = (0..TARGETS.len())
            .map(|t| thousands(results.median_of(load, t, |s| s.rate)))
            .collect();
        let _ = writeln!(
            md,
            "| {}: {} | {} |",
            load.name(),
            load.figure(),
            cells.join(" | ")
        );
    }

    let _ = writeln!(md, "\n| ratio | measured | goal |");
    let _ = writeln!(md, "|---|---:|---|");
    let goal = |ratio: f64, at_least: f64| {
        let verdict = if ratio >= at_least { "met" } else { "NOT met" };
        format!("≥ {at_least:.2}: {verdict}")
    };
    let vs_redis = [
        (Load::Ping, GOALS.ping_vs_redis),
        (Load::Chat, GOALS.chat_vs_redis),
    ];
    for (load, at_least) in vs_redis {
        let r = results.ratio(load, EPOLL, REDIS);
        let _ = writeln!(
            md,
            "| {} ÷ Redis, {} | {r:.2}× | {} |",
            TARGETS[EPOLL].name,
            load.name(),
            goal(r, at_least)
        );
    }
    for (target, server) in TARGETS.iter().enumerate().take(REDIS).skip(1) {
        for load in Load::ALL {
            let r = results.ratio(load, target, EPOLL);
            let _ = writeln!(
                md,
                "| {} ÷ {}, {} | {r:.2}× | {} |",
                server.name,
                TARGETS[EPOLL].name,
                load.name(),
                goal(r, GOALS.vs_epoll)
            );
        }
    }

    let _ = writeln!(
        md,
        "\nThe generator beside each server (medians): its send lag, and CPU per acknowledged \
         message, the generator's against the server's.\n"
    );
    let _ = writeln!(
        md,
        "| workload | target | send lag p50 / p99 | generator µs/msg | server µs/msg | server CPU |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|");
    for load in Load::ALL {
        for (t, target) in TARGETS.iter().enumerate() {
            let m = |field: fn(&Sample) -> f64| results.median_of(load, t, field);
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} / {:.0} µs | {:.2} | {:.2} | {:.0} % |",
                load.name(),
                target.name,
                m(|s| s.send_lag_p50_us),
                m(|s| s.send_lag_p99_us),
                m(|s| s.generator_us_per_msg),
                m(|s| s.server_us_per_msg),
                m(|s| s.server_cpu_percent),
            );
        }
    }

    let _ = writeln!(
        md,
        "\n| {} idle connections | server memory per connection |",
        thousands(plan.idle_conns as f64)
    );
    let _ = writeln!(md, "|---|---:|");
    for (t, target) in TARGETS.iter().enumerate() {
        let cell = match results.idle_bytes[t] {
            Some(bytes) => format!("{:.1} KiB", bytes / 1024.0),
            None => "not measured".into(),
        };
        let _ = writeln!(md, "| {} | {cell} |", target.name);
    }
    let async_idle = results.idle_bytes[1].unwrap_or(f64::NAN);
    let _ = writeln!(
        md,
        "\nchat-async per idle connection: goal ≤ {:.0} KiB: {}",
        GOALS.async_idle_bytes / 1024.0,
        if async_idle <= GOALS.async_idle_bytes {
            "met"
        } else {
            "NOT met"
        }
    );
    let problems = results.problems();
    if !problems.is_empty() {
        let _ = writeln!(md, "\nRuns whose verdict was not OK:\n");
        for problem in problems {
            let _ = writeln!(md, "- {problem}");
        }
    }
    md
}

/// `1234567.8` as `1,234,568`; NaN as `–`.
pub fn thousands(value: f64) -> String {
    if !value.is_finite() {
        return "–".into();
    }
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if value < 0.0 {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every round runs every target once, and each target leads one round of three.
    #[test]
    fn rounds_rotate_the_order() {
        let plan = RatioPlan::new(false);
        let rounds: Vec<Vec<usize>> = (0..plan.rounds).map(|r| plan.order(r)).collect();
        for order in &rounds {
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(sorted, vec![0, 1, 2, 3]);
        }
        let firsts: Vec<usize> = rounds.iter().map(|o| o[0]).collect();
        assert_eq!(firsts, vec![0, 1, 2]);
        assert_eq!(TARGETS[EPOLL].program, Some("chat-epoll"));
        assert!(TARGETS[REDIS].is_redis());
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(median(&[f64::NAN, 5.0]), 5.0);
    }

    /// The ratios are ratios of medians, and the table says which goals were met.
    #[test]
    fn the_table_has_the_ratios_and_the_goals() {
        let mut results = Results::default();
        let rates = [[120.0, 100.0, 90.0, 100.0], [130.0, 120.0, 100.0, 100.0]];
        for load in Load::ALL {
            for (t, rate) in rates[load as usize].iter().enumerate() {
                for k in [0.9, 1.0, 1.1] {
                    results.samples[load as usize][t].push(Sample {
                        rate: rate * k,
                        ..Sample::default()
                    });
                }
            }
        }
        results.idle_bytes = [Some(800.0), Some(1700.0), Some(900.0), Some(10_000.0)];
        assert!((results.ratio(Load::Chat, EPOLL, REDIS) - 1.3).abs() < 1e-9);
        let md = to_markdown(&RatioPlan::new(false), "test machine", "load 1.0", &results);
        assert!(
            md.contains("| chat-epoll (edge) ÷ Redis, ping | 1.20× | ≥ 1.20: met |"),
            "{md}"
        );
        assert!(
            md.contains("| chat-epoll (edge) ÷ Redis, chat | 1.30× | ≥ 1.30: met |"),
            "{md}"
        );
        assert!(
            md.contains("| chat-reactor ÷ chat-epoll (edge), chat | 0.77× | ≥ 0.85: NOT met |"),
            "{md}"
        );
        assert!(md.contains("| chat-async | 1.7 KiB |"), "{md}");
        assert!(md.contains("goal ≤ 2 KiB: met"), "{md}");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(1_234_567.8), "1,234,568");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(f64::NAN), "–");
    }
}

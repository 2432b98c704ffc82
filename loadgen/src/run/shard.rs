//! One process's share of the run (a shard): its rooms, its engine threads, and the accounting
//! of every message once they are done.
//!
//! The shard's own thread only coordinates. It starts one engine thread per `--threads`, each
//! with its own poller and every `threads`-th connection of the shard, and reports progress to
//! the parent while they ramp up. When every attempt has finished it tells the parent, waits for
//! the schedule, plans the rooms from who actually joined, hands the plan to the engine threads
//! (waking their pollers), and at the end checks every receiver's streams against what each
//! sender sent: rooms are whole inside one shard, so this needs nothing from other processes.

use super::codec::Codec;
use super::conn::Sends;
use super::event_loop;
use super::link::{Command, PlanTimes, Report, ShardSpec};
use super::merge::{ShardResult, EXAMPLES};
use super::outcome::{ConnEnd, Outcome, ThreadResult};
use super::sequence::Streams;
use super::stats::{Live, Recorder, Tally};
use super::workload::{Clock, Layout, Membership};
use super::{RunConfig, Target, Workload};
use polling::Poller;
use std::net::IpAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// How often the shard reports its counters for the progress line.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// What the engine threads of one shard share (read-only, but for the atomics and the plan).
pub(crate) struct Shared {
    pub config: RunConfig,
    pub codec: Codec,
    pub layout: Layout,
    pub clock: Clock,
    /// The `content` of every message.
    pub padding: Vec<u8>,
    /// Source addresses to spread over (empty: let the kernel choose).
    pub sources: Vec<IpAddr>,
    /// This shard's connections (indices in the whole run).
    pub conns: Range<usize>,
    /// When connection 0 of the run is due to connect; the others follow at `--connect-rate`.
    pub ramp_start_us: u64,
    /// Engine threads of the shard (the drain waits until all have sent their last message).
    pub threads: usize,
    pub live: Live,
    /// Which connections joined, indexed from `conns.start` (read to plan the rooms).
    pub joined: Vec<AtomicBool>,
    /// The schedule and the rooms, set once every shard has connected.
    pub plan: OnceLock<Arc<Plan>>,
    /// The run is off (the parent went away, a thread failed): every thread stops now.
    pub abort: AtomicBool,
}

/// The schedule and who is in each room, as the engine threads follow it.
#[derive(Debug)]
pub(crate) struct Plan {
    pub times: PlanTimes,
    pub membership: Membership,
}

impl Plan {
    /// Whether a message meant for `intended_us` counts in the measured window.
    pub(crate) fn measured(&self, intended_us: u64) -> bool {
        intended_us >= self.times.measure_from_us && intended_us < self.times.send_until_us
    }
}

impl Shared {
    /// Whether connection `conn` churns in this run (`--churn`).
    pub(crate) fn churns(&self, conn: u32) -> bool {
        self.config.churn.is_some() && self.layout.is_churner(conn as usize)
    }

    /// What connection `conn` sends, to whom, how many copies each message makes, and whose
    /// messages it expects, given the plan.
    pub(crate) fn role(&self, plan: &Plan, conn: u32) -> (Sends, u64, Streams) {
        let layout = &self.layout;
        let members = plan.membership.room_members(layout, conn);
        match self.config.workload {
            Workload::Idle => (Sends::Nothing, 0, Streams::default()),
            Workload::Ping => (Sends::Ping, 1, Streams::new(vec![conn])),
            Workload::Echo => (Sends::Echo, 1, Streams::new(vec![conn])),
            Workload::Chat => {
                // Its own copy, and one per other member that stays: what churners receive is
                // counted apart (see `churn.rs`).
                let stayers = members
                    .iter()
                    .filter(|&&m| m != conn && !self.churns(m))
                    .count();
                (
                    Sends::Room(layout.room_name(layout.room_of(conn as usize))),
                    1 + stayers as u64,
                    Streams::new(members.to_vec()),
                )
            }
            Workload::Private => {
                let expected = std::iter::once(conn)
                    .chain(plan.membership.partner_of(layout, conn))
                    .collect();
                let target = match plan.membership.partner(layout, conn) {
                    Some(p) => Sends::Private(layout.nickname(p as usize)),
                    None => Sends::Nothing, // alone in its room: nobody to write to
                };
                (target, 2, Streams::new(expected))
            }
        }
    }
}

/// Runs one shard: `commands` come from the parent, `report` goes to it.
pub(crate) fn run(spec: ShardSpec, commands: Receiver<Command>, report: &dyn Fn(Report)) {
    match run_shard(spec, &commands, report) {
        Ok(result) => report(Report::Done(Box::new(result))),
        Err(reason) => report(Report::Failed(reason)),
    }
}

fn run_shard(
    spec: ShardSpec,
    commands: &Receiver<Command>,
    report: &dyn Fn(Report),
) -> Result<ShardResult, String> {
    let conns = spec.layout.conns_of(&spec.rooms);
    // One descriptor per connection: lift the soft limit (often 1024) to the hard limit.
    if let Ok(limit) = chat_core::net::raise_fd_limit() {
        if conns.len() as u64 + 64 > limit {
            return Err(format!(
                "{} connections in one process need more open files than it may have ({limit}); \
                 use more processes (--procs) or raise the hard limit (ulimit -Hn)",
                conns.len()
            ));
        }
    }
    let threads = spec.threads.clamp(1, conns.len().max(1));
    let pollers = (0..threads)
        .map(|_| Poller::new().map(Arc::new))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot create a poller: {e}"))?;
    report(Report::Ready);
    let ramp_start_us = match commands.recv() {
        Ok(Command::Ramp { at_us }) => at_us,
        Ok(other) => return Err(format!("expected the ramp, got {other:?}")),
        Err(_) => return Err("the parent went away before the ramp".into()),
    };
    let config = spec.config.clone();
    let shared = Arc::new(Shared {
        codec: match config.target {
            Target::Chat if config.workload == Workload::Echo => Codec::Echo {
                padding: config.message_size.max(1),
            },
            Target::Chat => Codec::Chat,
            Target::Redis => Codec::Redis {
                subscribe: config.workload != Workload::Ping,
            },
        },
        padding: vec![b'x'; config.message_size.max(1)],
        sources: spec.sources.clone(),
        joined: conns.clone().map(|_| AtomicBool::new(false)).collect(),
        conns: conns.clone(),
        ramp_start_us,
        threads,
        layout: spec.layout.clone(),
        clock: spec.clock,
        live: Live::default(),
        plan: OnceLock::new(),
        abort: AtomicBool::new(false),
        config,
    });
    let mut handles = Vec::with_capacity(threads);
    let mut outcome = Ok(());
    for (t, poller) in pollers.iter().enumerate() {
        let (shared, poller) = (Arc::clone(&shared), Arc::clone(poller));
        // Every `threads`-th connection: the phases of one thread's senders stay evenly spread.
        let mine: Vec<u32> = conns
            .clone()
            .skip(t)
            .step_by(threads)
            .map(|c| c as u32)
            .collect();
        match std::thread::Builder::new()
            .name(format!("loadgen-{}-{t}", spec.index))
            .spawn(move || event_loop::run_thread(shared, poller, mine))
        {
            Ok(handle) => handles.push(handle),
            Err(e) => {
                outcome = Err(format!("cannot start an engine thread: {e}"));
                break;
            }
        }
    }
    if let Err(reason) =
        outcome.and_then(|()| coordinate(&shared, &spec, &pollers, &handles, commands, report))
    {
        shared.abort.store(true, Ordering::Relaxed);
        for poller in &pollers {
            let _ = poller.notify();
        }
        for handle in handles {
            let _ = handle.join();
        }
        return Err(reason);
    }
    let mut results = Vec::with_capacity(threads);
    for handle in handles {
        results.push(
            handle
                .join()
                .map_err(|_| "an engine thread panicked".to_string())??,
        );
    }
    Ok(account(&shared, results))
}

/// The shard's side of the conversation with the parent, while the engine threads run.
fn coordinate(
    shared: &Shared,
    spec: &ShardSpec,
    pollers: &[Arc<Poller>],
    handles: &[std::thread::JoinHandle<Result<ThreadResult, String>>],
    commands: &Receiver<Command>,
    report: &dyn Fn(Report),
) -> Result<(), String> {
    // Ramp: until every attempt has finished (each ends within two timeouts).
    let live = &shared.live;
    let mut last_report = std::time::Instant::now();
    while Live::get(&live.attempts_done) < shared.conns.len() as u64 {
        if last_report.elapsed() >= PROGRESS_EVERY {
            report(Report::Progress(live.snapshot()));
            last_report = std::time::Instant::now();
        }
        if handles.iter().any(|h| h.is_finished()) {
            return Err("an engine thread stopped during the ramp".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    report(Report::Progress(live.snapshot()));
    report(Report::Connected {
        connected: Live::get(&live.connected),
        failed: Live::get(&live.failed),
    });

    // The schedule, once every shard has connected; meanwhile the threads keep reading.
    let times = loop {
        match commands.recv_timeout(PROGRESS_EVERY) {
            Ok(Command::Plan(times)) => break times,
            Ok(other) => return Err(format!("expected the plan, got {other:?}")),
            Err(RecvTimeoutError::Timeout) => report(Report::Progress(live.snapshot())),
            Err(RecvTimeoutError::Disconnected) => {
                return Err("the parent went away before the plan".into())
            }
        }
    };
    let joined: Vec<bool> = shared
        .joined
        .iter()
        .map(|j| j.load(Ordering::Relaxed))
        .collect();
    let membership = Membership::new(&shared.layout, spec.rooms.clone(), &joined);
    let _ = shared.plan.set(Arc::new(Plan { times, membership }));
    let wake_all = || {
        for poller in pollers {
            let _ = poller.notify();
        }
    };
    wake_all();
    // Wake the threads at each boundary of the plan: between boundaries a thread with nothing
    // due soon waits without a timer (see `COARSE_US` in `event_loop.rs`).
    let mut boundaries = vec![
        times.start_us,
        times.measure_from_us,
        times.send_until_us,
        times.drain_until_us,
    ];
    boundaries.reverse();
    let mut last_report = std::time::Instant::now();
    while handles.iter().any(|h| !h.is_finished()) {
        let now = shared.clock.now_us();
        while boundaries.last().is_some_and(|&b| b <= now) {
            boundaries.pop();
            wake_all();
        }
        if last_report.elapsed() >= PROGRESS_EVERY {
            report(Report::Progress(live.snapshot()));
            last_report = std::time::Instant::now();
        }
        let next = boundaries.last().map_or(u64::MAX, |&b| b - now);
        std::thread::sleep(Duration::from_micros(next).min(Duration::from_millis(20)));
    }
    report(Report::Progress(live.snapshot()));
    Ok(())
}

/// Adds up the threads and checks every stream: the shard's result.
fn account(shared: &Shared, results: Vec<ThreadResult>) -> ShardResult {
    let addrs = shared.config.addrs.len();
    let mut out = ShardResult {
        tally: Tally::new(addrs),
        recorder: Recorder::new(addrs),
        threads: results.len(),
        ..ShardResult::default()
    };
    let first = shared.conns.start;
    let mut ends: Vec<Option<Outcome>> = (0..shared.conns.len()).map(|_| None).collect();
    for result in results {
        out.tally.add(&result.tally);
        out.recorder.merge(&result.recorder);
        out.cpu_ns += result.cpu_ns;
        out.spin_ns += result.spin_ns;
        out.busiest_thread_ns = out
            .busiest_thread_ns
            .max(result.cpu_ns.saturating_sub(result.spin_ns));
        out.ramp_end_us = out.ramp_end_us.max(result.last_attempt_us);
        if out.churn_failure_example.is_none() {
            out.churn_failure_example = result.churn_failure_example;
        }
        match result.slice {
            Some(Ok(us)) => out.slice_us = out.slice_us.max(Some(us)),
            Some(Err(why)) => {
                out.slice_error.get_or_insert(why);
            }
            None => {}
        }
        for ConnEnd { index, outcome } in result.ends {
            match &outcome {
                Outcome::Failed(f) => {
                    let n = out.failures.entry(f.kind.clone()).or_default();
                    if *n == 0 && out.failure_examples.len() < EXAMPLES {
                        out.failure_examples
                            .push(format!("{}: {}", f.kind, f.detail));
                    }
                    *n += 1;
                }
                Outcome::Joined {
                    dropped: Some(reason),
                    ..
                } if out.drop_examples.len() < EXAMPLES => {
                    out.drop_examples
                        .push(format!("connection {index}: {reason}"));
                }
                Outcome::Joined { .. } => {}
            }
            ends[index as usize - first] = Some(outcome);
        }
    }
    if let Some(plan) = shared.plan.get() {
        (out.lost, out.duplicated, out.out_of_order) = check_streams(shared, plan, &ends);
    }
    out
}

/// Every message accounted for: (lost, duplicated, out of order) over all receivers.
fn check_streams(shared: &Shared, plan: &Plan, ends: &[Option<Outcome>]) -> (u64, u64, u64) {
    let layout = &shared.layout;
    let first = shared.conns.start;
    // A sender's count is trusted for the tail check only if it stayed connected to the end.
    let sent_by = |s: u32| match ends.get(s as usize - first) {
        Some(Some(Outcome::Joined {
            dropped: None,
            sent,
            trusted: true,
            ..
        })) => Some(*sent),
        _ => None,
    };
    let (mut lost, mut duplicated, mut out_of_order) = (0, 0, 0);
    for (i, end) in ends.iter().enumerate() {
        let Some(Outcome::Joined {
            streams,
            dropped,
            churned,
            ..
        }) = end
        else {
            continue;
        };
        let (d, o) = streams.duplicated_and_out_of_order();
        duplicated += d;
        out_of_order += o;
        if dropped.is_some() || *churned {
            // What a dropped receiver missed is reported as the drop itself; a churner is away
            // part of the time.
            continue;
        }
        let conn = (first + i) as u32;
        let senders: Vec<u32> = match shared.config.workload {
            Workload::Chat => plan.membership.room_members(layout, conn).to_vec(),
            Workload::Private => std::iter::once(conn)
                .chain(plan.membership.partner_of(layout, conn))
                .collect(),
            Workload::Ping | Workload::Echo => vec![conn],
            Workload::Idle => Vec::new(),
        };
        for sender in senders {
            lost += match streams.get(sender) {
                Some(stream) => stream.lost(sent_by(sender)),
                None => sent_by(sender).unwrap_or(0),
            };
        }
    }
    (lost, duplicated, out_of_order)
}

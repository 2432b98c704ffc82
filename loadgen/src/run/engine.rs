//! The run's phases, across its shards: start them, ramp up, publish the schedule, warm up,
//! measure (the servers' CPU over exactly the measured window), drain, and add up.
//!
//! With one process the single shard runs on threads of this one; with several, each is a
//! worker process (`worker.rs`). Either way the parent only coordinates: it never touches a
//! socket of the workload, so it needs no descriptors and costs no CPU worth counting.

use super::assemble::{self, Phases};
use super::link::{Command, PlanTimes, Report, ShardSpec};
use super::merge::ShardResult;
use super::progress::Progress;
use super::series::{self, SeriesWatch};
use super::shard;
use super::stats::{Recorder, Snapshot, Tally};
use super::sysstat::{count_all_fds, ServerWatch};
use super::worker::Worker;
use super::workload::{Clock, Layout};
use super::{RunConfig, RunReport};
use anyhow::{bail, Context};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Pause between the end of the connect phase and the first send, so every shard has the
/// schedule before it starts.
const START_DELAY_US: u64 = 100_000;
/// Pause between telling the shards to ramp and the first connect, for the same reason.
const RAMP_DELAY_US: u64 = 20_000;
/// Worker processes get this long to start before the run gives up on them.
const STARTUP: Duration = Duration::from_secs(30);
/// Slack on top of the phases' own bounds before a silent shard counts as lost.
const SLACK: Duration = Duration::from_secs(60);

/// One shard, seen from the parent.
enum Shard {
    /// On threads of this process.
    Local {
        commands: Option<Sender<Command>>,
        thread: Option<JoinHandle<()>>,
    },
    /// In a worker process.
    Worker(Worker),
}

impl Shard {
    fn local(spec: ShardSpec, reports: Sender<(usize, Report)>) -> anyhow::Result<Shard> {
        let (commands, received) = mpsc::channel();
        let index = spec.index;
        let thread = std::thread::Builder::new()
            .name("loadgen-shard".into())
            .spawn(move || {
                shard::run(spec, received, &|report| {
                    let _ = reports.send((index, report));
                })
            })?;
        Ok(Shard::Local {
            commands: Some(commands),
            thread: Some(thread),
        })
    }

    fn send(&mut self, command: Command) -> anyhow::Result<()> {
        match self {
            Shard::Local { commands, .. } => commands
                .as_ref()
                .and_then(|c| c.send(command).ok())
                .context("the shard thread is gone"),
            Shard::Worker(worker) => worker.send(&command),
        }
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        if let Shard::Local { commands, thread } = self {
            // Hanging up tells a shard still waiting for a command to stop.
            commands.take();
            if let Some(thread) = thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// What the parent knows of its shards.
struct Board {
    reports: Receiver<(usize, Report)>,
    /// The run's latest counters, all shards added (the time series reads them).
    live: Arc<Mutex<Snapshot>>,
    ready: Vec<bool>,
    connected: Vec<Option<(u64, u64)>>,
    progress: Vec<Snapshot>,
    results: Vec<Option<ShardResult>>,
}

impl Board {
    fn new(reports: Receiver<(usize, Report)>, shards: usize) -> Board {
        Board {
            reports,
            live: Arc::new(Mutex::new(Snapshot::default())),
            ready: vec![false; shards],
            connected: vec![None; shards],
            progress: vec![Snapshot::default(); shards],
            results: (0..shards).map(|_| None).collect(),
        }
    }

    /// Takes reports until `enough` holds (true) or `until` passes (false), keeping the
    /// progress line up to date. A shard that failed fails the run.
    fn pump(
        &mut self,
        progress: &Progress,
        until: Instant,
        enough: impl Fn(&Board) -> bool,
    ) -> anyhow::Result<bool> {
        loop {
            if enough(self) {
                return Ok(true);
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            match self
                .reports
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok((i, report)) => match report {
                    Report::Ready => self.ready[i] = true,
                    Report::Progress(snapshot) => {
                        self.progress[i] = snapshot;
                        let mut total = Snapshot::default();
                        for s in &self.progress {
                            total.add(s);
                        }
                        progress.update(&total);
                        if let Ok(mut live) = self.live.lock() {
                            *live = total;
                        }
                    }
                    Report::Connected { connected, failed } => {
                        self.connected[i] = Some((connected, failed))
                    }
                    Report::Done(result) => self.results[i] = Some(*result),
                    Report::Failed(reason) => bail!("generator process {i} failed: {reason}"),
                },
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Ok(enough(self));
                }
            }
        }
    }
}

/// An `Instant` for `us` on the run's clock.
fn instant_at(clock: &Clock, us: u64) -> Instant {
    Instant::now() + Duration::from_micros(us.saturating_sub(clock.now_us()))
}

/// Each shard's rooms, source addresses and threads.
fn shard_specs(config: &RunConfig, layout: &Layout, clock: Clock, procs: usize) -> Vec<ShardSpec> {
    let rooms = layout.rooms();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = config.thread_count(cores);
    let per_proc = config.sources_per_proc();
    (0..procs)
        .map(|p| ShardSpec {
            index: p,
            config: config.clone(),
            layout: layout.clone(),
            rooms: p * rooms / procs..(p + 1) * rooms / procs,
            clock,
            sources: if config.binds_sources() {
                (0..per_proc)
                    .map(|k| IpAddr::V4(Ipv4Addr::new(127, 0, 0, (1 + p * per_proc + k) as u8)))
                    .collect()
            } else {
                Vec::new()
            },
            threads,
        })
        .collect()
}

/// Runs `config` across its shards and returns the report.
pub(crate) fn drive(config: &RunConfig) -> anyhow::Result<RunReport> {
    let wall = Instant::now();
    let clock = Clock::new();
    let layout = Layout::new(config.conns, config.room_size);
    let procs = config.proc_count();
    let specs = shard_specs(config, &layout, clock, procs);
    let threads_per_proc = specs.first().map_or(1, |s| s.threads);
    let server = ServerWatch::start(&config.server_pids);
    let fds_baseline = count_all_fds(&config.server_pids);
    let progress = Progress::start(config.progress, config.conns);
    let (reports, received) = mpsc::channel();
    let mut shards = Vec::with_capacity(procs);
    for spec in specs {
        shards.push(if procs == 1 {
            Shard::local(spec, reports.clone())?
        } else {
            Shard::Worker(Worker::spawn(&spec, reports.clone())?)
        });
    }
    drop(reports);
    let mut board = Board::new(received, procs);
    let mut generator_pids = vec![std::process::id()];
    generator_pids.extend(shards.iter().filter_map(|s| match s {
        Shard::Worker(worker) => Some(worker.pid()),
        Shard::Local { .. } => None,
    }));

    // 1. Start: every shard ready (descriptors raised, pollers made).
    progress.phase("starting");
    if !board.pump(&progress, Instant::now() + STARTUP, |b| {
        b.ready.iter().all(|&r| r)
    })? {
        bail!("the generator processes did not start within {STARTUP:?}");
    }

    // 2. Ramp up at --connect-rate, on one timeline for every shard. Each attempt ends within
    // two timeouts (connect, handshake).
    progress.phase("connecting");
    let ramp_start_us = clock.now_us() + RAMP_DELAY_US;
    let series = SeriesWatch::start(
        config.server_pids.clone(),
        generator_pids,
        config.sample_every,
        clock,
        ramp_start_us,
        Arc::clone(&board.live),
    );
    for shard in &mut shards {
        shard.send(Command::Ramp {
            at_us: ramp_start_us,
        })?;
    }
    let ramp_bound = Duration::from_secs_f64(config.conns as f64 / config.connect_rate)
        + 2 * config.connect_timeout
        + SLACK;
    if !board.pump(&progress, Instant::now() + ramp_bound, |b| {
        b.connected.iter().all(Option::is_some)
    })? {
        bail!("the connect phase did not end within {ramp_bound:?}");
    }
    let rss_connected_kib = server.as_ref().and_then(|s| s.now()).map(|s| s.rss_kib);
    let connected: u64 = board.connected.iter().flatten().map(|c| c.0).sum();

    // 3. Publish the schedule. With no connection open there is nothing to measure: at once.
    let now = clock.now_us();
    let times = if connected > 0 {
        let start_us = now + START_DELAY_US;
        let measure_from_us = start_us + config.warmup.as_micros() as u64;
        let send_until_us = measure_from_us + config.duration.as_micros() as u64;
        PlanTimes {
            start_us,
            measure_from_us,
            send_until_us,
            drain_until_us: send_until_us + config.drain.as_micros() as u64,
        }
    } else {
        PlanTimes {
            start_us: now,
            measure_from_us: now,
            send_until_us: now,
            drain_until_us: now,
        }
    };
    for shard in &mut shards {
        shard.send(Command::Plan(times))?;
    }

    // 4. Warm up, then measure: the servers' CPU over exactly the measured window (the engine
    // threads measure their own).
    progress.phase("warming up");
    board.pump(&progress, instant_at(&clock, times.measure_from_us), |_| {
        false
    })?;
    let sample = || (server.as_ref().and_then(|s| s.now()), Instant::now());
    let (server0, t0) = sample();
    progress.phase("measuring");
    board.pump(&progress, instant_at(&clock, times.send_until_us), |_| {
        false
    })?;
    let (server1, t1) = sample();

    // 5. Drain: the shards wait for the copies still in flight, at most --drain.
    progress.phase("draining");
    let until = instant_at(&clock, times.drain_until_us) + SLACK;
    if !board.pump(&progress, until, |b| b.results.iter().all(Option::is_some))? {
        bail!("the generator processes did not report their results in time");
    }
    progress.finish();
    drop(shards);
    let series = series.finish();
    // Every socket of the generator is closed now: give the servers a moment to close theirs.
    let fds_after = fds_baseline.and_then(|baseline| {
        let settle = Instant::now() + series::SETTLE;
        loop {
            let now = count_all_fds(&config.server_pids);
            if now.is_none_or(|n| n <= baseline) || Instant::now() >= settle {
                return now;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let since_ramp = |us: u64| us.saturating_sub(ramp_start_us) as f64 / 1e6;
    let soak = series::judge(
        &series,
        since_ramp(times.measure_from_us),
        since_ramp(times.send_until_us),
        fds_baseline,
        fds_after,
    );

    let addrs = config.addrs.len();
    let mut total = ShardResult {
        tally: Tally::new(addrs),
        recorder: Recorder::new(addrs),
        ..ShardResult::default()
    };
    for result in board.results.iter().flatten() {
        total.merge(result);
    }
    let phases = Phases {
        procs,
        threads_per_proc,
        ramp: Duration::from_micros(total.ramp_end_us.saturating_sub(ramp_start_us)),
        // No connection, no window: nothing was measured, so no percentages either.
        measured_wall: if connected > 0 {
            t1 - t0
        } else {
            Duration::ZERO
        },
        server_cpu: server0
            .zip(server1)
            .map(|(a, b)| b.cpu.saturating_sub(a.cpu)),
        rss_connected_kib,
        sending: Duration::from_micros(times.send_until_us.saturating_sub(times.start_us)),
        series,
        soak,
    };
    Ok(assemble::build_report(
        config,
        &layout,
        &total,
        &phases,
        server.as_ref(),
        wall,
    ))
}

//! The run's phases: ramp up the connections, publish the schedule, warm up, measure, drain,
//! stop, and account for every message.

use super::codec::Codec;
use super::driver::{self, Outcome, Plan, Shared};
use super::progress::Progress;
use super::report::*;
use super::sequence::StreamCheck;
use super::stats::{Counters, Recorders};
use super::sysstat::{self, ServerWatch};
use super::workload::{Clock, Layout, Membership};
use super::{RunConfig, Target, Workload};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::time::sleep;

/// Pause between the end of the connect phase and the first send, so every task has seen the
/// schedule before it starts.
const START_DELAY_US: u64 = 100_000;

/// Failure and drop examples kept for the report.
const EXAMPLES: usize = 5;

/// Measurements taken at phase boundaries, for the report.
struct Phases {
    ramp: Duration,
    measured_wall: Duration,
    own_cpu: Duration,
    server_cpu: Option<Duration>,
    rss_connected_kib: Option<u64>,
}

pub(crate) async fn drive(config: &RunConfig, threads: usize) -> anyhow::Result<RunReport> {
    let wall = Instant::now();
    let clock = Clock::new();
    let sources = match config.source_count() {
        1 => Vec::new(),
        n => (0..n)
            .map(|k| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + k as u8)))
            .collect(),
    };
    let shared = Arc::new(Shared {
        addr: config.addr,
        codec: match config.target {
            Target::Chat => Codec::Chat,
            Target::Redis => Codec::Redis {
                subscribe: config.workload != Workload::Ping,
            },
        },
        workload: config.workload,
        rate: config.rate,
        connect_timeout: config.connect_timeout,
        layout: Layout::new(config.conns, config.room_size),
        clock,
        padding: "x".repeat(config.message_size.max(1)),
        sources,
        counters: Counters::default(),
        recorders: Recorders::new(threads * 8),
        joined: (0..config.conns).map(|_| AtomicBool::new(false)).collect(),
        sent: (0..config.conns).map(|_| AtomicU64::new(0)).collect(),
    });
    let server = config.server_pid.map(ServerWatch::start);
    let progress = Progress::start(config.progress, Arc::clone(&shared));
    let (plan_tx, plan_rx) = watch::channel(None);
    let (stop_tx, stop_rx) = watch::channel(false);

    // 1. Ramp up at --connect-rate. Each attempt ends within two timeouts (connect, handshake).
    progress.phase("connecting");
    let ramp_start = clock.now_us();
    let mut tasks = Vec::with_capacity(config.conns);
    for conn in 0..config.conns {
        let due = ramp_start + (conn as f64 * 1e6 / config.connect_rate) as u64;
        if due > clock.now_us() {
            tokio::time::sleep_until(clock.instant(due).into()).await;
        }
        tasks.push(tokio::spawn(driver::connection(
            Arc::clone(&shared),
            conn as u32,
            plan_rx.clone(),
            stop_rx.clone(),
        )));
    }
    while Counters::get(&shared.counters.attempts_done) < config.conns as u64 {
        sleep(Duration::from_millis(10)).await;
    }
    let ramp = Duration::from_micros(clock.now_us() - ramp_start);
    let rss_connected_kib = server.as_ref().and_then(|s| s.now()).map(|s| s.rss_kib);

    // 2. Publish the schedule, built from who actually joined.
    let joined: Vec<bool> = shared
        .joined
        .iter()
        .map(|j| j.load(Ordering::Relaxed))
        .collect();
    let membership = Membership::new(&shared.layout, &joined);
    let start_us = clock.now_us() + START_DELAY_US;
    let measure_from_us = start_us + config.warmup.as_micros() as u64;
    let send_until_us = measure_from_us + config.duration.as_micros() as u64;
    let plan = Arc::new(Plan {
        start_us,
        measure_from_us,
        send_until_us,
        membership,
    });
    let _ = plan_tx.send(Some(Arc::clone(&plan)));

    // 3. Warm up, then measure (CPU of both sides over exactly the measured window). With no
    // connection open there is nothing to measure: report at once.
    let anyone = joined.iter().any(|&j| j);
    if anyone {
        progress.phase("warming up");
        tokio::time::sleep_until(clock.instant(measure_from_us).into()).await;
    }
    progress.phase("measuring");
    let sample = || {
        let server = server.as_ref().and_then(|s| s.now());
        (sysstat::own_cpu(), server, Instant::now())
    };
    let (cpu0, server0, t0) = sample();
    if anyone {
        tokio::time::sleep_until(clock.instant(send_until_us).into()).await;
    }
    let (cpu1, server1, t1) = sample();

    // 4. Drain: wait for the copies still in flight, at most --drain.
    progress.phase("draining");
    let drain_until = send_until_us + config.drain.as_micros() as u64;
    let c = &shared.counters;
    while clock.now_us() < drain_until
        && Counters::get(&c.acked) + Counters::get(&c.delivered) < Counters::get(&c.expected)
    {
        sleep(Duration::from_millis(5)).await;
    }
    let _ = stop_tx.send(true);
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await.unwrap_or_else(|e| {
            Outcome::Failed(super::connect::Failure {
                kind: "internal".into(),
                detail: format!("connection task failed: {e}"),
            })
        }));
    }
    progress.finish();

    let phases = Phases {
        ramp,
        measured_wall: t1 - t0,
        own_cpu: cpu1.saturating_sub(cpu0),
        server_cpu: server0
            .zip(server1)
            .map(|(a, b)| b.cpu.saturating_sub(a.cpu)),
        rss_connected_kib,
    };
    Ok(build_report(
        config,
        threads,
        &shared,
        &plan,
        outcomes,
        &phases,
        server.as_ref(),
        wall,
    ))
}

/// Every message accounted for: (lost, duplicated, out of order) over all receivers.
fn check_streams(
    config: &RunConfig,
    shared: &Shared,
    plan: &Plan,
    received: &[Option<(HashMap<u32, StreamCheck>, bool)>],
) -> (u64, u64, u64) {
    let layout = &shared.layout;
    // A sender's count is trusted for the tail check only if it stayed connected to the end.
    let sent_by = |s: u32| match &received[s as usize] {
        Some((_, false)) => Some(shared.sent[s as usize].load(Ordering::Relaxed)),
        _ => None,
    };
    let (mut lost, mut duplicated, mut out_of_order) = (0, 0, 0);
    for (conn, entry) in received.iter().enumerate() {
        let Some((streams, dropped)) = entry else {
            continue;
        };
        for s in streams.values() {
            duplicated += s.duplicated;
            out_of_order += s.out_of_order;
        }
        if *dropped {
            continue; // what a dropped receiver missed is reported as the drop itself
        }
        let conn = conn as u32;
        let senders: Vec<u32> = match config.workload {
            Workload::Chat => plan.membership.room_members(layout, conn).to_vec(),
            Workload::Private => std::iter::once(conn)
                .chain(plan.membership.partner_of(layout, conn))
                .collect(),
            Workload::Ping => vec![conn],
            Workload::Idle => Vec::new(),
        };
        for sender in senders {
            lost += match streams.get(&sender) {
                Some(stream) => stream.lost(sent_by(sender)),
                None => sent_by(sender).unwrap_or(0),
            };
        }
    }
    (lost, duplicated, out_of_order)
}

#[allow(clippy::too_many_arguments)]
fn build_report(
    config: &RunConfig,
    threads: usize,
    shared: &Shared,
    plan: &Plan,
    outcomes: Vec<Outcome>,
    phases: &Phases,
    server: Option<&ServerWatch>,
    wall: Instant,
) -> RunReport {
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    let mut failure_examples = Vec::new();
    let mut drop_examples = Vec::new();
    let mut received = vec![None; config.conns];
    for outcome in outcomes {
        match outcome {
            Outcome::Failed(f) => {
                let n = failures.entry(f.kind.clone()).or_default();
                if *n == 0 && failure_examples.len() < EXAMPLES {
                    failure_examples.push(format!("{}: {}", f.kind, f.detail));
                }
                *n += 1;
            }
            Outcome::Joined {
                conn,
                streams,
                dropped,
            } => {
                if let Some(reason) = &dropped {
                    if drop_examples.len() < EXAMPLES {
                        drop_examples.push(format!("connection {conn}: {reason}"));
                    }
                }
                received[conn as usize] = Some((streams, dropped.is_some()));
            }
        }
    }
    let (lost, duplicated, out_of_order) = check_streams(config, shared, plan, &received);
    let c = &shared.counters;
    let rec = shared.recorders.merged();
    let connected = Counters::get(&c.connected) as usize;
    let measured_s = config.duration.as_secs_f64();
    let offered = config.rate.map(|r| r * connected as f64);
    let sending = config.workload != Workload::Idle;
    let scheduled = (config.rate.is_some() && sending)
        .then(|| Counters::get(&c.sent_measured) + Counters::get(&c.unsent_measured));
    let unsent = Counters::get(&c.unsent_measured);
    let send_lag = rec.send_lag.summary();
    let rate_kept = match scheduled {
        Some(s) if s > 0 => (unsent as f64) < 0.01 * s as f64 && send_lag.p99 < 50_000,
        _ => true,
    };
    let messages = MessageReport {
        offered_per_sec: offered.filter(|_| sending),
        scheduled,
        sent: Counters::get(&c.sent_measured),
        acked: Counters::get(&c.acked_measured),
        qps: round1(Counters::get(&c.acked_measured) as f64 / measured_s),
        deliveries: Counters::get(&c.delivered_measured),
        deliveries_per_sec: round1(Counters::get(&c.delivered_measured) as f64 / measured_s),
        sent_total: Counters::get(&c.sent),
        expected_copies: Counters::get(&c.expected),
        received_copies: Counters::get(&c.acked) + Counters::get(&c.delivered),
        lost,
        duplicated,
        out_of_order,
        unparsed: Counters::get(&c.unparsed),
        rate_kept,
    };
    let connections = ConnectionReport {
        attempted: config.conns,
        connected,
        failed: config.conns - connected,
        failures,
        failure_examples,
        dropped: Counters::get(&c.dropped) as usize,
        drop_examples,
        ramp_s: round3(phases.ramp.as_secs_f64()),
        connect_us: rec.connect.summary(),
        join_us: rec.join.summary(),
    };
    let server = server.map(|s| {
        let before = s.baseline.map_or(0, |b| b.rss_kib);
        let at_connected = phases.rss_connected_kib.unwrap_or(0);
        let cpu = phases.server_cpu.unwrap_or_default();
        ServerReport {
            pid: s.pid,
            cpu_s: round3(cpu.as_secs_f64()),
            cpu_percent: sysstat::cpu_percent(cpu, phases.measured_wall),
            rss_before_kib: before,
            rss_connected_kib: at_connected,
            rss_peak_kib: s.peak_rss_kib(),
            rss_per_conn_bytes: (connected > 0 && at_connected > 0).then(|| {
                round1(at_connected.saturating_sub(before) as f64 * 1024.0 / connected as f64)
            }),
        }
    });
    let mut report = RunReport {
        schema: SCHEMA.to_string(),
        headline: String::new(),
        ok: false,
        problems: Vec::new(),
        config: ConfigReport {
            addr: config.addr.to_string(),
            target: config.target,
            workload: config.workload,
            mode: if config.rate.is_some() {
                "open"
            } else {
                "closed"
            }
            .to_string(),
            conns: config.conns,
            room_size: config.room_size,
            rooms: shared.layout.rooms(),
            rate_per_conn: config.rate,
            duration_s: measured_s,
            warmup_s: config.warmup.as_secs_f64(),
            connect_rate: config.connect_rate,
            message_size: config.message_size,
            source_addrs: config.source_count(),
        },
        connections,
        messages,
        latency_us: LatencyReport {
            round_trip: rec.round_trip.summary(),
            round_trip_uncorrected: rec.round_trip_uncorrected.summary(),
            fanout: rec.fanout.summary(),
            fanout_uncorrected: rec.fanout_uncorrected.summary(),
            send_lag,
        },
        errors: rec.errors,
        generator: GeneratorReport {
            threads,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_s: round3(phases.own_cpu.as_secs_f64()),
            cpu_percent: sysstat::cpu_percent(phases.own_cpu, phases.measured_wall),
        },
        server,
        wall_s: round3(wall.elapsed().as_secs_f64()),
    };
    super::summary::judge(&mut report);
    report
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

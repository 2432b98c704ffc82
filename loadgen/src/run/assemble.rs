//! The report, built part by part from the merged results of every shard and what the parent
//! measured at the phase boundaries; then judged (`summary.rs`).

use super::merge::ShardResult;
use super::report::*;
use super::series::{SeriesSample, SoakReport};
use super::stats::Tally;
use super::sysstat::{self, ServerWatch};
use super::workload::Layout;
use super::{RunConfig, Transport, Workload};
use std::time::{Duration, Instant};

/// At this share of one core or more, an engine thread counts as saturated: it was busy all
/// the time, so the generator, not the server, set the pace.
pub(crate) const SATURATED_PERCENT: f64 = 90.0;

/// Share of the measured window's messages the generator may fail to send, by its own fault,
/// before it counts as behind.
const UNSENT_TOLERANCE: f64 = 0.01;

/// Share of the measured sends that may leave later than `--max-send-lag` (the send lag p99).
const LATE_TOLERANCE: f64 = 0.01;

/// Whether the generator kept its clock: at most 1 % of its measured sends late, which is a
/// send lag p99 within the limit, or a single late send. With fewer than a hundred sends the p99
/// is the slowest of them, and one hiccup of the machine (a lesson's sweep row of a few sends)
/// is not a generator that fell behind; two late sends, and over 1 %, are.
pub(crate) fn clock_kept(late: u64, sends: u64) -> bool {
    late <= 1 || late as f64 <= LATE_TOLERANCE * sends as f64
}

/// What the parent measured at the phase boundaries.
pub(crate) struct Phases {
    pub procs: usize,
    pub threads_per_proc: usize,
    /// From the first connect to the last attempt's end.
    pub ramp: Duration,
    /// The measured window as the parent timed it.
    pub measured_wall: Duration,
    /// The servers' CPU over that window.
    pub server_cpu: Option<Duration>,
    /// The servers' memory once everyone was connected.
    pub rss_connected_kib: Option<u64>,
    /// The sending window, warm-up included (churn per second is over it).
    pub sending: Duration,
    /// Memory and descriptors over time, and the verdict on them.
    pub series: Vec<SeriesSample>,
    pub soak: Option<SoakReport>,
}

pub(crate) fn build_report(
    config: &RunConfig,
    layout: &Layout,
    total: &ShardResult,
    phases: &Phases,
    server: Option<&ServerWatch>,
    wall: Instant,
) -> RunReport {
    let latency_us = latency_part(total);
    let messages = messages_part(config, total, &latency_us);
    let generator = generator_part(total, phases, &messages);
    let mut report = RunReport {
        schema: SCHEMA.to_string(),
        headline: String::new(),
        ok: false,
        problems: Vec::new(),
        config: config_part(config, layout, phases),
        connections: connections_part(config, total, phases),
        server: server.map(|s| server_part(s, phases, &total.tally)),
        per_addr: per_addr_part(config, total),
        churn: churn_part(config, layout, total, phases),
        series: phases.series.clone(),
        soak: phases.soak.clone(),
        errors: total.recorder.errors.clone(),
        messages,
        latency_us,
        generator,
        wall_s: round3(wall.elapsed().as_secs_f64()),
    };
    super::summary::judge(&mut report);
    report
}

fn config_part(config: &RunConfig, layout: &Layout, phases: &Phases) -> ConfigReport {
    ConfigReport {
        addr: config.addr_list(),
        addrs: config.addrs.iter().map(|a| a.to_string()).collect(),
        spread: config.spread,
        target: config.target,
        workload: config.workload,
        transport: config.transport,
        ws_path: (config.transport == Transport::Ws).then(|| config.ws_path.clone()),
        churn_per_sec: config.churn,
        sample_every_s: config.sample_every.as_secs_f64(),
        mode: if config.rate.is_some() {
            "open"
        } else {
            "closed"
        }
        .to_string(),
        conns: config.conns,
        room_size: config.room_size,
        rooms: layout.rooms(),
        rate_per_conn: config.rate,
        duration_s: config.duration.as_secs_f64(),
        warmup_s: config.warmup.as_secs_f64(),
        connect_rate: config.connect_rate,
        message_size: config.message_size,
        source_addrs: if config.binds_sources() {
            config.source_count()
        } else {
            1
        },
        procs: phases.procs,
        threads: phases.threads_per_proc,
        max_send_lag_us: config.max_send_lag.as_micros() as u64,
        tolerate_generator_lag: config.tolerate_generator_lag,
        spin_us: config.spin_us,
        slice_us: config.slice_us,
    }
}

fn connections_part(config: &RunConfig, total: &ShardResult, phases: &Phases) -> ConnectionReport {
    let t = &total.tally;
    ConnectionReport {
        attempted: config.conns,
        connected: t.connected as usize,
        failed: config.conns - t.connected as usize,
        failures: total.failures.clone(),
        failure_examples: total.failure_examples.clone(),
        dropped: t.dropped as usize,
        drop_examples: total.drop_examples.clone(),
        ramp_s: round3(phases.ramp.as_secs_f64()),
        connect_us: total.recorder.connect.summary(),
        join_us: total.recorder.join.summary(),
    }
}

fn latency_part(total: &ShardResult) -> LatencyReport {
    let rec = &total.recorder;
    LatencyReport {
        round_trip: rec.round_trip.summary(),
        round_trip_uncorrected: rec.round_trip_uncorrected.summary(),
        fanout: rec.fanout.summary(),
        fanout_uncorrected: rec.fanout_uncorrected.summary(),
        fanout_cross: rec.fanout_cross.summary(),
        send_lag: rec.send_lag.summary(),
    }
}

fn messages_part(
    config: &RunConfig,
    total: &ShardResult,
    latency: &LatencyReport,
) -> MessageReport {
    let t = &total.tally;
    let measured_s = config.duration.as_secs_f64();
    let sending = config.workload != Workload::Idle;
    let open = config.rate.is_some() && sending;
    let scheduled = open.then_some(t.sent_measured + t.unsent_measured);
    // Messages the generator itself failed to send (not held back by a full socket).
    let own_unsent = t.unsent_measured.saturating_sub(t.unsent_blocked);
    let late = total
        .recorder
        .send_lag
        .count_above(config.max_send_lag.as_micros() as u64);
    let rate_kept = match scheduled {
        Some(s) if s > 0 => {
            (own_unsent as f64) < UNSENT_TOLERANCE * s as f64
                && clock_kept(late, latency.send_lag.count)
        }
        _ => true,
    };
    MessageReport {
        offered_per_sec: config
            .rate
            .map(|r| r * t.connected as f64)
            .filter(|_| sending),
        scheduled,
        sent: t.sent_measured,
        acked: t.acked_measured,
        qps: round1(t.acked_measured as f64 / measured_s),
        deliveries: t.delivered_measured,
        deliveries_per_sec: round1(t.delivered_measured as f64 / measured_s),
        sent_total: t.sent,
        expected_copies: t.expected,
        received_copies: t.acked + t.delivered,
        lost: total.lost,
        duplicated: total.duplicated,
        out_of_order: total.out_of_order,
        unparsed: t.unparsed,
        unsent: t.unsent_measured,
        unsent_blocked: t.unsent_blocked,
        blocked: t.blocked,
        late,
        rate_kept,
    }
}

fn generator_part(
    total: &ShardResult,
    phases: &Phases,
    messages: &MessageReport,
) -> GeneratorReport {
    let cpu = Duration::from_nanos(total.cpu_ns);
    let busiest = Duration::from_nanos(total.busiest_thread_ns);
    let busiest_thread_percent = sysstat::cpu_percent(busiest, phases.measured_wall);
    GeneratorReport {
        procs: phases.procs,
        threads: total.threads,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_s: round3(cpu.as_secs_f64()),
        cpu_percent: sysstat::cpu_percent(cpu, phases.measured_wall),
        cpu_us_per_msg: per_msg(cpu, messages.acked),
        busiest_thread_percent,
        spin_s: round3(Duration::from_nanos(total.spin_ns).as_secs_f64()),
        slice_us: total.slice_us,
        slice_error: total.slice_error.clone(),
        behind: !messages.rate_kept || busiest_thread_percent >= SATURATED_PERCENT,
    }
}

fn churn_part(
    config: &RunConfig,
    layout: &Layout,
    total: &ShardResult,
    phases: &Phases,
) -> Option<ChurnReport> {
    let rate = config.churn?;
    let c = &total.tally.churn;
    let sending = phases.sending.as_secs_f64();
    Some(ChurnReport {
        rate_per_sec: rate,
        churners: layout.churners(),
        closes: c.closes,
        reconnects: c.reconnects,
        achieved_per_sec: if sending > 0.0 {
            round1(c.closes as f64 / sending)
        } else {
            0.0
        },
        reconnect_failures: c.failed,
        failure_example: total.churn_failure_example.clone(),
        ack_timeouts: c.ack_timeouts,
        busy: c.busy,
        sent: c.sent,
        skipped: c.skipped,
        received: c.received,
        rejoin_us: total.recorder.churn_rejoin.summary(),
    })
}

fn server_part(s: &ServerWatch, phases: &Phases, t: &Tally) -> ServerReport {
    let before = s.baseline.map_or(0, |b| b.rss_kib);
    let at_connected = phases.rss_connected_kib.unwrap_or(0);
    let cpu = phases.server_cpu.unwrap_or_default();
    let connected = t.connected;
    ServerReport {
        pids: s.pids.clone(),
        cpu_s: round3(cpu.as_secs_f64()),
        cpu_percent: sysstat::cpu_percent(cpu, phases.measured_wall),
        cpu_us_per_msg: per_msg(cpu, t.acked_measured),
        rss_before_kib: before,
        rss_connected_kib: at_connected,
        rss_peak_kib: s.peak_rss_kib(),
        rss_per_conn_bytes: (connected > 0 && at_connected > 0).then(|| {
            round1(at_connected.saturating_sub(before) as f64 * 1024.0 / connected as f64)
        }),
    }
}

fn per_addr_part(config: &RunConfig, total: &ShardResult) -> Vec<AddrReport> {
    config
        .addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            let t = total.tally.per_addr.get(i).cloned().unwrap_or_default();
            // With one address the engine records its latencies only once, as the totals.
            let (round_trip, fanout) = match (config.addrs.len(), total.recorder.per_addr.get(i)) {
                (1, _) | (_, None) => (&total.recorder.round_trip, &total.recorder.fanout),
                (_, Some(rec)) => (&rec.round_trip, &rec.fanout),
            };
            AddrReport {
                addr: addr.to_string(),
                attempted: t.attempted,
                connected: t.connected,
                failed: t.failed,
                dropped: t.dropped,
                sent: t.sent_measured,
                acked: t.acked_measured,
                deliveries: t.delivered_measured,
                round_trip_us: round_trip.summary(),
                fanout_us: fanout.summary(),
            }
        })
        .collect()
}

/// CPU microseconds per acknowledged message, one decimal; `None` without messages.
fn per_msg(cpu: Duration, acked: u64) -> Option<f64> {
    (acked > 0).then(|| round1(cpu.as_secs_f64() * 1e6 / acked as f64))
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::clock_kept;

    /// One late send never makes the generator "behind"; two do when they are over 1 % of the
    /// sends, which for a hundred sends or more is the send lag p99 over the limit.
    #[test]
    fn the_clock_is_kept_with_one_late_send_or_up_to_one_in_a_hundred() {
        assert!(clock_kept(0, 0));
        assert!(clock_kept(1, 2), "one late send of two: a hiccup");
        assert!(!clock_kept(2, 2), "every send late");
        assert!(!clock_kept(2, 150));
        assert!(clock_kept(10, 1000));
        assert!(!clock_kept(11, 1000));
        assert!(clock_kept(1, 1), "a single send, late");
    }
}

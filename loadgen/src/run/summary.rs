//! Judging a run (is it trustworthy? what went wrong?) and printing it as a readable table.

use super::report::RunReport;
use super::stats::LatencySummary;
use std::fmt::Write as _;

/// Fills `ok`, `problems` and `headline`. The headline names every problem, so a run that did
/// not open all its connections, lost messages, or could not keep its rate says so first.
pub(crate) fn judge(report: &mut RunReport) {
    let c = &report.connections;
    let m = &report.messages;
    let mut problems = Vec::new();
    if c.connected < c.attempted {
        let kinds: Vec<String> = c.failures.iter().map(|(k, n)| format!("{n} {k}")).collect();
        problems.push(format!(
            "only {} of {} connections opened ({})",
            c.connected,
            c.attempted,
            kinds.join(", ")
        ));
    }
    if c.dropped > 0 {
        problems.push(format!(
            "{} connections were closed during the run",
            c.dropped
        ));
    }
    for (n, what) in [
        (m.lost, "lost"),
        (m.duplicated, "duplicated"),
        (m.out_of_order, "out of order"),
    ] {
        if n > 0 {
            problems.push(format!("{n} copies {what}"));
        }
    }
    if !m.rate_kept {
        problems.push(format!(
            "the generator could not keep the offered rate ({} of {} measured messages sent, \
             send lag p99 {} µs): the figures describe a lower load",
            m.sent,
            m.scheduled.unwrap_or(0),
            report.latency_us.send_lag.p99
        ));
    }
    if m.unparsed > 0 {
        problems.push(format!("{} frames could not be parsed", m.unparsed));
    }
    if !report.errors.is_empty() {
        let codes: Vec<String> = report
            .errors
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        problems.push(format!("the server sent errors: {}", codes.join(", ")));
    }
    report.ok = c.connected == c.attempted
        && c.dropped == 0
        && m.lost == 0
        && m.duplicated == 0
        && m.out_of_order == 0;
    let figures = format!(
        "{}/{} connected, {} msg/s acknowledged, round trip p99 {} µs, {} deliveries/s, {} lost",
        c.connected,
        c.attempted,
        m.qps,
        report.latency_us.round_trip.p99,
        m.deliveries_per_sec,
        m.lost
    );
    report.headline = match (report.ok, problems.is_empty()) {
        (true, true) => format!("OK: {figures}"),
        (true, false) => format!("WARNING: {}. {figures}", problems.join("; ")),
        (false, _) => format!("FAILED: {}. {figures}", problems.join("; ")),
    };
    report.problems = problems;
}

/// The human-readable summary: the headline, then one block per concern.
pub fn render(report: &RunReport) -> String {
    let mut out = String::new();
    let c = &report.connections;
    let m = &report.messages;
    let cfg = &report.config;
    let _ = writeln!(out, "{}\n", report.headline);
    let rate = match cfg.rate_per_conn {
        Some(r) => format!("open loop, {r} msg/s per connection"),
        None => "closed loop".to_string(),
    };
    let target = serde_json::to_value(cfg.target).unwrap_or_default();
    let workload = serde_json::to_value(cfg.workload).unwrap_or_default();
    let _ = writeln!(
        out,
        "target       {} server at {}, workload {}, {} connections in {} room(s) of up to {}, \
         {rate}, {} s measured after {} s warm-up",
        target.as_str().unwrap_or("?"),
        cfg.addr,
        workload.as_str().unwrap_or("?"),
        cfg.conns,
        cfg.rooms,
        cfg.room_size,
        cfg.duration_s,
        cfg.warmup_s
    );
    let _ = writeln!(
        out,
        "connections  {} connected, {} failed, {} dropped during the run, ramp-up {} s",
        c.connected, c.failed, c.dropped, c.ramp_s
    );
    for example in c.failure_examples.iter().chain(&c.drop_examples) {
        let _ = writeln!(out, "             e.g. {example}");
    }
    let offered = m
        .offered_per_sec
        .map_or(String::new(), |o| format!(" (offered {o:.0}/s)"));
    let _ = writeln!(
        out,
        "messages     {} sent{offered}, {} acknowledged = {} msg/s; {} deliveries = {}/s",
        m.sent, m.acked, m.qps, m.deliveries, m.deliveries_per_sec
    );
    let _ = writeln!(
        out,
        "checks       {} of {} copies received: {} lost, {} duplicated, {} out of order, {} \
         unparsed",
        m.received_copies, m.expected_copies, m.lost, m.duplicated, m.out_of_order, m.unparsed
    );
    let _ = writeln!(
        out,
        "\nlatency (µs)                 count      p50      p90      p99    p99.9      max"
    );
    let l = &report.latency_us;
    for (name, s) in [
        ("round trip (corrected)", &l.round_trip),
        ("round trip (uncorrected)", &l.round_trip_uncorrected),
        ("fan-out (corrected)", &l.fanout),
        ("fan-out (uncorrected)", &l.fanout_uncorrected),
        ("send lag (generator)", &l.send_lag),
        ("TCP connect", &c.connect_us),
        ("connect + join", &c.join_us),
    ] {
        let _ = writeln!(out, "  {name:<24} {}", row(s));
    }
    if !report.errors.is_empty() {
        let codes: Vec<String> = report
            .errors
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let _ = writeln!(out, "\nerrors       {}", codes.join(", "));
    }
    let g = &report.generator;
    let _ = write!(
        out,
        "\ncpu          generator {}% of one core ({} threads on {} cores)",
        g.cpu_percent, g.threads, g.cores
    );
    match &report.server {
        Some(s) => {
            let _ = writeln!(out, ", server {}% (pid {})", s.cpu_percent, s.pid);
            let per_conn = s.rss_per_conn_bytes.map_or(String::new(), |b| {
                format!(", {:.1} KiB per connection", b / 1024.0)
            });
            let _ = writeln!(
                out,
                "memory       server RSS {} KiB before, {} KiB connected, {} KiB peak{per_conn}",
                s.rss_before_kib, s.rss_connected_kib, s.rss_peak_kib
            );
        }
        None => {
            let _ = writeln!(out, " (give --server-pid for the server's CPU and memory)");
        }
    }
    out
}

fn row(s: &LatencySummary) -> String {
    if s.count == 0 {
        return format!("{:>7}", 0);
    }
    format!(
        "{:>7} {:>8} {:>8} {:>8} {:>8} {:>8}",
        s.count, s.p50, s.p90, s.p99, s.p999, s.max
    )
}

//! Judging a run (is it trustworthy? what went wrong?) and printing it as a readable table.

use super::assemble::{clock_kept, SATURATED_PERCENT};
use super::report::RunReport;
use super::series::SeriesSample;
use super::stats::LatencySummary;
use std::fmt::{self, Write as _};
use std::net::SocketAddr;

/// What the headline says, first, when the generator could not keep up.
pub const BEHIND: &str =
    "the generator fell behind: these figures bound the generator, not the server";

/// Why a generator that sent late, though none of its threads was saturated, may have measured
/// itself: its threads take every core of the machine that also runs the server (every address
/// is a loopback one), so a send that falls due while the server holds a core waits for it. One
/// engine thread fewer leaves the server a core; side by side, that cut the send lag p99 by
/// half or more (benches/results/2026-12-03-pacing). `None` where the advice does not apply.
fn leave_the_server_a_core(report: &RunReport) -> Option<String> {
    let g = &report.generator;
    let on_this_machine = report.config.addrs.iter().all(|addr| {
        addr.parse::<SocketAddr>()
            .is_ok_and(|addr| addr.ip().is_loopback())
    });
    let per_proc = (g.cores.saturating_sub(1) / g.procs.max(1)).max(1);
    (on_this_machine && g.threads >= g.cores && per_proc * g.procs < g.threads).then(|| {
        format!(
            "its {} engine threads and the server share this machine's {} cores: \
             `--threads {per_proc}` leaves the server a core",
            g.threads, g.cores
        )
    })
}

/// Fills `ok`, `problems` and `headline`. The headline names every problem, so a run that did
/// not open all its connections, lost messages, or whose generator fell behind says so first.
/// With `--tolerate-generator-lag` a generator that fell behind is still named first, but the
/// run is a warning rather than a failure unless the server failed too.
pub(crate) fn judge(report: &mut RunReport) {
    let c = &report.connections;
    let m = &report.messages;
    let g = &report.generator;
    let mut problems = Vec::new();
    if g.behind {
        let mut why = Vec::new();
        let lag = &report.latency_us.send_lag;
        let allowed = report.config.max_send_lag_us;
        let lagging = !clock_kept(m.late, lag.count);
        if lagging {
            why.push(format!(
                "send lag p99 {} µs, {} of {} sends over the {allowed} µs allowed",
                lag.p99, m.late, lag.count
            ));
        }
        let own_unsent = m.unsent.saturating_sub(m.unsent_blocked);
        if own_unsent > 0 && !m.rate_kept {
            why.push(format!(
                "{own_unsent} of {} measured messages never sent",
                m.scheduled.unwrap_or(0)
            ));
        }
        let saturated = g.busiest_thread_percent >= SATURATED_PERCENT;
        if saturated {
            why.push(format!(
                "its busiest thread used {}% of a core",
                g.busiest_thread_percent
            ));
        }
        if lagging && !saturated {
            why.extend(leave_the_server_a_core(report));
        }
        let tolerated = if report.config.tolerate_generator_lag {
            ", tolerated by --tolerate-generator-lag"
        } else {
            ""
        };
        problems.push(format!("{BEHIND} ({}){tolerated}", why.join("; ")));
    }
    if c.connected < c.attempted {
        problems.push(format!(
            "only {} of {} connections opened ({})",
            c.connected,
            c.attempted,
            counts(&c.failures)
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
    if m.blocked > 0 || m.unsent_blocked > 0 {
        problems.push(format!(
            "{} messages waited for a full socket and {} never left one: the server did not \
             read fast enough (their wait is in the corrected latency)",
            m.blocked, m.unsent_blocked
        ));
    }
    if m.unparsed > 0 {
        problems.push(format!("{} frames could not be parsed", m.unparsed));
    }
    let mut churn_ok = true;
    if let Some(churn) = &report.churn {
        if churn.reconnect_failures > 0 {
            churn_ok = false;
            problems.push(format!(
                "{} churn reconnects failed (e.g. {})",
                churn.reconnect_failures,
                churn.failure_example.as_deref().unwrap_or("?")
            ));
        }
        if churn.ack_timeouts > 0 {
            churn_ok = false;
            problems.push(format!(
                "{} churning connections never got their last message back",
                churn.ack_timeouts
            ));
        }
        if let Some(soak) = &report.soak {
            // A soak's promise: flat memory, no descriptor leak.
            if !soak.rss_flat || !soak.fds_back {
                churn_ok = false;
                problems.push(format!("soak: {}", soak.verdict));
            }
        }
    }
    if !report.errors.is_empty() {
        problems.push(format!(
            "the server sent errors: {}",
            counts(&report.errors)
        ));
    }
    report.ok = c.connected == c.attempted
        && c.dropped == 0
        && m.lost == 0
        && m.duplicated == 0
        && m.out_of_order == 0
        && churn_ok
        && (!g.behind || report.config.tolerate_generator_lag);
    let figures = format!(
        "{}/{} connected, {} msg/s acknowledged, round trip p99 {} µs, {} deliveries/s, {} lost, \
         send lag p99 {} µs",
        c.connected,
        c.attempted,
        m.qps,
        report.latency_us.round_trip.p99,
        m.deliveries_per_sec,
        m.lost,
        report.latency_us.send_lag.p99
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
    let target = target.as_str().unwrap_or("?");
    let target = match &cfg.ws_path {
        Some(path) => format!("{target} (WebSocket {path})"),
        None => target.to_string(),
    };
    let servers = match cfg.addrs.len() {
        1 => format!("{target} server at {}", cfg.addr),
        n => {
            let spread = serde_json::to_value(cfg.spread).unwrap_or_default();
            format!(
                "{n} {target} servers at {} (spread: {})",
                cfg.addr,
                spread.as_str().unwrap_or("?")
            )
        }
    };
    let _ = writeln!(
        out,
        "target       {servers}, workload {}, {} connections in {} room(s) of up to {}, {rate}, \
         {} s measured after {} s warm-up",
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
    let late = if m.unsent + m.blocked > 0 {
        format!(
            " ({} never sent, {} written late behind a full socket)",
            m.unsent, m.blocked
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "messages     {} sent{offered}{late}, {} acknowledged = {} msg/s; {} deliveries = {}/s",
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
    let several = cfg.addrs.len() > 1;
    for (name, s) in [
        ("round trip (corrected)", Some(&l.round_trip)),
        ("round trip (uncorrected)", Some(&l.round_trip_uncorrected)),
        ("fan-out (corrected)", Some(&l.fanout)),
        ("fan-out (uncorrected)", Some(&l.fanout_uncorrected)),
        ("fan-out across servers", several.then_some(&l.fanout_cross)),
        ("send lag (generator)", Some(&l.send_lag)),
        ("TCP connect", Some(&c.connect_us)),
        ("connect + join", Some(&c.join_us)),
    ] {
        if let Some(s) = s {
            let _ = writeln!(out, "  {name:<24} {}", row(s));
        }
    }
    if several {
        let _ = writeln!(
            out,
            "\nper server                 conns   failed  dropped     sent    acked  deliveries  \
             rt p99 µs  fan-out p99 µs"
        );
        for a in &report.per_addr {
            let _ = writeln!(
                out,
                "  {:<22} {:>7} {:>8} {:>8} {:>8} {:>8} {:>11} {:>10} {:>15}",
                a.addr,
                a.connected,
                a.failed,
                a.dropped,
                a.sent,
                a.acked,
                a.deliveries,
                a.round_trip_us.p99,
                a.fanout_us.p99
            );
        }
    }
    if !report.errors.is_empty() {
        let _ = writeln!(out, "\nerrors       {}", counts(&report.errors));
    }
    if let Some(churn) = &report.churn {
        let _ = writeln!(
            out,
            "\nchurn        {} closes and {} reopens by {} churners = {}/s (asked {}/s); {} \
             reconnects failed, {} turns missed while busy, rejoin p99 {} µs",
            churn.closes,
            churn.reconnects,
            churn.churners,
            churn.achieved_per_sec,
            churn.rate_per_sec,
            churn.reconnect_failures,
            churn.busy,
            churn.rejoin_us.p99
        );
        let _ = writeln!(
            out,
            "             churners sent {} (checked at every member that stayed), skipped {} \
             while away, received {} (counted only)",
            churn.sent, churn.skipped, churn.received
        );
    }
    render_series(&mut out, report);
    let g = &report.generator;
    let procs = match g.procs {
        1 => String::new(),
        n => format!("{n} processes, "),
    };
    // The slice the engine threads run in (`slice.rs`): the kernel's word, not the flag's.
    let slice = match (&g.slice_error, g.slice_us) {
        (Some(why), _) => format!(", kernel's slice ({why})"),
        (None, Some(us)) => format!(", slice {us} µs"),
        (None, None) => String::new(),
    };
    let _ = write!(
        out,
        "\ncpu          generator {}% of one core{} ({procs}{} thread{} on {} cores, busiest \
         thread {}%{slice})",
        g.cpu_percent,
        per_msg(g.cpu_us_per_msg),
        g.threads,
        if g.threads == 1 { "" } else { "s" },
        g.cores,
        g.busiest_thread_percent
    );
    match &report.server {
        Some(s) => {
            let pids: Vec<String> = s.pids.iter().map(|p| p.to_string()).collect();
            let _ = writeln!(
                out,
                ", server {}%{} (pid {})",
                s.cpu_percent,
                per_msg(s.cpu_us_per_msg),
                pids.join(", ")
            );
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

/// The time series as sparklines, and the soak verdict.
fn render_series(out: &mut String, report: &RunReport) {
    let series = &report.series;
    if series.len() < 2 {
        return;
    }
    const WIDTH: usize = 40;
    let span = series.last().map_or(0.0, |s| s.t_s);
    let _ = writeln!(
        out,
        "\nover time    {} samples over {span:.0} s          first → last (min … max)",
        series.len()
    );
    // One row per measure: its name, its value in a sample (the server's are there only with
    // --server-pid), its unit.
    type Measure = fn(&SeriesSample) -> Option<u64>;
    let measures: [(&str, Measure, &str); 5] = [
        ("connected", |s| Some(s.connected), ""),
        ("server RSS", |s| s.server_rss_kib, "KiB"),
        ("server fds", |s| s.server_fds, ""),
        ("generator RSS", |s| Some(s.generator_rss_kib), "KiB"),
        ("generator fds", |s| Some(s.generator_fds), ""),
    ];
    for (name, measure, unit) in measures {
        let values: Vec<u64> = series.iter().filter_map(measure).collect();
        if values.is_empty() {
            continue;
        }
        let (lo, hi) = (
            values.iter().copied().min().unwrap_or(0),
            values.iter().copied().max().unwrap_or(0),
        );
        let (first, last) = (values[0], values[values.len() - 1]);
        let _ = writeln!(
            out,
            "  {name:<18} {:<WIDTH$} {first} → {last} {unit} ({lo} … {hi})",
            super::series::sparkline(&values, WIDTH)
        );
    }
    if let Some(soak) = &report.soak {
        let _ = writeln!(out, "  verdict            {}", soak.verdict);
    }
}

/// Counts on one line, in the map's order, each before its name: `3 bad_request, 1 rate_limited`.
pub(crate) fn counts<'a, K: fmt::Display + 'a>(
    counts: impl IntoIterator<Item = (&'a K, &'a u64)>,
) -> String {
    let named: Vec<String> = counts
        .into_iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    named.join(", ")
}

/// `, 3.2 µs per message` when there were messages.
fn per_msg(us: Option<f64>) -> String {
    us.map_or(String::new(), |us| format!(", {us} µs per message"))
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

#[cfg(test)]
mod tests {
    use super::counts;
    use std::collections::BTreeMap;

    /// The lessons quote these lines (`only 1 of 10 connections opened (9 join_timeout)`): the
    /// count comes first, in the map's order, and nothing is written for no counts.
    #[test]
    fn counts_read_count_then_name() {
        let map = BTreeMap::from([
            ("server_full".to_string(), 616),
            ("join_timeout".into(), 256),
        ]);
        assert_eq!(counts(&map), "256 join_timeout, 616 server_full");
        let listed = [("junk".to_string(), 3u64)];
        assert_eq!(counts(listed.iter().map(|(k, n)| (k, n))), "3 junk");
        assert_eq!(counts(&BTreeMap::<String, u64>::new()), "");
    }
}

//! The generator and the checker over WebSocket, against a node:
//! - `loadgen check --transport ws`: every conformance scenario, each line one message, passes
//!   on `/ws` (the limits' scenarios on nodes started with those limits: nothing skipped);
//! - `loadgen run --transport ws`: the generator's WebSocket client (its own upgrade, masking
//!   and frame decoder) carries every workload with nothing lost, and the same run over TCP,
//!   side by side, counts the same. The figures are not judged here (a shared machine); the
//!   README's TCP-against-WebSocket table is taken on a quiet one.

mod support;

use loadgen::check::{run_checks, CheckConfig};
use loadgen::run::{run, RunConfig, RunReport, Transport, Workload};
use std::net::SocketAddr;
use std::time::Duration;
use support::{limits_checked, Node, LIMITS};

/// A short run: 0.3 s warm-up, 1 s measured, generous timeouts for a loaded machine.
fn quick(addr: SocketAddr, transport: Transport, workload: Workload) -> RunConfig {
    let mut config = RunConfig::new(addr, 200);
    config.transport = transport;
    config.workload = workload;
    config.warmup = Duration::from_millis(300);
    config.duration = Duration::from_secs(1);
    config.rate = Some(5.0);
    config.room_size = 10;
    config.connect_timeout = Duration::from_secs(20);
    config.drain = Duration::from_secs(5);
    // The tests never judge the machine's speed: a late generator is not a failure here.
    config.max_send_lag = Duration::from_secs(3600);
    config
}

/// Everyone connected, every copy delivered once and in order, no error from the server.
fn assert_whole(report: &RunReport, what: &str) {
    let m = &report.messages;
    assert_eq!(
        report.connections.connected, 200,
        "{what}: {}",
        report.headline
    );
    assert!(m.sent > 0 && m.acked == m.sent, "{what}: {m:?}");
    assert_eq!(m.received_copies, m.expected_copies, "{what}: {m:?}");
    assert_eq!(
        (m.lost, m.duplicated, m.out_of_order, m.unparsed),
        (0, 0, 0, 0),
        "{what}: {m:?}"
    );
    assert!(report.errors.is_empty(), "{what}: {:?}", report.errors);
}

/// The chat workload over TCP (the chat port) and over WebSocket (`/ws` on the HTTP port) on
/// one node, one after the other; then ping and private over WebSocket.
#[test]
fn every_workload_over_websocket_and_tcp_beside_it() {
    let node = Node::memory(&["--threads", "2", "--idle-timeout", "0"]);
    let tcp = run(&quick(node.addr, Transport::Tcp, Workload::Chat)).expect("TCP run");
    assert_whole(&tcp, "chat over TCP");
    let ws = run(&quick(node.http, Transport::Ws, Workload::Chat)).expect("WebSocket run");
    assert_whole(&ws, "chat over WebSocket");
    assert_eq!(ws.config.transport, Transport::Ws);
    // Rooms of 10: nine other members receive each message, on both transports.
    assert_eq!(ws.messages.deliveries, 9 * ws.messages.acked);
    for workload in [Workload::Ping, Workload::Private] {
        let report = run(&quick(node.http, Transport::Ws, workload)).expect("WebSocket run");
        assert_whole(&report, &format!("{workload:?} over WebSocket"));
    }
}

/// The chat port does not speak WebSocket: its JSON `error` line is no answer to the upgrade,
/// and the generator says so for each connection instead of hanging or counting garbage.
#[test]
fn websocket_to_the_chat_port_fails_clearly() {
    let node = Node::memory(&["--threads", "1"]);
    let mut config = quick(node.addr, Transport::Ws, Workload::Chat);
    config.conns = 10;
    config.connect_timeout = Duration::from_secs(3);
    let report = run(&config).expect("a report");
    assert_eq!(report.connections.connected, 0, "{}", report.headline);
    assert!(report.headline.contains("FAILED"), "{}", report.headline);
    let examples = report.connections.failure_examples.join("\n");
    eprintln!("{:?}\n{examples}", report.connections.failures);
    assert!(examples.contains("not HTTP"), "{examples}");
}

/// The checker's whole suite over WebSocket, on `--redis memory` nodes: the common limits on
/// one, `--rate-limit` and `--max-conns-per-ip` (which would trip every other scenario) each on
/// its own, as `assert_conformance` does over TCP. Every scenario passes; none is skipped.
#[test]
fn the_conformance_suite_passes_over_websocket() {
    let ws = |config: CheckConfig| CheckConfig {
        transport: Transport::Ws,
        ..config
    };
    let node = Node::memory(&[&["--threads", "2"][..], &LIMITS[..]].concat());
    let report = run_checks(node.http, &ws(limits_checked()));
    let mut limited = Vec::new();
    for (scenario, flag, config) in [
        (
            "limits.rate_limited",
            "--rate-limit=10",
            CheckConfig {
                rate_limit: Some(10),
                ..CheckConfig::default()
            },
        ),
        (
            "limits.max_conns_per_ip",
            "--max-conns-per-ip=4",
            CheckConfig {
                max_conns_per_ip: Some(4),
                ..CheckConfig::default()
            },
        ),
    ] {
        let config = CheckConfig {
            only: Some(scenario.into()),
            ..config
        };
        let node = Node::memory(&["--threads", "1", flag]);
        limited.push((scenario, run_checks(node.http, &ws(config))));
    }
    let report = support::assert_every_scenario_passes(report, limited, "over WebSocket");
    assert!(report.results.len() > 60, "{report}");
}

/// The checker over WebSocket is no formality: at the chat port (which does not speak it)
/// every scenario fails, each saying the upgrade got no `101`.
#[test]
fn the_checker_over_websocket_at_the_chat_port_fails() {
    let node = Node::memory(&["--threads", "1"]);
    let report = run_checks(
        node.addr,
        &CheckConfig {
            transport: Transport::Ws,
            only: Some("ping.pong".into()),
            reply_timeout: Duration::from_secs(2),
            ..CheckConfig::default()
        },
    );
    let failures: Vec<String> = report.failures().map(ToString::to_string).collect();
    assert_eq!(failures.len(), 1, "{report}");
    assert!(failures[0].contains("upgrade"), "{}", failures[0]);
}

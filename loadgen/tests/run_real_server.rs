//! `loadgen run` against a real server binary in its own process: 1,000 connections on
//! chat-epoll, checked through the command line's JSON report.
//!
//! The binary is taken from beside this test executable (`cargo test --workspace` builds it
//! there); when it is missing (`cargo test -p loadgen` alone), it is built with cargo first.

mod support;

use loadgen::run::RunReport;
use loadgen::server_process::SpawnOptions;
use std::time::Duration;
use support::{chat_epoll, CliRun};

/// 1,000 connections in rooms of 10 against chat-epoll: the JSON report shows every connection
/// opened, every copy delivered, none lost, duplicated or out of order, and the server's CPU and
/// memory sampled through its pid.
#[test]
fn thousand_connections_against_chat_epoll() {
    let mut server = chat_epoll(&SpawnOptions::default());
    let cli = CliRun::new(
        "run-epoll",
        &[
            &["--addr", &server.addr().to_string()],
            &["--conns", "1000", "--room-size", "10", "--rate", "2"],
            &[
                "--duration",
                "3s",
                "--warmup",
                "1s",
                "--connect-rate",
                "2000",
            ],
            &["--connect-timeout", "30s", "--drain", "10s"],
            &["--server-pid", &server.pid().to_string()],
        ],
    );
    let stdout = &cli.stdout;
    cli.assert_ok_or_behind();

    let text = cli.json();
    let json: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(json["schema"], "c10k-lab/loadgen-run/v2");
    assert_eq!(json["connections"]["connected"], 1000, "{stdout}");
    assert_eq!(json["connections"]["dropped"], 0, "{stdout}");
    assert_eq!(json["messages"]["lost"], 0, "{stdout}");
    assert_eq!(json["messages"]["duplicated"], 0, "{stdout}");
    assert_eq!(json["messages"]["out_of_order"], 0, "{stdout}");
    let report = RunReport::from_json(&text).expect("a run report");
    assert!(support::server_clean(&report), "{}", report.headline);
    assert_eq!(
        report.messages.received_copies, report.messages.expected_copies,
        "{stdout}"
    );
    // Rooms of 10: nine other members receive each message.
    assert_eq!(report.messages.deliveries, 9 * report.messages.acked);
    let server_figures = report.server.expect("server figures");
    assert!(server_figures.rss_connected_kib > 0);
    assert!(server_figures.rss_per_conn_bytes.is_some());
    assert!(server_figures.cpu_us_per_msg.is_some());
    assert!(report.generator.cpu_us_per_msg.is_some());
    assert_eq!(report.per_addr.len(), 1);
    assert_eq!(report.per_addr[0].connected, 1000);

    assert!(server
        .terminate(Duration::from_secs(5))
        .expect("terminate")
        .is_some());
}

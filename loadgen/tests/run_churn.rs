//! `loadgen run --churn` against a real server: the bounded version of the soak (the
//! 10-minute runs are `cargo bench -p c10k-benches --bench soak`).
//!
//! chat-epoll with 2,000 connections in rooms of 10, each sending a message every 2 s, while
//! the last member of every room closes and reconnects: 100 closes and reopens per second for
//! 30 s (sized for the debug build `cargo test` runs, on a shared machine). The
//! members that stay lose nothing and see every sender in order (the churners' messages
//! included, across their reconnects); every reconnect joins; and once the generator has
//! closed everything, the server's descriptors are back where they started.

mod support;

use loadgen::server_process::SpawnOptions;
use std::time::Duration;
use support::{chat_epoll, CliRun};

#[test]
fn churn_keeps_the_stayers_whole_and_leaks_no_descriptor() {
    let mut server = chat_epoll(&SpawnOptions::default());
    let cli = CliRun::new(
        "churn",
        &[
            &["--addr", &server.addr().to_string()],
            &["--conns", "2000", "--room-size", "10", "--rate", "0.5"],
            &["--churn", "100", "--duration", "25s", "--warmup", "5s"],
            &["--connect-timeout", "30s", "--drain", "10s"],
            &["--server-pid", &server.pid().to_string()],
        ],
    );
    let stdout = &cli.stdout;
    let report = cli.report();

    // The stayers: all connected, nothing lost, duplicated or out of order.
    let (c, m) = (&report.connections, &report.messages);
    assert_eq!(c.connected, 2000, "{stdout}");
    assert_eq!(c.dropped, 0, "{stdout}");
    assert_eq!(
        (m.lost, m.duplicated, m.out_of_order),
        (0, 0, 0),
        "{stdout}"
    );
    assert_eq!(m.received_copies, m.expected_copies, "{stdout}");

    // The churn happened, and every reconnect came back.
    let churn = report.churn.as_ref().expect("a churn section");
    assert_eq!(churn.churners, 200);
    assert_eq!(churn.reconnect_failures, 0, "{stdout}");
    assert_eq!(churn.ack_timeouts, 0, "{stdout}");
    assert!(
        churn.closes >= 3000,
        "at least half the churn asked: {stdout}"
    );
    assert!(churn.reconnects + 200 >= churn.closes, "{stdout}");
    assert!(churn.sent > 0, "the churners sent messages too: {stdout}");

    // The time series, and no descriptor left behind.
    assert!(report.series.len() >= 25, "{stdout}");
    assert!(report.series.iter().all(|s| s.server_fds.is_some()));
    let soak = report.soak.as_ref().expect("a soak verdict");
    assert!(soak.fds_back, "{}", soak.verdict);
    assert!(soak.fds_peak >= 2000, "{}", soak.verdict);
    assert!(stdout.contains("over time"), "{stdout}");

    assert!(server
        .terminate(Duration::from_secs(5))
        .expect("terminate")
        .is_some());
}

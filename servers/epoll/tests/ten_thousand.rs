//! chat-epoll holds 10,000 connections, level- and edge-triggered (server in its own process).

use loadgen::server_process::ServerProcess;
use loadgen::testkit::fanout::rooms_of_ten;
use std::sync::Mutex;
use std::time::Duration;

/// One 10k run at a time: each needs 10,000 descriptors in this process, and two at once would
/// pass its limit of 20,000.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn ten_thousand_in_rooms_of_ten(trigger: &str) {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let server = ServerProcess::spawn(env!("CARGO_BIN_EXE_chat-epoll"), ["--trigger", trigger])
        .expect("start chat-epoll");
    let label = format!("chat-epoll --trigger {trigger}");
    rooms_of_ten(&label, &[server.addr()], 10_000, Duration::from_secs(90));
}

/// Level-triggered, 10,000 connections in rooms of 10, every member sending: every broadcast
/// reaches every member of its room, each sender's messages in order, none lost or duplicated.
#[test]
fn level_triggered_holds_10k_connections_in_rooms_of_10() {
    ten_thousand_in_rooms_of_ten("level");
}

/// The same edge-triggered: accepting 10,000 connections in bursts and reading each socket
/// until EAGAIN, nothing is left behind.
#[test]
fn edge_triggered_holds_10k_connections_in_rooms_of_10() {
    ten_thousand_in_rooms_of_ten("edge");
}

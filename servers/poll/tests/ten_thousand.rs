//! chat-poll with `--backend poll` holds 10,000 connections (server in its own process).

use loadgen::server_process::ServerProcess;
use loadgen::testkit::fanout::rooms_of_ten;
use std::time::Duration;

/// 10,000 connections in rooms of 10, every member sending: every broadcast reaches every
/// member of its room, each sender's messages in order, none lost or duplicated. This is the
/// O(n)-per-call readiness model at the scale where it starts to hurt (each poll(2) call passes
/// a 10,000-entry array), still correct.
#[test]
fn poll_backend_holds_10k_connections_in_rooms_of_10() {
    let server = ServerProcess::spawn(env!("CARGO_BIN_EXE_chat-poll"), ["--backend", "poll"])
        .expect("start chat-poll");
    let label = "chat-poll --backend poll";
    rooms_of_ten(label, &[server.addr()], 10_000, Duration::from_secs(90));
}

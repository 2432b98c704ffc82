//! chat-uring holds 10,000 connections (server in its own process).

mod support;

use loadgen::server_process::ServerProcess;
use loadgen::testkit::fanout::rooms_of_ten;
use std::time::Duration;
use support::{io_uring_usable, program};

/// 10,000 connections in rooms of 10, every member sending: every broadcast reaches every
/// member of its room, each sender's messages in order, none lost or duplicated. The
/// connections arrive through one multishot accept, each into a slot of the file table, and
/// all of them receive through one pool of 1,024 buffers.
#[test]
fn holds_10k_connections_in_rooms_of_10() {
    if !io_uring_usable("holds_10k_connections_in_rooms_of_10") {
        return;
    }
    let server = ServerProcess::spawn(program(), [] as [&str; 0]).expect("start chat-uring");
    rooms_of_ten(
        "chat-uring",
        &[server.addr()],
        10_000,
        Duration::from_secs(90),
    );
}

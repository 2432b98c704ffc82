//! 10,000 connections on chat-async, in rooms of 10, with messages in every room.

use loadgen::server_process::ServerProcess;
use loadgen::testkit::fanout::rooms_of_ten;
use std::time::Duration;

/// Guarantees 2 and 3 at scale, on a two-thread runtime: 10,000 clients (20,000 tasks), in
/// 1,000 rooms of 10, each sending 3 messages; every member receives every broadcast of its
/// room exactly once, each sender's in order.
#[test]
fn ten_thousand_connections_in_rooms_of_ten() {
    let server = ServerProcess::spawn(
        env!("CARGO_BIN_EXE_chat-async"),
        ["--threads", "2", "--idle-timeout", "0"],
    )
    .expect("chat-async starts");
    rooms_of_ten(
        "chat-async",
        &[server.addr()],
        10_000,
        Duration::from_secs(90),
    );
}

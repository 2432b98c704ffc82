//! 10,000 connections on chat-reactor, in rooms of 10, with messages in every room.

use loadgen::server_process::ServerProcess;
use loadgen::testkit::fanout::rooms_of_ten;
use std::time::Duration;

/// Guarantees 2 and 3 at scale, across event loops and workers: 10,000 clients spread over two
/// reactors (SO_REUSEPORT), all input handed to two workers, in 1,000 rooms of 10, each
/// sending 3 messages; every member receives every broadcast of its room exactly once, each
/// sender's in order.
#[test]
fn ten_thousand_connections_in_rooms_of_ten() {
    let server = ServerProcess::spawn(
        env!("CARGO_BIN_EXE_chat-reactor"),
        [
            "--io-threads",
            "2",
            "--workers",
            "2",
            "--offload-min-bytes",
            "0",
            "--idle-timeout",
            "0",
        ],
    )
    .expect("chat-reactor starts");
    rooms_of_ten(
        "chat-reactor",
        &[server.addr()],
        10_000,
        Duration::from_secs(90),
    );
}

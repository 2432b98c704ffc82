//! The per-connection socket options (`--recv-buffer`, `--send-buffer`, `--keepalive`...) reach
//! every accepted socket, though chat-uring never calls `setsockopt` on one: it sets them on the
//! listener, and Linux copies them into each socket it accepts.

mod support;

use loadgen::server_process::ServerProcess;
use loadgen::testkit::TestClient;
use std::process::Command;
use support::{io_uring_usable, program};

/// `ss` shows the server side of the connection with the kernel's view of its buffers
/// (`skmem`: `rb`, `tb`, which the kernel doubles from what was asked) and its keepalive timer.
#[test]
fn accepted_sockets_inherit_the_listeners_options() {
    if !io_uring_usable("accepted_sockets_inherit_the_listeners_options") {
        return;
    }
    let args = [
        "--recv-buffer",
        "50000",
        "--send-buffer",
        "60000",
        "--keepalive",
        "30",
    ];
    let server = ServerProcess::spawn(program(), args).expect("start chat-uring");
    let _client = TestClient::join(server.addr(), "inherits", "options");
    // By address and port: another address's socket may hold the same port number.
    let filter = format!("( src {} )", server.addr());
    let ss = match Command::new("ss")
        .args(["-Htmon", "state", "established", &filter])
        .output()
    {
        Ok(ss) if ss.status.success() => String::from_utf8_lossy(&ss.stdout).into_owned(),
        _ => {
            eprintln!("SKIPPED: ss is not installed (apt-get install iproute2)");
            return;
        }
    };
    assert!(ss.contains("rb100000"), "SO_RCVBUF not inherited: {ss}");
    assert!(ss.contains("tb120000"), "SO_SNDBUF not inherited: {ss}");
    assert!(
        ss.contains("timer:(keepalive"),
        "SO_KEEPALIVE not inherited: {ss}"
    );
}

//! A client that half-closes after its requests still gets every reply.

use loadgen::server_process::ServerProcess;
use loadgen::testkit::assert_half_close_gets_every_reply;

/// Requests written at once, then our FIN.
const PINGS: usize = 50;

/// `printf '...' | nc` style: the client writes 50 pings and shuts its sending side. The server
/// reads the pings and the EOF (edge-triggered, in the same turn), and must still write all 50
/// pongs before it closes: the EOF ends the client's membership, not the replies owed to it.
fn half_close_gets_every_reply(trigger: &str) {
    let server = ServerProcess::spawn(env!("CARGO_BIN_EXE_chat-epoll"), ["--trigger", trigger])
        .expect("start chat-epoll");
    assert_half_close_gets_every_reply(server.addr(), PINGS);
}

/// See [`half_close_gets_every_reply`]: level-triggered.
#[test]
fn level_triggered_answers_a_client_that_half_closed() {
    half_close_gets_every_reply("level");
}

/// See [`half_close_gets_every_reply`]: edge-triggered.
#[test]
fn edge_triggered_answers_a_client_that_half_closed() {
    half_close_gets_every_reply("edge");
}

//! A client that half-closes after its requests still gets every reply.

mod common;

use common::Client;
use loadgen::server_process::ServerProcess;
use std::io::Write;
use std::net::Shutdown;

/// Requests written at once, then our FIN.
const PINGS: usize = 50;

/// `printf '...' | nc` style: the client writes 50 pings and shuts its sending side. The server
/// reads the pings and the EOF (edge-triggered, in the same turn), and must still write all 50
/// pongs before it closes: the EOF ends the client's membership, not the replies owed to it.
fn half_close_gets_every_reply(trigger: &str) {
    let server = ServerProcess::spawn(env!("CARGO_BIN_EXE_chat-epoll"), ["--trigger", trigger])
        .expect("start chat-epoll");
    let mut client = Client::connect(server.addr());
    let requests: String = (0..PINGS)
        .map(|i| format!("{{\"type\":\"ping\",\"id\":{i}}}\n"))
        .collect();
    let mut writer = client.writer();
    writer.write_all(requests.as_bytes()).expect("send");
    writer.shutdown(Shutdown::Write).expect("half-close");
    for i in 0..PINGS {
        assert_eq!(client.expect("pong")["id"], i);
    }
    assert!(
        client.sees_eof(),
        "the server did not close after the replies"
    );
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

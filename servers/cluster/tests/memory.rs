//! One node on its in-process bus (`--redis memory`): the tests every server model runs
//! (`loadgen::model_tests!`: conformance, graceful shutdown, descriptor exhaustion, the burst
//! five times), its HTTP side, and 5,000 connections on it. The same node code runs on Redis
//! in `conformance.rs` and `fanout.rs` (a test binary of its own: its 10,000 client sockets and
//! these 5,000 would not fit together under one process's descriptor limit).

mod support;

use loadgen::testkit::fanout::rooms_of_ten;
use loadgen::testkit::TestClient;
use serde_json::{json, Value};
use std::time::Duration;
use support::{assert_metrics, http_get, Node};

loadgen::model_tests! {
    program: env!("CARGO_BIN_EXE_chat-cluster"), clients: 20;
    memory: ["--redis", "memory", "--http-addr", "off", "--threads", "2"];
}

/// `/health` says `ok`, `memory`, and counts TCP and WebSocket connections alike; `/metrics`
/// counts the frames of both.
#[test]
fn health_and_metrics_of_a_memory_node() {
    let node = Node::memory(&["--node-id", "solo"]);
    let mut tcp = TestClient::join(node.addr, "tcp", "lobby");
    let mut web = support::ws::WsClient::join(node.http, "web", "lobby");
    tcp.expect("joined");
    web.send(&json!({"type": "message", "content": "hi"}));
    web.expect("broadcast");
    tcp.expect("broadcast");

    let (status, body) = http_get(node.http, "/health");
    assert_eq!(status, 200, "{body}");
    let health: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(health["node"], "solo");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["bus"], "memory");
    assert_eq!(health["connections"], 2);

    assert_metrics(
        node.http,
        &[
            "chat_connections{node=\"solo\"} 2",
            "chat_frames_in_total{node=\"solo\"} 3",
            "chat_connections_accepted_total{node=\"solo\"} 2",
        ],
    );
}

/// The in-process bus at scale: 5,000 connections on one `--redis memory` node, every
/// broadcast through the bus's lock and the node's event channel, none lost, each sender's in
/// order.
#[test]
fn five_thousand_connections_on_one_memory_node() {
    let node = Node::memory(&["--threads", "2", "--idle-timeout", "0"]);
    let label = "chat-cluster --redis memory";
    rooms_of_ten(label, &[node.addr], 5_000, Duration::from_secs(150));
}

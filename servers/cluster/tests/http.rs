//! `/health` and `/metrics`, with Redis up and down.

mod support;

use loadgen::testkit::TestClient;
use serde_json::{json, Value};
use std::time::Duration;
use support::{assert_metrics, eventually, http_get, unique_prefix, Node, Redis};

fn health(node: &Node) -> (u16, Value) {
    let (status, body) = http_get(node.http, "/health");
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    (status, value)
}

/// `/health` is 200 `ok` with Redis up and 503 `degraded` while it is down (the clients stay
/// connected and get `unavailable`), and 200 again once the node has re-registered.
#[test]
fn health_follows_redis() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let node = Node::start(&redis, &unique_prefix("health"), &["--node-id", "hn1"]);
    eventually(Duration::from_secs(10), "the node registers", || {
        health(&node).0 == 200
    });
    let mut client = TestClient::join(node.addr, "ada", "lobby");
    let (status, body) = health(&node);
    assert_eq!(status, 200);
    assert_eq!(body["node"], "hn1");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["redis"], "up");
    assert_eq!(body["bus"], "redis");
    assert_eq!(body["connections"], 1);
    assert!(body["uptime_s"].is_u64(), "{body}");

    redis.stop();
    eventually(Duration::from_secs(5), "503 with Redis down", || {
        let (status, body) = health(&node);
        status == 503 && body["status"] == "degraded" && body["redis"] == "down"
    });
    client.send(&json!({"type": "list_users"}));
    let reply = client.recv();
    assert_eq!(reply["code"], "unavailable", "{reply}");
    client.send(&json!({"type": "ping", "id": 1}));
    assert_eq!(client.recv(), json!({"type": "pong", "id": 1}));

    redis.start_again();
    eventually(Duration::from_secs(10), "200 once Redis is back", || {
        health(&node).0 == 200
    });
    client.send(&json!({"type": "list_users"}));
    assert_eq!(
        client.recv(),
        json!({"type": "users", "room": "lobby", "users": ["ada"]}),
        "ada was registered again"
    );
}

/// `/metrics` is the Prometheus text format, with the node's connections, frames, bytes,
/// errors by code and Redis round trips.
#[test]
fn metrics_in_the_prometheus_format() {
    let Some(redis) = Redis::start() else { return };
    let node = Node::start(&redis, &unique_prefix("metrics"), &["--node-id", "mn1"]);
    eventually(Duration::from_secs(10), "the node registers", || {
        http_get(node.http, "/health").0 == 200
    });
    let mut client = TestClient::join(node.addr, "bea", "lobby");
    client.send(&json!({"type": "message", "content": "hello"}));
    client.expect("broadcast");
    client.send_line("not json");
    client.expect("error");
    assert_metrics(
        node.http,
        &[
            "# TYPE chat_connections gauge",
            "chat_connections{node=\"mn1\"} 1",
            "chat_frames_in_total{node=\"mn1\"} 3",
            "chat_frames_out_total{node=\"mn1\"}",
            "chat_bytes_in_total{node=\"mn1\"}",
            "chat_bytes_out_total{node=\"mn1\"}",
            "chat_errors_total{node=\"mn1\",code=\"bad_request\"} 1",
            "# TYPE chat_redis_round_trip_seconds histogram",
            "chat_redis_round_trip_seconds_bucket{node=\"mn1\",le=\"0.001\"}",
            "chat_redis_up{node=\"mn1\"} 1",
        ],
    );
}

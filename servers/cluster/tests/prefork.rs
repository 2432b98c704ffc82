//! `--processes 3`: one port, three worker processes, one chat; the supervisor restarts a
//! dead worker and stops them all on SIGTERM.

mod support;

use loadgen::testkit::TestClient;
use serde_json::json;
use std::time::{Duration, Instant};
use support::{eventually, unique_prefix, Node, Redis};

/// The supervisor's children (its workers), from /proc.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Twelve clients through one port land on several workers, and all share one room; a
/// worker killed with SIGKILL is replaced; SIGTERM stops everything with status 0 within 2 s.
#[test]
fn three_processes_serve_one_chat_through_one_port() {
    let Some(redis) = Redis::start() else { return };
    let prefix = unique_prefix("prefork");
    let mut supervisor = Node::start(
        &redis,
        &prefix,
        &["--processes", "3", "--threads", "1", "--node-id", "pf"],
    );
    let workers = children(supervisor.pid());
    assert_eq!(workers.len(), 3, "three workers: {workers:?}");

    let mut clients: Vec<TestClient> = Vec::new();
    for i in 0..12 {
        let nickname = format!("p{i}");
        let mut client = TestClient::join(supervisor.addr, &nickname, "one");
        for earlier in &mut clients {
            let joined = earlier.expect("joined");
            assert_eq!(joined["nickname"], nickname.as_str());
        }
        client.send(&json!({"type": "ping"}));
        client.expect("pong");
        clients.push(client);
    }
    // The members are spread over the workers: each worker is a node with its own record.
    let nodes_with_members = (0..3)
        .filter(|i| redis.command(&format!("HLEN {prefix}node:pf-{i}")) != ":0")
        .count();
    assert!(
        nodes_with_members >= 2,
        "12 connections all landed on one worker: SO_REUSEPORT should spread them"
    );
    clients[0].send(&json!({"type": "message", "content": "to all", "id": 1}));
    for client in &mut clients {
        let frame = client.expect("broadcast");
        assert_eq!(frame["content"], "to all");
    }
    drop(clients);

    // A worker dies: the supervisor starts another in its place.
    // SAFETY: signals a child of our child.
    unsafe { libc::kill(workers[1] as i32, libc::SIGKILL) };
    let pid = supervisor.pid();
    eventually(Duration::from_secs(10), "a replacement worker", || {
        let now = children(pid);
        now.len() == 3 && !now.contains(&workers[1])
    });
    // And the chat goes on through the port.
    let mut late = TestClient::join(supervisor.addr, "late", "one");
    late.send(&json!({"type": "message", "content": "still here"}));
    assert_eq!(late.expect("broadcast")["content"], "still here");
    drop(late);

    let all = children(pid);
    let started = Instant::now();
    let status = supervisor.terminate(Duration::from_millis(2500));
    assert!(
        status.is_some_and(|s| s.success()),
        "the supervisor exits 0 within 2.5 s of SIGTERM (got {status:?} after {:?})",
        started.elapsed()
    );
    for worker in all {
        assert!(
            !std::path::Path::new(&format!("/proc/{worker}")).exists()
                || std::fs::read_to_string(format!("/proc/{worker}/stat"))
                    .is_ok_and(|s| s.contains(") Z ")),
            "worker {worker} outlived its supervisor"
        );
    }
}

//! nginx in front of three nodes, running the committed `deploy/nginx.conf`: WebSocket clients
//! chat through it with a TCP client on one of the nodes, and when a node is killed, its
//! clients reconnect through nginx to a live node within 2 s and get their nickname and room
//! back.

mod support;

use loadgen::testkit::TestClient;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use support::nginx::Nginx;
use support::ws::{Next, Resilient};
use support::{http_get, unique_prefix, Node, Redis};

/// Clients per node.
const PER_NODE: usize = 3;

/// Which node nginx sends a session key to: `/health?session=KEY` goes where `/ws?session=KEY`
/// goes (the same hash), and the node says its name.
fn node_of(nginx: &Nginx, session: &str) -> String {
    let (status, body) = http_get(nginx.addr, &format!("/health?session={session}"));
    assert_eq!(status, 200, "{body}\n{}", nginx.errors());
    let health: Value = serde_json::from_str(&body).expect("JSON");
    health["node"].as_str().unwrap_or_default().to_string()
}

/// Nine WebSocket clients (three per node, by their session keys) chat through nginx with a
/// TCP client of node `n1` (the chat port, beside the proxy); node
/// `n2` is killed with SIGKILL; each of its clients reconnects with the browser client's rule,
/// lands on a live node, and is back in its room with its nickname within 2 s of the kill;
/// everyone is in the room again and hears it speak.
#[test]
fn clients_follow_a_dead_node_through_nginx() {
    let Some(redis) = Redis::start() else { return };
    let prefix = unique_prefix("nginx");
    let mut nodes: Vec<Node> = (1..=3)
        .map(|i| Node::start(&redis, &prefix, &["--node-id", &format!("n{i}")]))
        .collect();
    let https: Vec<_> = nodes.iter().map(|n| n.http).collect();
    let Some(nginx) = Nginx::start(&https) else {
        return;
    };

    // Session keys until each node has its three (the hash decides; a key always lands on the
    // same node while that node lives).
    let mut per_node: HashMap<String, Vec<String>> = HashMap::new();
    for k in 0..200 {
        let session = format!("session-{k:04}");
        let node = node_of(&nginx, &session);
        let keys = per_node.entry(node).or_default();
        if keys.len() < PER_NODE {
            keys.push(session);
        }
        if per_node.len() == 3 && per_node.values().all(|k| k.len() == PER_NODE) {
            break;
        }
    }
    assert!(
        per_node.values().all(|k| k.len() == PER_NODE),
        "nginx did not spread 200 session keys over the three nodes: {per_node:?}"
    );

    let mut clients: Vec<(String, Resilient)> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for (node, keys) in &per_node {
        for (i, session) in keys.iter().enumerate() {
            let nickname = format!("{node}-user{i}");
            let client = Resilient::join(nginx.addr, session, &nickname, "hall");
            names.push(nickname);
            clients.push((node.clone(), client));
        }
    }
    let n1 = nodes.iter().position(|n| n.http == https[0]).expect("n1");
    let mut terminal = TestClient::join(nodes[n1].addr, "terminal", "hall");
    names.push("terminal".to_string());
    names.sort();

    // Everyone hears everyone, through nginx and three nodes, and the terminal beside them.
    let speak = |clients: &mut Vec<(String, Resilient)>,
                 terminal: &mut TestClient,
                 who: Option<usize>,
                 text: &str| {
        let message = json!({"type": "message", "content": text});
        match who {
            Some(who) => clients[who].1.client.send(&message),
            None => terminal.send(&message),
        }
        for (_, c) in clients.iter_mut() {
            let heard = c.client.wait_for("broadcast");
            assert_eq!(heard["content"], text, "{}", c.nickname);
        }
        assert_eq!(terminal.expect("broadcast")["content"], text, "terminal");
    };
    speak(&mut clients, &mut terminal, Some(0), "hello, everyone");
    speak(&mut clients, &mut terminal, None, "hello from the terminal");

    // Kill n2. Its clients notice (nginx closes their connections), reconnect through nginx,
    // and join again; the clock runs from the kill.
    let victim = nodes.iter().position(|n| n.http == https[1]).expect("n2");
    let killed = Instant::now();
    nodes[victim].kill();
    let back: Vec<(String, Duration, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = clients
            .iter_mut()
            .filter(|(node, _)| node == "n2")
            .map(|(_, client)| {
                scope.spawn(move || {
                    // Frames already on their way may come first; then the end.
                    loop {
                        match client.client.next(Duration::from_secs(2)) {
                            Next::Frame(_) => {}
                            Next::Closed(_) => break,
                            Next::Timeout => panic!("{}: not disconnected", client.nickname),
                        }
                    }
                    let attempts = client.reconnect(Duration::from_secs(2));
                    (client.nickname.clone(), killed.elapsed(), attempts)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a reconnecting client"))
            .collect()
    });
    for (nickname, took, attempts) in &back {
        eprintln!("{nickname}: back {took:?} after the kill ({attempts} attempt(s))");
        assert!(
            *took <= Duration::from_secs(2),
            "{nickname} was back only {took:?} after the kill"
        );
    }
    for (node, client) in clients.iter().filter(|(node, _)| node == "n2") {
        let now = node_of(&nginx, &client.session);
        assert_ne!(
            now, *node,
            "{} is still sent to the dead node",
            client.nickname
        );
    }

    // The room is whole again, and the returned can speak and be heard.
    let (_, first) = &mut clients[0];
    first.client.send(&json!({"type": "list_users"}));
    let users = first.client.wait_for("users");
    assert_eq!(users["users"], json!(names), "{users}");
    let returned = clients
        .iter()
        .position(|(node, _)| node == "n2")
        .expect("a client of n2");
    speak(
        &mut clients,
        &mut terminal,
        Some(returned),
        "back from the dead node",
    );
    speak(&mut clients, &mut terminal, None, "welcome back");
    assert!(
        !nginx.errors().contains("[emerg]"),
        "nginx: {}",
        nginx.errors()
    );
}

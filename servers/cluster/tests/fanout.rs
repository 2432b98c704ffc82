//! 10,000 connections over 3 nodes, in rooms of 10 that each span the three nodes.

mod support;

use loadgen::testkit::fanout::rooms_of_ten;
use std::time::Duration;
use support::{unique_prefix, Node, Redis};

/// Guarantees 2 and 3 across nodes at scale: every member receives every broadcast of its
/// room exactly once, each sender's in order, though the members of a room sit on three
/// different processes and every message goes through Redis.
#[test]
fn ten_thousand_connections_over_three_nodes() {
    let Some(redis) = Redis::start() else { return };
    let prefix = unique_prefix("fanout");
    let args = ["--threads", "2", "--idle-timeout", "0"];
    let nodes: Vec<Node> = (0..3)
        .map(|_| Node::start(&redis, &prefix, &args))
        .collect();
    let addrs: Vec<_> = nodes.iter().map(|n| n.addr).collect();
    let label = "chat-cluster over 3 nodes";
    rooms_of_ten(label, &addrs, 10_000, Duration::from_secs(150));
}

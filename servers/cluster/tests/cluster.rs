//! Three nodes on one Redis: the whole conformance suite with every scenario's clients spread
//! over the nodes, then the cluster scenarios: Redis restarted, a node killed with SIGKILL.

mod support;

use loadgen::check::{run_cluster_checks, CheckConfig, ClusterControl, Outcome};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{unique_prefix, Node, Redis};

/// The limits the nodes run with, told to the checker (as `assert_conformance` does).
const LIMITS: [&str; 8] = [
    "--max-conns",
    "32",
    "--max-line",
    "4096",
    "--idle-timeout",
    "2",
    "--max-backlog",
    "262144",
];

/// The test owns the processes, so it is the cluster's control.
struct Control {
    redis: Mutex<Redis>,
    nodes: Mutex<Vec<Node>>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the test's cluster")
    }
}

impl ClusterControl for Control {
    fn kill_node(&self, addr: SocketAddr) -> Result<(), String> {
        let mut nodes = self.nodes.lock().map_err(|e| e.to_string())?;
        let node = nodes
            .iter_mut()
            .find(|n| n.addr == addr)
            .ok_or_else(|| format!("no node at {addr}"))?;
        node.kill();
        Ok(())
    }

    fn stop_redis(&self) -> Result<(), String> {
        self.redis.lock().map_err(|e| e.to_string())?.stop();
        Ok(())
    }

    fn start_redis(&self) -> Result<(), String> {
        self.redis.lock().map_err(|e| e.to_string())?.start_again();
        Ok(())
    }
}

/// Every scenario passes with its clients on different nodes; Redis restarts without a client
/// being dropped (`unavailable` while it is down); a killed node's members leave within 10 s
/// and their nicknames are free again. Only the rate-limit scenario is skipped (the nodes run
/// without `--rate-limit`; `conformance.rs` covers it).
#[test]
fn three_nodes_pass_the_suite_and_survive_node_death_and_a_redis_restart() {
    let Some(redis) = Redis::start() else { return };
    let prefix = unique_prefix("cluster");
    let nodes: Vec<Node> = (0..3)
        .map(|_| {
            Node::start(
                &redis,
                &prefix,
                &[&["--threads", "2"][..], &LIMITS[..]].concat(),
            )
        })
        .collect();
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    let control = Arc::new(Control {
        redis: Mutex::new(redis),
        nodes: Mutex::new(nodes),
    });
    let config = CheckConfig {
        max_line: Some(4096),
        max_conns: Some(32),
        idle_timeout: Some(Duration::from_secs(2)),
        max_backlog: Some(262_144),
        cluster: Some(control.clone()),
        ..CheckConfig::default()
    };
    let report = run_cluster_checks(&addrs, &config);
    println!("three nodes:\n{report}");
    let failures: Vec<String> = report.failures().map(ToString::to_string).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for result in &report.results {
        if let Outcome::Skip(why) = &result.outcome {
            assert_eq!(result.name, "limits.rate_limited", "skipped: {why}");
        }
    }
    for name in ["cluster.redis_restarted", "cluster.node_killed"] {
        assert_eq!(report.outcome(name), Some(&Outcome::Pass), "{name}");
    }
}

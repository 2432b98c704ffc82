//! Three nodes on one Redis: the whole conformance suite with every scenario's clients spread
//! over the nodes, then the cluster scenarios: Redis restarted, a node killed with SIGKILL.

mod support;

use loadgen::check::{run_cluster_checks, CheckConfig, ClusterControl, Outcome};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{limits_checked, unique_prefix, Node, Redis, LIMITS};

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
/// and their nicknames are free again. The two scenarios whose limit would trip all the others
/// (`--rate-limit`, `--max-conns-per-ip`) run on a node of the same cluster started with that
/// limit, as `assert_conformance` does for a single server: nothing is skipped.
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

    // The limits of one process each, on nodes of this cluster (before Redis is restarted).
    let mut limited = Vec::new();
    for (scenario, flag, value, config) in [
        (
            "limits.rate_limited",
            "--rate-limit",
            "10",
            CheckConfig {
                rate_limit: Some(10),
                ..CheckConfig::default()
            },
        ),
        (
            "limits.max_conns_per_ip",
            "--max-conns-per-ip",
            "4",
            CheckConfig {
                max_conns_per_ip: Some(4),
                ..CheckConfig::default()
            },
        ),
    ] {
        let mut node = Node::start(&redis, &prefix, &["--threads", "1", flag, value]);
        let config = CheckConfig {
            only: Some(scenario.into()),
            ..config
        };
        limited.push((scenario, run_cluster_checks(&[node.addr], &config)));
        node.terminate(Duration::from_secs(3));
    }

    let control = Arc::new(Control {
        redis: Mutex::new(redis),
        nodes: Mutex::new(nodes),
    });
    let config = CheckConfig {
        cluster: Some(control.clone()),
        ..limits_checked()
    };
    let report = support::assert_every_scenario_passes(
        run_cluster_checks(&addrs, &config),
        limited,
        "three nodes",
    );
    for name in [
        "cluster.redis_restarted",
        "cluster.node_killed",
        "limits.rate_limited",
        "limits.max_conns_per_ip",
        "close.half_close_gets_every_reply",
    ] {
        assert_eq!(report.outcome(name), Some(&Outcome::Pass), "{name}");
    }
}

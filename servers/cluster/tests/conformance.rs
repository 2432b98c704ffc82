//! One chat-cluster node on a real Redis, against the shared conformance checker and the
//! process-level checks every server passes (what `loadgen::model_tests!` generates, written
//! out because each test needs a Redis of its own; `memory.rs` runs the macro itself on a node
//! without Redis).

mod support;

use loadgen::check::{
    assert_aborts_with_linger_zero, assert_burst_passes_repeatedly, assert_conformance,
    assert_graceful_shutdown, assert_survives_fd_exhaustion,
};
use std::path::Path;
use support::{unique_prefix, Redis, PROGRAM};

fn node_args<'a>(redis: &'a str, prefix: &'a str) -> [&'a str; 8] {
    [
        "--redis",
        redis,
        "--redis-prefix",
        prefix,
        "--http-addr",
        "off",
        "--threads",
        "2",
    ]
}

/// Every scenario of the protocol passes against a single node (two processes are started:
/// the limits run and the rate-limit run, nodes of one cluster).
#[test]
fn a_single_node_passes_the_conformance_suite() {
    let Some(redis) = Redis::start() else { return };
    let (url, prefix) = (redis.url(), unique_prefix("conformance"));
    assert_conformance(Path::new(PROGRAM), &node_args(&url, &prefix), false);
}

/// SIGTERM: every client gets `shutting_down` then EOF, and the process exits 0 within 2 s.
#[test]
fn shuts_down_gracefully() {
    let Some(redis) = Redis::start() else { return };
    let (url, prefix) = (redis.url(), unique_prefix("shutdown"));
    assert_graceful_shutdown(Path::new(PROGRAM), &node_args(&url, &prefix), 20);
}

/// Out of file descriptors: accepting pauses instead of spinning, the clients it has keep
/// chatting (through Redis), and accepting resumes once descriptors are free.
#[test]
fn survives_fd_exhaustion() {
    let Some(redis) = Redis::start() else { return };
    let (url, prefix) = (redis.url(), unique_prefix("fds"));
    assert_survives_fd_exhaustion(Path::new(PROGRAM), &node_args(&url, &prefix));
}

/// A burst far above `--max-backlog` closes only the member that stopped reading, five runs in
/// a row (every broadcast of the burst goes through Redis and back).
#[test]
fn spares_a_full_speed_reader_five_times() {
    let Some(redis) = Redis::start() else { return };
    let (url, prefix) = (redis.url(), unique_prefix("burst"));
    assert_burst_passes_repeatedly(Path::new(PROGRAM), &node_args(&url, &prefix), 5);
}

/// `--linger 0`: a connection the node ends (`quit`) is aborted once its `bye` is written, not
/// half-closed and waited for (a FIN would leave the `TIME-WAIT` the flag is meant to avoid).
#[test]
fn aborts_with_linger_zero() {
    let Some(redis) = Redis::start() else { return };
    let (url, prefix) = (redis.url(), unique_prefix("linger"));
    assert_aborts_with_linger_zero(Path::new(PROGRAM), &node_args(&url, &prefix));
}

//! `loadgen run --target redis`: the room workload over Redis pub/sub and the ping workload
//! over PING, against a throw-away `redis-server`.
//!
//! Needs `redis-server` (Debian: `apt-get install redis-server`). When it is missing the tests
//! print why and pass, except under CI (`CI=true`), where a missing Redis is a failure: CI
//! installs it, and a silently skipped comparison would go unnoticed.

mod support;

use loadgen::run::{run, RunConfig, RunReport, Target, Workload};
use loadgen::sweep::{models::redis_server_path, RedisServer};

/// Starts redis-server, or returns `None` (outside CI) when it is not installed.
fn redis() -> Option<RedisServer> {
    let Some(program) = redis_server_path() else {
        let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(
            !in_ci,
            "redis-server is not installed, and CI must run the Redis tests \
             (apt-get install -y redis-server)"
        );
        eprintln!("redis-server is not installed: skipping the Redis test");
        return None;
    };
    Some(RedisServer::start(&program).expect("redis-server starts"))
}

/// A short run (`support::quick`) against `redis`, sampling its memory through its pid.
fn config(redis: &RedisServer, conns: usize, workload: Workload) -> RunConfig {
    let mut config = support::quick(redis.addr(), conns);
    config.target = Target::Redis;
    config.workload = workload;
    config.server_pids = vec![redis.pid()];
    config
}

/// Nothing lost, nothing unparsed, no errors; when not, the message says what became of Redis
/// (still running? its log), since a server gone under a run fails it in many ways at once.
fn assert_clean(report: &RunReport, redis: &mut RedisServer) {
    let clean = support::server_clean(report)
        && report.messages.unparsed == 0
        && report.errors.is_empty()
        && report.messages.received_copies == report.messages.expected_copies;
    assert!(
        clean,
        "{}\nunparsed: {}, received {} of {} copies, errors: {:?}\n{}",
        report.headline,
        report.messages.unparsed,
        report.messages.received_copies,
        report.messages.expected_copies,
        report.errors,
        redis.describe()
    );
}

/// Rooms as Redis channels: each member SUBSCRIBEs to its room and PUBLISHes to it; every
/// subscriber, the publisher included, receives each message, in order, none lost.
#[test]
fn room_workload_over_redis_pubsub() {
    let Some(mut redis) = redis() else { return };
    let report = run(&config(&redis, 40, Workload::Chat)).expect("run");
    assert_clean(&report, &mut redis);
    assert_eq!(report.connections.connected, 40);
    assert!(report.messages.acked > 0);
    assert_eq!(report.messages.deliveries, 4 * report.messages.acked);
    assert!(report.server.expect("redis pid given").rss_connected_kib > 0);
}

/// The ping workload as `PING <id>` in closed loop; idle connections subscribe and hold.
#[test]
fn ping_and_idle_over_redis() {
    let Some(mut redis) = redis() else { return };
    let mut ping = config(&redis, 10, Workload::Ping);
    ping.rate = None;
    let report = run(&ping).expect("ping run");
    assert_clean(&report, &mut redis);
    assert!(report.messages.acked > 0);

    let report = run(&config(&redis, 20, Workload::Idle)).expect("idle run");
    assert_clean(&report, &mut redis);
    assert_eq!(report.connections.connected, 20);
}

/// `private` has no Redis counterpart: the run is refused with the reason instead of
/// measuring something else.
#[test]
fn private_workload_is_refused_for_redis() {
    let mut config = RunConfig::new("127.0.0.1:6379".parse().expect("addr"), 4);
    config.target = Target::Redis;
    config.workload = Workload::Private;
    let err = run(&config).expect_err("refused");
    assert!(err.to_string().contains("no Redis equivalent"), "{err}");
}

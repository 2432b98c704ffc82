//! `loadgen run --addr A,B`: connections spread over several servers. Checked from the
//! servers' side (who joined which room where), and by what the run reports: per-address
//! figures that add up to the totals, and, against two servers that are *not* one cluster,
//! every copy that would have to cross between them reported lost.

mod support;

use loadgen::run::{run, RunConfig, Spread, Workload};
use loadgen::testkit::{Faults, TestClient, TestServer};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// `support::quick` over `servers`, at 10 msg/s; copies that cannot cross between two servers
/// that are not one cluster are waited for 2 s.
fn config(servers: &[&TestServer], conns: usize, room_size: usize) -> RunConfig {
    let mut config = support::quick(servers[0].addr(), conns);
    config.addrs = servers.iter().map(|s| s.addr()).collect();
    config.room_size = room_size;
    config.rate = Some(10.0);
    config.drain = Duration::from_secs(2);
    config
}

/// The rooms on `server` whose name starts with `g` (the generator's), with their members'
/// connection indices, as the server itself lists them.
fn rooms_on(server: &TestServer) -> BTreeMap<String, Vec<usize>> {
    let mut probe = TestClient::join(server.addr(), "probe", "probe-room");
    probe.send(&json!({"type": "list_rooms"}));
    let rooms = probe.expect("rooms");
    let mut out = BTreeMap::new();
    for room in rooms["rooms"].as_array().expect("a list of rooms") {
        let name = room["name"].as_str().expect("a room name").to_string();
        if !name.starts_with('g') {
            continue;
        }
        probe.send(&json!({"type": "list_users", "room": name}));
        let users: Value = probe.expect("users");
        let mut members: Vec<usize> = users["users"]
            .as_array()
            .expect("a list of users")
            .iter()
            .filter_map(|u| u.as_str()?.rsplit_once('u')?.1.parse().ok())
            .collect();
        members.sort_unstable();
        out.insert(name, members);
    }
    out
}

/// Idle connections in rooms of 4 over two servers: every room has two members on each
/// server — members 0 and 2 of a room on one, 1 and 3 on the other, the first server taking
/// turns — as both servers' own room lists show while the run holds the connections.
#[test]
fn each_room_has_members_on_both_servers() {
    let (a, b) = (
        TestServer::start(Faults::default()).expect("server A"),
        TestServer::start(Faults::default()).expect("server B"),
    );
    let mut cfg = config(&[&a, &b], 16, 4);
    cfg.workload = Workload::Idle;
    cfg.duration = Duration::from_secs(4);
    let (a_addr, b_addr) = (a.addr(), b.addr());
    let running = std::thread::spawn(move || run(&cfg).expect("run"));

    // Wait (bounded) until the run holds its 16 connections, 8 on each server.
    let deadline = Instant::now() + Duration::from_secs(30);
    while (a.connections() < 8 || b.connections() < 8) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (on_a, on_b) = (rooms_on(&a), rooms_on(&b));
    let report = running.join().expect("the run finished");

    assert!(support::server_clean(&report), "{}", report.headline);
    assert_eq!(on_a.len(), 4, "every room has members on A: {on_a:?}");
    assert_eq!(on_b.len(), 4, "every room has members on B: {on_b:?}");
    for (name, members) in on_a.iter().chain(&on_b) {
        let room: usize = name
            .rsplit_once('r')
            .and_then(|(_, r)| r.parse().ok())
            .expect("gXr<n>");
        assert_eq!(members.len(), 2, "{name}: {members:?}");
        assert!(members.iter().all(|m| m / 4 == room), "{name}: {members:?}");
    }
    for room in 0..4usize {
        let first = if room % 2 == 0 { &on_a } else { &on_b };
        let members = first
            .values()
            .find(|m| m[0] / 4 == room)
            .expect("room listed");
        assert_eq!(members, &vec![room * 4, room * 4 + 2], "room {room}");
    }
    assert_eq!(report.per_addr.len(), 2);
    assert_eq!(report.per_addr[0].addr, a_addr.to_string());
    assert_eq!(report.per_addr[1].addr, b_addr.to_string());
    assert!(report.per_addr.iter().all(|p| p.connected == 8));
}

/// Two independent servers are not a cluster: with each room's members spread over both,
/// a message reaches only the members on its sender's server, and the run reports every
/// other copy lost (the check a real cluster must pass). With whole rooms per server it is
/// clean, and the per-address figures add up to the totals.
#[test]
fn spread_members_needs_a_cluster_spread_rooms_does_not() {
    let (a, b) = (
        TestServer::start(Faults::default()).expect("server A"),
        TestServer::start(Faults::default()).expect("server B"),
    );
    let split = run(&config(&[&a, &b], 16, 4)).expect("run");
    let m = &split.messages;
    assert_eq!(split.connections.connected, 16);
    assert!(!split.ok);
    // Rooms of 4, two members per server: of each message's 4 copies, the 2 that would cross
    // are lost.
    assert!(
        m.lost > 0 && m.received_copies == m.lost,
        "{}",
        split.headline
    );
    assert!(split.headline.contains("copies lost"), "{}", split.headline);
    assert_eq!(split.latency_us.fanout_cross.count, 0, "nothing crossed");

    let mut whole = config(&[&a, &b], 16, 4);
    whole.spread = Spread::Rooms;
    let report = run(&whole).expect("run");
    assert!(support::server_clean(&report), "{}", report.headline);
    let sum = |f: fn(&loadgen::run::AddrReport) -> u64| report.per_addr.iter().map(f).sum::<u64>();
    assert_eq!(sum(|p| p.connected), 16);
    assert!(report.per_addr.iter().all(|p| p.connected == 8));
    assert_eq!(sum(|p| p.sent), report.messages.sent);
    assert_eq!(sum(|p| p.acked), report.messages.acked);
    assert_eq!(sum(|p| p.deliveries), report.messages.deliveries);
    let counts: u64 = report.per_addr.iter().map(|p| p.round_trip_us.count).sum();
    assert_eq!(counts, report.latency_us.round_trip.count);
}

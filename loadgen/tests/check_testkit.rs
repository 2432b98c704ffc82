//! Tests of the test fixture itself: `loadgen::testkit::TestServer` serves the protocol, and each
//! injected fault does what it says (so the checker's and the load generator's failure tests
//! fail for the intended reason).

use chat_core::HubConfig;
use loadgen::testkit::{Faults, TestClient, TestServer};
use serde_json::json;
use std::time::{Duration, Instant};

/// Reads until a broadcast arrives and returns its id.
fn next_broadcast_id(client: &mut TestClient) -> i64 {
    client.expect("broadcast")["id"]
        .as_i64()
        .expect("integer id")
}

fn send_messages(client: &mut TestClient, count: i64) {
    for id in 1..=count {
        client.send(&json!({"type": "message", "content": "x", "id": id}));
    }
}

/// Alice, alone in a room of a server with `faults`, sends messages 1 to `sent`: the ids of the
/// first `received` broadcasts that reach her.
fn ids_received(faults: Faults, sent: i64, received: usize) -> Vec<i64> {
    let server = TestServer::start(faults).expect("start");
    let mut alice = TestClient::join(server.addr(), "alice", "lobby");
    send_messages(&mut alice, sent);
    (0..received)
        .map(|_| next_broadcast_id(&mut alice))
        .collect()
}

/// Without faults: join, broadcast to every member including the sender, and ping.
#[test]
fn serves_the_protocol_without_faults() {
    let server = TestServer::start(Faults::default()).expect("start");
    let mut alice = TestClient::join(server.addr(), "alice", "lobby");
    let mut bob = TestClient::join(server.addr(), "bob", "lobby");
    assert_eq!(
        alice.recv(),
        json!({"type": "joined", "nickname": "bob", "room": "lobby"})
    );
    send_messages(&mut alice, 3);
    for client in [&mut alice, &mut bob] {
        let ids: Vec<i64> = (0..3).map(|_| next_broadcast_id(client)).collect();
        assert_eq!(ids, [1, 2, 3]);
    }
    bob.send(&json!({"type": "ping", "id": "p"}));
    assert_eq!(bob.recv(), json!({"type": "pong", "id": "p"}));
}

/// `drop_every_nth_broadcast: Some(2)` delivers broadcasts 1, 3, 5 and drops 2, 4, 6.
#[test]
fn drop_fault_drops_every_nth_broadcast() {
    let faults = Faults {
        drop_every_nth_broadcast: Some(2),
        ..Faults::default()
    };
    assert_eq!(ids_received(faults, 6, 3), [1, 3, 5]);
}

/// `reorder_broadcasts` swaps consecutive pairs, and a lone last broadcast still arrives.
#[test]
fn reorder_fault_swaps_pairs() {
    let faults = Faults {
        reorder_broadcasts: true,
        ..Faults::default()
    };
    assert_eq!(ids_received(faults, 5, 5), [2, 1, 4, 3, 5]);
}

/// `wrong_error_codes` answers a `not_joined` situation with `unknown_type`.
#[test]
fn wrong_error_codes_fault_mislabels_errors() {
    let faults = Faults {
        wrong_error_codes: true,
        ..Faults::default()
    };
    let server = TestServer::start(faults).expect("start");
    let mut client = TestClient::connect(server.addr());
    client.send(&json!({"type": "list_rooms"}));
    assert_eq!(client.recv()["code"], "unknown_type");
}

/// `stall` holds every write during its window: a ping sent inside the window is answered only
/// after it ends.
#[test]
fn stall_fault_holds_writes() {
    let faults = Faults {
        stall: Some((Duration::from_millis(600), Duration::from_millis(400))),
        ..Faults::default()
    };
    let server = TestServer::start(faults).expect("start");
    let mut client = TestClient::connect(server.addr());
    std::thread::sleep(Duration::from_millis(650)); // inside [600 ms, 1000 ms)
    let sent = Instant::now();
    client.send(&json!({"type": "ping"}));
    assert_eq!(client.recv()["type"], "pong");
    assert!(
        sent.elapsed() >= Duration::from_millis(200),
        "the pong came after {:?}, during the stall",
        sent.elapsed()
    );
}

/// A client that never reads is disconnected once its backlog passes `MAX_BACKLOG`, while the
/// sender keeps getting its own broadcasts; the room hears `left`.
#[test]
fn stalled_reader_is_cut_off_without_blocking_others() {
    let server = TestServer::start(Faults::default()).expect("start");
    let _stalled = TestClient::join(server.addr(), "stalled", "lobby");
    let mut alice = TestClient::join(server.addr(), "alice", "lobby");
    let content = "y".repeat(60_000);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut left = false;
    for id in 0..2_000 {
        if left || Instant::now() > deadline {
            break;
        }
        alice.send(&json!({"type": "message", "content": content, "id": id}));
        loop {
            let event = alice.recv();
            if event["type"] == "left" {
                assert_eq!(event["nickname"], "stalled");
                left = true;
            }
            if event["type"] == "broadcast" {
                assert_eq!(event["id"], id);
                break;
            }
        }
    }
    assert!(left, "the stalled reader was never disconnected");
}

/// `start_with` applies the Hub limits: one connection over `max_conns` gets `server_full`.
#[test]
fn start_with_applies_hub_limits() {
    let config = HubConfig {
        max_conns: 1,
        ..HubConfig::default()
    };
    let server = TestServer::start_with(config, Faults::default()).expect("start");
    let _first = TestClient::join(server.addr(), "first", "lobby");
    let mut second = TestClient::connect(server.addr());
    assert_eq!(second.recv()["code"], "server_full");
}

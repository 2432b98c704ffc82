//! Tests of the test fixture itself: `loadgen::testkit::TestServer` serves the protocol, and each
//! injected fault does what it says (so the checker's and the load generator's failure tests
//! fail for the intended reason).

use chat_core::HubConfig;
use loadgen::testkit::{Faults, TestServer};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A raw line client, enough for these few tests.
struct Line {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Line {
    fn connect(server: &TestServer) -> Line {
        let stream = TcpStream::connect(server.addr()).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        Line {
            writer: stream.try_clone().expect("clone"),
            reader: BufReader::new(stream),
        }
    }

    fn send(&mut self, value: Value) {
        let mut line = value.to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes()).expect("write");
    }

    fn recv(&mut self) -> Value {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).expect("read");
        assert!(n > 0, "unexpected EOF");
        serde_json::from_str(&line).expect("a JSON line")
    }

    fn join(server: &TestServer, nickname: &str) -> Line {
        let mut client = Line::connect(server);
        client.send(json!({"type": "join", "nickname": nickname}));
        assert_eq!(client.recv()["type"], "welcome");
        client
    }

    /// Reads until a broadcast arrives and returns its id.
    fn next_broadcast_id(&mut self) -> i64 {
        for _ in 0..100 {
            let event = self.recv();
            if event["type"] == "broadcast" {
                return event["id"].as_i64().expect("integer id");
            }
        }
        panic!("no broadcast in 100 frames");
    }
}

fn send_messages(client: &mut Line, count: i64) {
    for id in 1..=count {
        client.send(json!({"type": "message", "content": "x", "id": id}));
    }
}

/// Without faults: join, broadcast to every member including the sender, and ping.
#[test]
fn serves_the_protocol_without_faults() {
    let server = TestServer::start(Faults::default()).expect("start");
    let mut alice = Line::join(&server, "alice");
    let mut bob = Line::join(&server, "bob");
    assert_eq!(
        alice.recv(),
        json!({"type": "joined", "nickname": "bob", "room": "lobby"})
    );
    send_messages(&mut alice, 3);
    for client in [&mut alice, &mut bob] {
        let ids: Vec<i64> = (0..3).map(|_| client.next_broadcast_id()).collect();
        assert_eq!(ids, [1, 2, 3]);
    }
    bob.send(json!({"type": "ping", "id": "p"}));
    assert_eq!(bob.recv(), json!({"type": "pong", "id": "p"}));
}

/// `drop_every_nth_broadcast: Some(2)` delivers broadcasts 1, 3, 5 and drops 2, 4, 6.
#[test]
fn drop_fault_drops_every_nth_broadcast() {
    let faults = Faults {
        drop_every_nth_broadcast: Some(2),
        ..Faults::default()
    };
    let server = TestServer::start(faults).expect("start");
    let mut alice = Line::join(&server, "alice");
    send_messages(&mut alice, 6);
    let ids: Vec<i64> = (0..3).map(|_| alice.next_broadcast_id()).collect();
    assert_eq!(ids, [1, 3, 5]);
}

/// `reorder_broadcasts` swaps consecutive pairs, and a lone last broadcast still arrives.
#[test]
fn reorder_fault_swaps_pairs() {
    let faults = Faults {
        reorder_broadcasts: true,
        ..Faults::default()
    };
    let server = TestServer::start(faults).expect("start");
    let mut alice = Line::join(&server, "alice");
    send_messages(&mut alice, 5);
    let ids: Vec<i64> = (0..5).map(|_| alice.next_broadcast_id()).collect();
    assert_eq!(ids, [2, 1, 4, 3, 5]);
}

/// `wrong_error_codes` answers a `not_joined` situation with `unknown_type`.
#[test]
fn wrong_error_codes_fault_mislabels_errors() {
    let faults = Faults {
        wrong_error_codes: true,
        ..Faults::default()
    };
    let server = TestServer::start(faults).expect("start");
    let mut client = Line::connect(&server);
    client.send(json!({"type": "list_rooms"}));
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
    let mut client = Line::connect(&server);
    std::thread::sleep(Duration::from_millis(650)); // inside [600 ms, 1000 ms)
    let sent = Instant::now();
    client.send(json!({"type": "ping"}));
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
    let _stalled = Line::join(&server, "stalled");
    let mut alice = Line::join(&server, "alice");
    let content = "y".repeat(60_000);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut left = false;
    for id in 0..2_000 {
        if left || Instant::now() > deadline {
            break;
        }
        alice.send(json!({"type": "message", "content": content, "id": id}));
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
    let _first = Line::join(&server, "first");
    let mut second = Line::connect(&server);
    assert_eq!(second.recv()["code"], "server_full");
}

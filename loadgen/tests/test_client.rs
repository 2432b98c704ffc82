//! Tests of `loadgen::testkit::TestClient`, the client every server crate's tests use, against
//! the in-process `TestServer`: its waits tell silence from a reply and a close from silence,
//! so the servers' tests built on it assert what they say.

use chat_core::HubConfig;
use loadgen::testkit::{Faults, TestClient, TestServer};
use serde_json::json;
use std::time::Duration;

/// Short enough to keep these tests quick, long enough for a reply on a busy machine to arrive
/// within it when one is owed.
const SILENCE: Duration = Duration::from_millis(300);

/// `replies_within` is false while the server owes nothing, true once a reply is there, and
/// consumes nothing: the reply is still the next `recv`.
#[test]
fn replies_within_tells_silence_from_a_reply_and_keeps_the_reply() {
    let server = TestServer::start(Faults::default()).expect("start");
    let mut client = TestClient::connect(server.addr());
    assert!(!client.replies_within(SILENCE), "nothing was asked yet");
    client.send(&json!({"type": "ping", "id": 1}));
    assert!(client.replies_within(TestClient::FRAME_TIMEOUT));
    assert_eq!(client.recv(), json!({"type": "pong", "id": 1}));
    assert_eq!(client.timeout(), TestClient::FRAME_TIMEOUT, "restored");
}

/// `expect` skips frames of other types, and the three ways of sending (a value, a line, raw
/// bytes) all reach the server as lines.
#[test]
fn expect_skips_other_frames() {
    let server = TestServer::start(Faults::default()).expect("start");
    let mut alice = TestClient::join(server.addr(), "alice", "r");
    let _bob = TestClient::join(server.addr(), "bob", "r");
    alice.send_line(r#"{"type":"ping","id":"line"}"#);
    alice.send_raw(b"{\"type\":\"ping\",\"id\":\"raw\"}\n");
    // `joined` (bob) arrives first and is skipped.
    assert_eq!(alice.expect("pong")["id"], "line");
    assert_eq!(alice.expect("pong")["id"], "raw");
}

/// `join` panics with the server's answer when it is not `welcome` (here `server_full`),
/// instead of waiting for a welcome that never comes.
#[test]
fn join_panics_on_a_refusal() {
    let config = HubConfig {
        max_conns: 1,
        ..HubConfig::default()
    };
    let server = TestServer::start_with(config, Faults::default()).expect("start");
    let _first = TestClient::join(server.addr(), "first", "lobby");
    let addr = server.addr();
    let refused = std::thread::spawn(move || TestClient::join(addr, "second", "lobby")).join();
    let panic = refused.expect_err("a refused join must panic");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("server_full"), "panicked with {message:?}");
}

/// `is_closed` is true when the server closes the connection, and false on silence (a client
/// the server keeps is not "closed" just because it said nothing); `sees_eof` skips frames
/// before the EOF.
#[test]
fn is_closed_and_sees_eof_tell_a_close_from_silence() {
    let server = TestServer::start(Faults::default()).expect("start");
    let mut kept = TestClient::join(server.addr(), "kept", "lobby");
    kept.set_timeout(SILENCE);
    assert!(!kept.is_closed(), "silence is not a close");

    let mut leaving = TestClient::join(server.addr(), "leaving", "lobby");
    leaving.quit();
    assert!(leaving.is_closed());

    let mut skipping = TestClient::join(server.addr(), "skipping", "lobby");
    skipping.send(&json!({"type": "ping"}));
    skipping.send(&json!({"type": "quit"}));
    assert!(skipping.sees_eof(), "pong and bye are skipped, then EOF");
}

//! Keeping a session alive: keepalive pings under the idle timeout, and reconnecting with
//! backoff after the server goes away, restoring the nickname and room.

mod support;

use chat_core::{Event, HubConfig, Request};
use loadgen::testkit::{Faults, TestServer};
use std::time::Duration;
use support::{Chat, Peer};

/// The server stops and a new one starts on the same port after the first reconnect try has
/// failed: the client backs off, reconnects, re-joins with the nickname and room it had last
/// (after `/nick` and `/join`), and carries on.
#[test]
fn reconnects_with_backoff_and_restores_nickname_and_room() {
    let first = TestServer::start(Faults::default()).expect("test server");
    let addr = first.addr();
    let mut alice = Chat::spawn(&addr.to_string(), "alice", &["--retries", "5"]);
    alice.expect("the welcome", |l| l.starts_with("-- welcome alice!"));
    alice.type_line("/nick alice2");
    alice.expect("the rename", |l| l == "-- alice is now known as alice2");
    alice.type_line("/join rust");
    alice.expect("the room change", |l| {
        l == "-- you are now in rust with: alice2"
    });

    drop(first); // sends `shutting_down` and closes every connection
    alice.expect("the shutdown error", |l| {
        l.starts_with("!! error shutting_down")
    });
    alice.expect("the lost-connection notice", |l| {
        l.starts_with("-- connection lost") && l.ends_with("reconnecting in 1 s (try 1 of 5)")
    });
    alice.expect("the failed first try", |l| {
        l == "-- reconnect failed: connection refused; next try in 2 s (try 2 of 5)"
    });

    let second = TestServer::start_at(addr, HubConfig::default(), Faults::default())
        .expect("a new server on the same port");
    alice.expect("the reconnect notice", |l| {
        l == format!("-- reconnected to {addr}; joining as alice2 in rust")
    });
    alice.expect("the new welcome", |l| {
        l == "-- welcome alice2! you are in rust with: alice2"
    });

    // The restored session works: a message typed now reaches the room.
    let mut bob = Peer::join(second.addr(), "bob", "rust");
    alice.expect("bob's arrival", |l| l == "-- bob joined rust");
    alice.type_line("still here");
    alice.expect("the echo", |l| l == "<alice2> still here");
    match bob.next_event() {
        Event::Broadcast { from, content, .. } => {
            assert_eq!((from.as_str(), content.as_str()), ("alice2", "still here"))
        }
        other => panic!("bob expected alice2's message, got {other:?}"),
    }

    alice.end_input_and_exit_zero();
}

/// Lines typed while the server is away are held and sent, in order, after the re-join.
#[test]
fn lines_typed_while_disconnected_are_sent_after_rejoining() {
    let first = TestServer::start(Faults::default()).expect("test server");
    let addr = first.addr();
    let mut alice = Chat::spawn(&addr.to_string(), "alice", &[]);
    alice.expect("the welcome", |l| l.starts_with("-- welcome alice!"));

    drop(first);
    alice.expect("the lost-connection notice", |l| {
        l.starts_with("-- connection lost")
    });
    alice.type_line("one");
    alice.type_line("two");

    let _second = TestServer::start_at(addr, HubConfig::default(), Faults::default())
        .expect("a new server on the same port");
    let lines = alice.end_input_and_exit_zero();
    let after_rejoin: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .skip_while(|l| !l.starts_with("-- reconnected"))
        .collect();
    assert_eq!(
        after_rejoin,
        [
            format!("-- reconnected to {addr}; joining as alice in lobby").as_str(),
            "-- welcome alice! you are in lobby with: alice",
            "<alice> one",
            "<alice> two",
            "-- bye",
        ]
    );
}

/// With no server coming back, the client gives up after `--retries` tries and exits 1.
#[test]
fn gives_up_after_the_retries_and_exits_1() {
    let server = TestServer::start(Faults::default()).expect("test server");
    let mut alice = Chat::spawn(&server.addr().to_string(), "alice", &["--retries", "2"]);
    alice.expect("the welcome", |l| l.starts_with("-- welcome alice!"));
    drop(server);
    alice.expect("the give-up message", |l| {
        l.starts_with("!! gave up reconnecting to")
            && l.ends_with("after 2 tries: connection refused")
    });
    assert_eq!(alice.wait().code(), Some(1));
}

/// A client that says nothing still pings often enough (`--keepalive`) that the server's idle
/// timeout never closes it.
#[test]
fn keepalive_pings_beat_the_idle_timeout() {
    let config = HubConfig {
        idle_timeout: Some(Duration::from_secs(2)),
        ..HubConfig::default()
    };
    let server = TestServer::start_with(config, Faults::default()).expect("test server");
    let mut alice = Chat::spawn(&server.addr().to_string(), "alice", &["--keepalive", "1"]);
    alice.expect("the welcome", |l| l.starts_with("-- welcome alice!"));

    // Three idle timeouts' worth of silence from the user.
    std::thread::sleep(Duration::from_secs(6));
    let mut bob = Peer::join(server.addr(), "bob", "lobby");
    bob.send(&Request::ListUsers { room: None });
    match bob.next_event() {
        Event::Users { users, .. } => assert_eq!(users, ["alice", "bob"]),
        other => panic!("expected users, got {other:?}"),
    }
    let lines = alice.end_input_and_exit_zero();
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("idle_timeout") || l.contains("connection lost")),
        "{lines:?}"
    );
}

//! The chat rules, driven without a network: every request, event and error code of `PROTOCOL.md`.

use chat_core::ErrorCode;
use chat_core::{parse_request, Action, CloseReason, ConnId, Hub, HubConfig, Outbox, Rejection};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A Hub plus a record of what each connection was sent.
struct Harness {
    hub: Hub,
    now: Instant,
    inbox: HashMap<ConnId, Vec<Value>>,
    closed: HashMap<ConnId, CloseReason>,
    /// Bytes of every frame ever produced, to check that a broadcast is shared, not copied.
    frame_ptrs: Vec<(ConnId, *const u8)>,
}

impl Harness {
    fn new() -> Self {
        Self::with(HubConfig::default())
    }

    fn with(config: HubConfig) -> Self {
        Harness {
            hub: Hub::new(config),
            now: Instant::now(),
            inbox: HashMap::new(),
            closed: HashMap::new(),
            frame_ptrs: Vec::new(),
        }
    }

    fn collect(&mut self, mut out: Outbox) {
        for action in out.drain() {
            match action {
                Action::Send { to, frame } => {
                    assert_eq!(frame.last(), Some(&b'\n'));
                    self.frame_ptrs.push((to, frame.as_ptr()));
                    let value = serde_json::from_slice(&frame).expect("frames are JSON");
                    self.inbox.entry(to).or_default().push(value);
                }
                Action::Close { conn, reason } => {
                    self.closed.insert(conn, reason);
                }
            }
        }
    }

    fn connect(&mut self) -> ConnId {
        let mut out = Outbox::new();
        let id = self.hub.connect(self.now, &mut out);
        self.collect(out);
        id
    }

    fn send(&mut self, id: ConnId, line: &str) {
        let mut out = Outbox::new();
        self.hub
            .handle(id, parse_request(line.as_bytes()), self.now, &mut out);
        self.collect(out);
    }

    fn join(&mut self, nickname: &str, room: &str) -> ConnId {
        let id = self.connect();
        self.send(
            id,
            &json!({"type":"join","nickname":nickname,"room":room}).to_string(),
        );
        let welcome = self.take(id);
        assert_eq!(welcome[0]["type"], "welcome", "{welcome:?}");
        id
    }

    /// What `id` received since the last call.
    fn take(&mut self, id: ConnId) -> Vec<Value> {
        self.inbox.remove(&id).unwrap_or_default()
    }

    fn take_one(&mut self, id: ConnId) -> Value {
        let mut frames = self.take(id);
        assert_eq!(frames.len(), 1, "expected one frame, got {frames:?}");
        frames.remove(0)
    }

    fn expect_error(&mut self, id: ConnId, code: &str) {
        let frame = self.take_one(id);
        assert_eq!(frame["type"], "error", "{frame}");
        assert_eq!(frame["code"], code, "{frame}");
        assert!(frame["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    fn tick(&mut self, after: Duration) -> Option<Instant> {
        self.now += after;
        let mut out = Outbox::new();
        let next = self.hub.tick(self.now, &mut out);
        self.collect(out);
        next
    }
}

/// `join` answers `welcome` (sorted users, joiner included, default room `lobby`); the room's
/// other members get `joined`.
#[test]
fn join_welcomes_and_notifies_the_room() {
    let mut h = Harness::new();
    let bob = h.join("bob", "lobby");
    let a = h.connect();
    h.send(a, r#"{"type":"join","nickname":"alice"}"#);
    assert_eq!(
        h.take_one(a),
        json!({"type":"welcome","nickname":"alice","room":"lobby","users":["alice","bob"]})
    );
    assert_eq!(
        h.take_one(bob),
        json!({"type":"joined","nickname":"alice","room":"lobby"})
    );
}

/// Before `join` only `ping` and `quit` are allowed; a second `join` is `already_joined`.
#[test]
fn requests_before_join_and_double_join() {
    let mut h = Harness::new();
    let c = h.connect();
    for line in [
        r#"{"type":"nick","nickname":"x"}"#,
        r#"{"type":"message","content":"x"}"#,
        r#"{"type":"private","to":"x","content":"x"}"#,
        r#"{"type":"join_room","room":"x"}"#,
        r#"{"type":"list_users"}"#,
        r#"{"type":"list_rooms"}"#,
    ] {
        h.send(c, line);
        h.expect_error(c, "not_joined");
    }
    // Malformed beats not_joined.
    h.send(c, r#"{"type":"message","content":""}"#);
    h.expect_error(c, "bad_request");
    h.send(c, r#"{"type":"ping","id":"p"}"#);
    assert_eq!(h.take_one(c), json!({"type":"pong","id":"p"}));
    h.send(c, r#"{"type":"join","nickname":"c"}"#);
    h.take(c);
    h.send(c, r#"{"type":"join","nickname":"d"}"#);
    h.expect_error(c, "already_joined");
}

/// Naming rules: `bad_nickname`, `bad_room`, and `nickname_taken` ignoring Unicode case.
#[test]
fn naming_rules() {
    let mut h = Harness::new();
    h.join("Ålice", "lobby");
    let c = h.connect();
    for bad in ["", "a b", "a\u{7}", &"x".repeat(33)] {
        h.send(c, &json!({"type":"join","nickname":bad}).to_string());
        h.expect_error(c, "bad_nickname");
    }
    h.send(
        c,
        &json!({"type":"join","nickname":"ok","room":"a room"}).to_string(),
    );
    h.expect_error(c, "bad_room");
    h.send(c, &json!({"type":"join","nickname":"ålice"}).to_string());
    h.expect_error(c, "nickname_taken");
    h.send(
        c,
        &json!({"type":"join","nickname":"李雷🦀","room":"房间"}).to_string(),
    );
    assert_eq!(h.take_one(c)["room"], "房间");
}

/// `nick` renames: the room, renamer included, gets `renamed`; a case-only change of one's own
/// name is allowed; someone else's name is taken; the old name becomes free.
#[test]
fn nick_renames() {
    let mut h = Harness::new();
    let a = h.join("alice", "r");
    let b = h.join("bob", "r");
    h.take(a);
    h.send(a, r#"{"type":"nick","nickname":"BOB"}"#);
    h.expect_error(a, "nickname_taken");
    h.send(a, r#"{"type":"nick","nickname":"ALICE"}"#);
    let renamed = json!({"type":"renamed","from":"alice","to":"ALICE","room":"r"});
    assert_eq!(h.take_one(a), renamed);
    assert_eq!(h.take_one(b), renamed);
    h.send(a, r#"{"type":"nick","nickname":"bad name"}"#);
    h.expect_error(a, "bad_nickname");
    h.send(b, r#"{"type":"nick","nickname":"carol"}"#);
    h.take(a);
    h.take(b);
    let d = h.connect();
    h.send(d, r#"{"type":"join","nickname":"Bob","room":"r"}"#);
    assert_eq!(h.take_one(d)["users"], json!(["ALICE", "Bob", "carol"]));
}

/// `message` reaches every member of the room, sender included, one shared encoding, with `id`
/// echoed and `ts` set; other rooms hear nothing.
#[test]
fn message_broadcasts_to_the_room_only() {
    let mut h = Harness::new();
    let a = h.join("a", "r");
    let b = h.join("b", "r");
    let other = h.join("o", "elsewhere");
    h.take(a);
    h.frame_ptrs.clear();
    h.send(a, r#"{"type":"message","content":"hi","id":7}"#);
    let got = h.take_one(b);
    assert_eq!(got, h.take_one(a));
    assert_eq!(got["from"], "a");
    assert_eq!(got["room"], "r");
    assert_eq!(got["content"], "hi");
    assert_eq!(got["id"], 7);
    assert!(got["ts"].as_u64().unwrap() > 1_700_000_000_000);
    assert!(h.take(other).is_empty());
    // Encoded once: both recipients got the same bytes, not two copies.
    assert_eq!(h.frame_ptrs.len(), 2);
    assert_eq!(h.frame_ptrs[0].1, h.frame_ptrs[1].1);
    // No id in the request, no id key in the event.
    h.send(a, r#"{"type":"message","content":"x"}"#);
    assert!(h.take_one(b).get("id").is_none());
}

/// `private` reaches its recipient in any room, plus a receipt to the sender; unknown names are
/// `no_such_user`; names match ignoring case and the event carries the registered name.
#[test]
fn private_messages() {
    let mut h = Harness::new();
    let a = h.join("a", "r1");
    let b = h.join("Bob", "r2");
    h.send(
        a,
        r#"{"type":"private","to":"bob","content":"psst","id":"x"}"#,
    );
    let got = h.take_one(b);
    assert_eq!(got["from"], "a");
    assert_eq!(got["to"], "Bob");
    assert_eq!(got["id"], "x");
    assert_eq!(h.take_one(a), got);
    h.send(a, r#"{"type":"private","to":"nobody","content":"x"}"#);
    h.expect_error(a, "no_such_user");
}

/// `join_room`: the mover gets only `room`; the old room `left`, the new one `joined`; an
/// emptied room disappears; joining the current room notifies nobody.
#[test]
fn join_room_moves_between_rooms() {
    let mut h = Harness::new();
    let a = h.join("a", "one");
    let b = h.join("b", "one");
    let c = h.join("c", "two");
    h.take(a);
    h.send(b, r#"{"type":"join_room","room":"two"}"#);
    assert_eq!(
        h.take_one(b),
        json!({"type":"room","room":"two","users":["b","c"]})
    );
    assert_eq!(
        h.take_one(a),
        json!({"type":"left","nickname":"b","room":"one"})
    );
    assert_eq!(
        h.take_one(c),
        json!({"type":"joined","nickname":"b","room":"two"})
    );
    h.send(a, r#"{"type":"join_room","room":"two"}"#);
    h.take(a);
    h.take(b);
    h.take(c);
    h.send(a, r#"{"type":"list_rooms"}"#);
    assert_eq!(h.take_one(a)["rooms"], json!([{"name":"two","users":3}]));
    h.send(a, r#"{"type":"join_room","room":"two"}"#);
    assert_eq!(h.take_one(a)["type"], "room");
    assert!(h.take(b).is_empty() && h.take(c).is_empty());
    h.send(a, r#"{"type":"join_room","room":""}"#);
    h.expect_error(a, "bad_room");
}

/// `list_users` for one's own room or a named one; `list_rooms` sorted with member counts.
#[test]
fn listings() {
    let mut h = Harness::new();
    let a = h.join("zed", "b");
    h.join("amy", "b");
    h.join("cy", "a");
    h.take(a);
    h.send(a, r#"{"type":"list_users"}"#);
    assert_eq!(
        h.take_one(a),
        json!({"type":"users","room":"b","users":["amy","zed"]})
    );
    h.send(a, r#"{"type":"list_users","room":"a"}"#);
    assert_eq!(h.take_one(a)["users"], json!(["cy"]));
    h.send(a, r#"{"type":"list_users","room":"empty"}"#);
    assert_eq!(h.take_one(a)["users"], json!([]));
    h.send(a, r#"{"type":"list_rooms"}"#);
    assert_eq!(
        h.take_one(a),
        json!({"type":"rooms","rooms":[{"name":"a","users":1},{"name":"b","users":2}]})
    );
}

/// `quit` answers `bye` then closes; the room gets `left`; the nickname is free again.
#[test]
fn quit_and_disconnect() {
    let mut h = Harness::new();
    let a = h.join("a", "r");
    let b = h.join("b", "r");
    h.take(a);
    h.send(b, r#"{"type":"quit"}"#);
    assert_eq!(h.take_one(b), json!({"type":"bye"}));
    assert_eq!(h.closed.get(&b), Some(&CloseReason::Quit));
    assert_eq!(
        h.take_one(a),
        json!({"type":"left","nickname":"b","room":"r"})
    );
    // Late input from a closed connection is ignored.
    h.send(b, r#"{"type":"ping"}"#);
    assert!(h.take(b).is_empty());
    let mut out = Outbox::new();
    h.hub.disconnect(a, &mut out);
    h.hub.disconnect(a, &mut out);
    assert!(out.is_empty(), "the room is gone with its last member");
    assert!(h.hub.is_empty());
    h.join("b", "r");
    // quit before join.
    let c = h.connect();
    h.send(c, r#"{"type":"quit"}"#);
    assert_eq!(h.take_one(c), json!({"type":"bye"}));
}

/// `server_full` past `max_conns`: error then close, and the refused one is not kept.
#[test]
fn server_full() {
    let mut h = Harness::with(HubConfig {
        max_conns: 2,
        ..HubConfig::default()
    });
    h.connect();
    h.connect();
    let third = h.connect();
    h.expect_error(third, "server_full");
    assert_eq!(h.closed.get(&third), Some(&CloseReason::ServerFull));
    assert_eq!(h.hub.len(), 2);
}

/// `--max-conns-per-ip`: the (N+1)-th connection from one address gets `server_full` and is
/// closed, another address is still served, and a departure frees a place. Connections whose
/// address the server did not give are not counted.
#[test]
fn server_full_per_ip() {
    let mut h = Harness::with(HubConfig {
        max_conns_per_ip: 2,
        ..HubConfig::default()
    });
    let one: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    let two: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let from = |h: &mut Harness, ip| {
        let mut out = Outbox::new();
        let id = h.hub.connect_from(h.now, ip, &mut out);
        h.collect(out);
        id
    };
    let first = from(&mut h, one);
    from(&mut h, one);
    let third = from(&mut h, one);
    h.expect_error(third, "server_full");
    assert_eq!(h.closed.get(&third), Some(&CloseReason::ServerFull));
    let elsewhere = from(&mut h, two);
    assert!(h.hub.contains(elsewhere));
    h.connect(); // no address: not counted
    let mut out = Outbox::new();
    h.hub.disconnect(first, &mut out);
    let again = from(&mut h, one);
    assert!(h.hub.contains(again), "a departure frees a place");
    assert_eq!(h.hub.len(), 4);
}

/// `line_too_long` (from the decoder) is sent, then the connection closes and its room hears
/// `left`.
#[test]
fn line_too_long_closes() {
    let mut h = Harness::new();
    let a = h.join("a", "r");
    let b = h.join("b", "r");
    h.take(a);
    let mut out = Outbox::new();
    let rejection = Rejection::new(ErrorCode::LineTooLong, "too long");
    h.hub.handle(b, Err(rejection), h.now, &mut out);
    h.collect(out);
    h.expect_error(b, "line_too_long");
    assert_eq!(h.closed.get(&b), Some(&CloseReason::LineTooLong));
    assert_eq!(h.take_one(a)["type"], "left");
}

/// The idle timeout closes silent connections; any request (a ping) counts as activity; `tick`
/// returns the next deadline.
#[test]
fn idle_timeout() {
    let mut h = Harness::with(HubConfig {
        idle_timeout: Some(Duration::from_secs(10)),
        ..HubConfig::default()
    });
    let quiet = h.join("quiet", "r");
    let chatty = h.join("chatty", "r");
    h.take(quiet);
    let next = h
        .tick(Duration::from_secs(6))
        .expect("a deadline is pending");
    assert!(next > h.now);
    h.send(chatty, r#"{"type":"ping"}"#);
    h.take(chatty);
    h.tick(Duration::from_secs(5));
    h.expect_error(quiet, "idle_timeout");
    assert_eq!(h.closed.get(&quiet), Some(&CloseReason::IdleTimeout));
    assert_eq!(h.take_one(chatty)["type"], "left");
    assert!(!h.closed.contains_key(&chatty));
    h.tick(Duration::from_secs(6));
    h.expect_error(chatty, "idle_timeout");
    assert_eq!(h.tick(Duration::from_secs(1)), None);
}

/// With no idle timeout configured, `tick` has nothing to do.
#[test]
fn idle_timeout_off() {
    let mut h = Harness::with(HubConfig {
        idle_timeout: None,
        ..HubConfig::default()
    });
    h.join("a", "r");
    assert_eq!(h.tick(Duration::from_secs(100_000)), None);
    assert!(h.closed.is_empty());
}

/// The rate limit: a burst of `rate` requests passes, the rest get `rate_limited` and are
/// dropped, the connection stays, and tokens come back with time.
#[test]
fn rate_limit() {
    let mut h = Harness::with(HubConfig {
        rate_limit: 3,
        ..HubConfig::default()
    });
    let a = h.connect();
    for _ in 0..5 {
        h.send(a, r#"{"type":"ping"}"#);
    }
    let frames = h.take(a);
    let codes: Vec<&str> = frames
        .iter()
        .map(|f| f["code"].as_str().unwrap_or(f["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        codes,
        ["pong", "pong", "pong", "rate_limited", "rate_limited"]
    );
    h.now += Duration::from_secs(1);
    h.send(a, r#"{"type":"ping"}"#);
    assert_eq!(h.take_one(a)["type"], "pong");
}

/// Bad input is answered and the connection keeps working.
#[test]
fn errors_leave_the_connection_usable() {
    let mut h = Harness::new();
    let a = h.join("a", "r");
    h.send(a, "not json");
    h.expect_error(a, "bad_request");
    h.send(a, r#"{"type":"teleport"}"#);
    h.expect_error(a, "unknown_type");
    h.send(a, r#"{"type":"message","content":"still here"}"#);
    assert_eq!(h.take_one(a)["content"], "still here");
    assert!(h.closed.is_empty());
}

/// Shutdown: everyone gets `shutting_down` and a close, and the Hub is empty.
#[test]
fn shutdown_closes_everyone() {
    let mut h = Harness::new();
    let a = h.join("a", "r");
    let b = h.connect();
    h.take(a);
    let mut out = Outbox::new();
    h.hub.shutdown(&mut out);
    h.collect(out);
    h.expect_error(a, "shutting_down");
    h.expect_error(b, "shutting_down");
    assert_eq!(h.closed.len(), 2);
    assert!(h.hub.is_empty());
}

/// One total order per room: frames for a room come out of the Hub in the order of the calls,
/// identically for every member.
#[test]
fn one_order_per_room() {
    let mut h = Harness::new();
    let members: Vec<ConnId> = (0..5).map(|i| h.join(&format!("m{i}"), "r")).collect();
    for &m in &members {
        h.take(m);
    }
    for round in 0..20 {
        for (i, &m) in members.iter().enumerate() {
            h.send(
                m,
                &json!({"type":"message","content":"x","id":format!("{i}:{round}")}).to_string(),
            );
        }
    }
    let first: Vec<Value> = h
        .take(members[0])
        .into_iter()
        .map(|f| f["id"].clone())
        .collect();
    assert_eq!(first.len(), 100);
    for &m in &members[1..] {
        let ids: Vec<Value> = h.take(m).into_iter().map(|f| f["id"].clone()).collect();
        assert_eq!(ids, first);
    }
}

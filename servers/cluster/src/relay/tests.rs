//! The Relay driven by hand: envelopes in, frames out, no Redis.

use super::*;
use bytes::Bytes;

const ME: &str = "me";

fn header(kind: Kind, node: &str, conn: u64, seq: u64) -> Header {
    Header {
        kind,
        node: node.into(),
        conn,
        seq,
    }
}

fn frame(text: &str) -> Frame {
    Bytes::from(format!("{text}\n"))
}

/// The frames queued for `conn`, as text, in order.
fn sent_to(out: &[Action], conn: u64) -> Vec<String> {
    out.iter()
        .filter_map(|a| match a {
            Action::Send { to, frame } if to.0 == conn => {
                Some(String::from_utf8_lossy(frame).trim_end().to_string())
            }
            _ => None,
        })
        .collect()
}

fn woken(out: &[Action], conn: u64) -> Option<Outcome> {
    out.iter().find_map(|a| match a {
        Action::Wake { conn: c, outcome } if c.0 == conn => Some(*outcome),
        _ => None,
    })
}

/// Connection `conn` connects, and its `join` (request `seq`) begins to enter `room` as
/// `nickname`: the `welcome` to come waits for the script's member list and its own `joined`.
fn connect_and_enter(
    relay: &mut Relay,
    conn: u64,
    nickname: &str,
    room: &str,
    seq: u64,
    out: &mut Vec<Action>,
) {
    relay.connect(ConnId(conn));
    let reply = Reply::Welcome {
        nickname: nickname.into(),
    };
    relay.begin_enter(ConnId(conn), room, seq, reply, out);
}

/// `text`, published on `room`'s channel under `header`, arrives from the bus.
fn arrives(relay: &mut Relay, room: &str, header: Header, text: &str, out: &mut Vec<Action>) {
    relay.on_room_frame(room, &header, frame(text), out);
}

/// A relay with connection 1 joined to `lobby` as "ada".
fn with_ada() -> Relay {
    let mut relay = Relay::new(ME);
    let mut out = Vec::new();
    connect_and_enter(&mut relay, 1, "ada", "lobby", 1, &mut out);
    relay.entered(ConnId(1), vec!["ada".into()], &mut out);
    arrives(
        &mut relay,
        "lobby",
        header(Kind::Joined, ME, 1, 1),
        "J ada",
        &mut out,
    );
    assert_eq!(woken(&out, 1), Some(Outcome::Done));
    relay
}

/// The joiner's history starts at its own `joined`: frames before it are not for it, frames
/// after it wait behind the `welcome`, which waits for the script's member list.
#[test]
fn a_joiner_receives_what_follows_its_joined_and_only_after_its_welcome() {
    let mut relay = with_ada();
    let mut out = Vec::new();
    connect_and_enter(&mut relay, 2, "bob", "lobby", 1, &mut out);
    assert!(out.is_empty(), "lobby is subscribed already: {out:?}");
    arrives(
        &mut relay,
        "lobby",
        header(Kind::Broadcast, "n2", 9, 1),
        "before",
        &mut out,
    );
    arrives(
        &mut relay,
        "lobby",
        header(Kind::Joined, ME, 2, 1),
        "J bob",
        &mut out,
    );
    arrives(
        &mut relay,
        "lobby",
        header(Kind::Broadcast, "n2", 9, 2),
        "after",
        &mut out,
    );
    assert_eq!(sent_to(&out, 1), ["before", "J bob", "after"]);
    assert!(sent_to(&out, 2).is_empty(), "held until the script replies");
    assert_eq!(woken(&out, 2), None);

    relay.entered(ConnId(2), vec!["bob".into(), "ada".into()], &mut out);
    assert_eq!(
        sent_to(&out, 2),
        [
            r#"{"type":"welcome","nickname":"bob","room":"lobby","users":["ada","bob"]}"#,
            "after"
        ]
    );
    assert_eq!(woken(&out, 2), Some(Outcome::Done));
    assert_eq!(
        relay.member(ConnId(2)),
        Some(&Member {
            nickname: "bob".into(),
            room: "lobby".into()
        })
    );
}

/// The script may reply before the echo arrives: the welcome then waits for the echo.
#[test]
fn the_welcome_waits_for_the_echo_too() {
    let mut relay = with_ada();
    let mut out = Vec::new();
    connect_and_enter(&mut relay, 2, "bob", "lobby", 4, &mut out);
    relay.entered(ConnId(2), vec!["ada".into(), "bob".into()], &mut out);
    assert!(sent_to(&out, 2).is_empty());
    // An echo of an older request of the same connection does not count.
    arrives(
        &mut relay,
        "lobby",
        header(Kind::Joined, ME, 2, 3),
        "J old",
        &mut out,
    );
    assert!(sent_to(&out, 2).is_empty());
    arrives(
        &mut relay,
        "lobby",
        header(Kind::Joined, ME, 2, 4),
        "J bob",
        &mut out,
    );
    assert_eq!(sent_to(&out, 2).len(), 1);
    assert_eq!(woken(&out, 2), Some(Outcome::Done));
}

/// A sender's request completes when its own broadcast comes back, in the room's order.
#[test]
fn a_broadcast_echo_completes_the_senders_request() {
    let mut relay = with_ada();
    let mut out = Vec::new();
    relay.expect_echo(ConnId(1), 2);
    arrives(
        &mut relay,
        "lobby",
        header(Kind::Broadcast, "n2", 5, 1),
        "theirs",
        &mut out,
    );
    assert_eq!(woken(&out, 1), None);
    arrives(
        &mut relay,
        "lobby",
        header(Kind::Broadcast, ME, 1, 2),
        "mine",
        &mut out,
    );
    assert_eq!(sent_to(&out, 1), ["theirs", "mine"]);
    assert_eq!(woken(&out, 1), Some(Outcome::Done));
}

/// `join_room`: the old room's frames up to the mover's `left` still reach it, the new room's
/// wait behind the `room` reply, and it gets neither its own `left` nor its own `joined`.
#[test]
fn a_mover_changes_streams_at_its_own_left_and_joined() {
    let mut relay = with_ada();
    let mut out = Vec::new();
    relay.begin_enter(ConnId(1), "rust", 2, Reply::Room, &mut out);
    assert_eq!(out, [Action::Subscribe("rust".into())]);
    out.clear();
    arrives(
        &mut relay,
        "rust",
        header(Kind::Joined, ME, 1, 2),
        "J ada",
        &mut out,
    );
    arrives(
        &mut relay,
        "rust",
        header(Kind::Broadcast, "n2", 7, 1),
        "rust 1",
        &mut out,
    );
    arrives(
        &mut relay,
        "lobby",
        header(Kind::Broadcast, "n2", 8, 1),
        "lobby 1",
        &mut out,
    );
    relay.entered(ConnId(1), vec!["ada".into(), "zed".into()], &mut out);
    assert_eq!(sent_to(&out, 1), ["lobby 1"], "waits for its left in lobby");
    arrives(
        &mut relay,
        "lobby",
        header(Kind::Left, ME, 1, 2),
        "L ada",
        &mut out,
    );
    arrives(
        &mut relay,
        "lobby",
        header(Kind::Broadcast, "n2", 8, 2),
        "lobby 2",
        &mut out,
    );
    assert_eq!(
        sent_to(&out, 1),
        [
            "lobby 1",
            r#"{"type":"room","room":"rust","users":["ada","zed"]}"#,
            "rust 1"
        ]
    );
    assert!(out.contains(&Action::Unsubscribe("lobby".into())));
    assert_eq!(woken(&out, 1), Some(Outcome::Done));
    assert_eq!(
        relay.member(ConnId(1)).map(|m| m.room.as_str()),
        Some("rust")
    );
}

/// A private for a connection that has not had its welcome yet waits behind it.
#[test]
fn a_private_waits_behind_the_welcome() {
    let mut relay = Relay::new(ME);
    let mut out = Vec::new();
    connect_and_enter(&mut relay, 3, "cy", "lobby", 1, &mut out);
    relay.on_node_frame(&header(Kind::Private, ME, 3, 0), frame("psst"), &mut out);
    relay.entered(ConnId(3), vec!["cy".into()], &mut out);
    arrives(
        &mut relay,
        "lobby",
        header(Kind::Joined, ME, 3, 1),
        "J cy",
        &mut out,
    );
    let sent = sent_to(&out, 3);
    assert_eq!(sent.len(), 2);
    assert!(sent[0].contains("welcome"));
    assert_eq!(sent[1], "psst");
    // Privates for another node, or for nobody, are dropped.
    out.clear();
    relay.on_node_frame(&header(Kind::Private, "other", 3, 0), frame("x"), &mut out);
    relay.on_node_frame(&header(Kind::Private, ME, 99, 0), frame("x"), &mut out);
    assert!(out.is_empty());
}

/// The last local member of a room leaving unsubscribes; a departing connection reports the
/// membership the node must release, even mid-handshake once its script ran.
#[test]
fn removal_unsubscribes_and_reports_the_membership_to_release() {
    let mut relay = with_ada();
    let mut out = Vec::new();
    assert_eq!(
        relay.remove(ConnId(1), &mut out),
        Some(Member {
            nickname: "ada".into(),
            room: "lobby".into()
        })
    );
    assert_eq!(out, [Action::Unsubscribe("lobby".into())]);
    assert_eq!(relay.rooms().count(), 0);

    let mut out = Vec::new();
    connect_and_enter(&mut relay, 2, "bo", "den", 1, &mut out);
    relay.entered(ConnId(2), vec!["bo".into()], &mut out);
    let released = relay.remove(ConnId(2), &mut out);
    assert_eq!(released.map(|m| m.room), Some("den".to_string()));

    connect_and_enter(&mut relay, 3, "cy", "den", 1, &mut out);
    relay.abort_enter(ConnId(3), &mut out);
    assert_eq!(
        relay.remove(ConnId(3), &mut out),
        None,
        "its script never ran"
    );
    assert_eq!(relay.rooms().count(), 0);
}

/// When the bus goes down, requests waiting for an echo are interrupted, handshakes whose
/// script ran complete, the others are interrupted.
#[test]
fn bus_down_settles_every_waiting_request() {
    let mut relay = with_ada();
    let mut out = Vec::new();
    relay.expect_echo(ConnId(1), 2);
    connect_and_enter(&mut relay, 2, "bob", "lobby", 1, &mut out);
    relay.entered(ConnId(2), vec!["ada".into(), "bob".into()], &mut out);
    connect_and_enter(&mut relay, 3, "cy", "attic", 1, &mut out);
    out.clear();
    relay.bus_down(&mut out);
    assert_eq!(woken(&out, 1), Some(Outcome::Interrupted));
    assert_eq!(woken(&out, 2), Some(Outcome::Done));
    assert!(sent_to(&out, 2)[0].contains("welcome"));
    assert_eq!(woken(&out, 3), Some(Outcome::Interrupted));
    assert!(relay.member(ConnId(3)).is_none());
    assert!(out.contains(&Action::Unsubscribe("attic".into())));
    assert_eq!(relay.members().count(), 2);
}

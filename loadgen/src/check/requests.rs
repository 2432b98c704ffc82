//! Every request about people and messages, and its reply, with every field checked: join,
//! nick, message, private, ping, quit. (The rooms are in [`rooms`](super::rooms).)

use super::client::{expect_fields, expect_no_key, expect_ts_near_now, join_group, Client};
use super::{Ctx, Need, Scenario};
use serde_json::{json, Value};

pub(crate) fn scenarios() -> Vec<Scenario> {
    use Need::TwoClients;
    let s = |name, needs, run| Scenario { name, needs, run };
    vec![
        s("join.welcome", &[], join_welcome),
        s("join.default_room", &[], join_default_room),
        s("join.joined_event", &[TwoClients], join_joined_event),
        s("join.unicode_names", &[], join_unicode_names),
        s("nick.renamed", &[], nick_renamed),
        s("nick.room_notified", &[TwoClients], nick_room_notified),
        s("nick.case_only", &[], nick_case_only),
        s("message.broadcast_to_sender", &[], message_to_sender),
        s("message.broadcast_to_room", &[TwoClients], message_to_room),
        s("message.id_echo", &[], message_id_echo),
        s("message.no_id", &[], message_no_id),
        s("message.unicode_content", &[], message_unicode_content),
        s("private.delivered", &[TwoClients], private_delivered),
        s("ping.pong", &[], ping_pong),
        s("quit.bye", &[], quit_bye),
        s("quit.before_join", &[], quit_before_join),
        s("quit.room_notified", &[TwoClients], quit_room_notified),
        s(
            "quit.hangup_notifies_room",
            &[TwoClients],
            hangup_notifies_room,
        ),
    ]
}

/// One client alone in a fresh room.
pub(crate) fn alone(ctx: &Ctx, base: &str) -> Result<(Client, String), String> {
    let room = ctx.fresh("room");
    let mut group = join_group(ctx, &room, &[base])?;
    Ok((group.remove(0), room))
}

fn join_welcome(ctx: &Ctx) -> Result<(), String> {
    let (nickname, room) = (ctx.fresh("alice"), ctx.fresh("room"));
    let (_client, welcome) = Client::join(ctx, &nickname, Some(&room))?;
    let expected =
        json!({"type": "welcome", "nickname": nickname, "room": room, "users": [nickname]});
    expect_fields(&welcome, &expected)
}

fn join_default_room(ctx: &Ctx) -> Result<(), String> {
    let nickname = ctx.fresh("dora");
    let (_client, welcome) = Client::join(ctx, &nickname, None)?;
    expect_fields(
        &welcome,
        &json!({"type": "welcome", "nickname": nickname, "room": "lobby"}),
    )?;
    // Others may be in the lobby; the list must be sorted strings and include the joiner.
    let users: Option<Vec<&str>> = welcome["users"]
        .as_array()
        .and_then(|users| users.iter().map(Value::as_str).collect());
    match users {
        Some(users) if users.contains(&nickname.as_str()) && users.is_sorted() => Ok(()),
        _ => Err(format!(
            "expected `users` to be a sorted array of nicknames including {nickname}, got {}",
            welcome["users"]
        )),
    }
}

fn join_joined_event(ctx: &Ctx) -> Result<(), String> {
    // Joined in an order that is not sorted, so an unsorted `users` shows.
    join_group(ctx, &ctx.fresh("room"), &["carol", "alice", "bob"]).map(|_| ())
}

fn join_unicode_names(ctx: &Ctx) -> Result<(), String> {
    let tag = ctx.fresh("");
    let long: String = "é".repeat(32 - tag.chars().count()) + &tag; // exactly 32 scalars
    let names = [
        format!("李雷{tag}"),
        format!("🦀{tag}"),
        format!("Ålice{tag}"),
        long,
    ];
    for (i, nickname) in names.iter().enumerate() {
        // One at a time, each closed before the next, so one-client servers pass too; each in
        // its own room, since the server may not have seen the previous one leave yet.
        let room = format!("房间🏠{i}{tag}");
        let (_client, welcome) = Client::join(ctx, nickname, Some(&room))?;
        let expected =
            json!({"type": "welcome", "nickname": nickname, "room": room, "users": [nickname]});
        expect_fields(&welcome, &expected)?;
    }
    Ok(())
}

fn nick_renamed(ctx: &Ctx) -> Result<(), String> {
    let (mut client, room) = alone(ctx, "erin")?;
    let (old, new) = (client.label.clone(), ctx.fresh("erika"));
    client.send(&json!({"type": "nick", "nickname": new}))?;
    client.expect(&json!({"type": "renamed", "from": old, "to": new, "room": room}))?;
    client.send(&json!({"type": "list_users"}))?;
    client.expect(&json!({"type": "users", "room": room, "users": [new]}))?;
    Ok(())
}

fn nick_room_notified(ctx: &Ctx) -> Result<(), String> {
    let room = ctx.fresh("room");
    let mut group = join_group(ctx, &room, &["frank", "grace"])?;
    let old = group[0].label.clone();
    let new = ctx.fresh("zed");
    group[0].send(&json!({"type": "nick", "nickname": new}))?;
    let renamed = json!({"type": "renamed", "from": old, "to": new, "room": room});
    for member in &mut group {
        member.expect(&renamed)?;
    }
    let mut users = vec![group[1].label.clone(), new];
    users.sort();
    group[1].send(&json!({"type": "list_users"}))?;
    group[1].expect(&json!({"type": "users", "room": room, "users": users}))?;
    Ok(())
}

fn nick_case_only(ctx: &Ctx) -> Result<(), String> {
    let (mut client, room) = alone(ctx, "casey")?;
    let old = client.label.clone();
    let new = old.to_uppercase();
    client.send(&json!({"type": "nick", "nickname": new}))?;
    client.expect(&json!({"type": "renamed", "from": old, "to": new, "room": room}))?;
    Ok(())
}

fn message_to_sender(ctx: &Ctx) -> Result<(), String> {
    let (mut client, room) = alone(ctx, "hank")?;
    client.send(&json!({"type": "message", "content": "hello, room", "id": "m1"}))?;
    let from = client.label.clone();
    let frame = client.expect(&json!({"type": "broadcast", "from": from, "room": room,
        "content": "hello, room", "id": "m1"}))?;
    expect_ts_near_now(&frame)
}

fn message_to_room(ctx: &Ctx) -> Result<(), String> {
    let room = ctx.fresh("room");
    let mut group = join_group(ctx, &room, &["ivan", "judy", "kim"])?;
    group[1].send(&json!({"type": "message", "content": "to all of you", "id": 7}))?;
    let expected = json!({"type": "broadcast", "from": group[1].label, "room": room,
        "content": "to all of you", "id": 7});
    let mut frames = Vec::new();
    for member in &mut group {
        frames.push(member.expect(&expected)?);
    }
    expect_ts_near_now(&frames[0])?;
    if frames.iter().any(|f| f["ts"] != frames[0]["ts"]) {
        return Err(format!(
            "every member should get the same broadcast, got different `ts`: {:?}",
            frames.iter().map(|f| f["ts"].clone()).collect::<Vec<_>>()
        ));
    }
    Ok(())
}

fn message_id_echo(ctx: &Ctx) -> Result<(), String> {
    let (mut client, _room) = alone(ctx, "leo")?;
    let ids = [
        json!("abc"),
        json!("42"), // a string that looks like a number stays a string
        json!(""),
        json!("x".repeat(64)), // the longest allowed
        json!("李雷🦀"),
        json!(42),
        json!(0),
        json!(-7),
        json!(i64::MAX),
        json!(i64::MIN),
    ];
    for id in ids {
        client.send(&json!({"type": "message", "content": "id test", "id": id}))?;
        client.expect(&json!({"type": "broadcast", "content": "id test", "id": id}))?;
    }
    Ok(())
}

fn message_no_id(ctx: &Ctx) -> Result<(), String> {
    let (mut client, _room) = alone(ctx, "mia")?;
    client.send(&json!({"type": "message", "content": "no id here"}))?;
    let frame = client.expect(&json!({"type": "broadcast", "content": "no id here"}))?;
    expect_no_key(&frame, "id")
}

fn message_unicode_content(ctx: &Ctx) -> Result<(), String> {
    let (mut client, _room) = alone(ctx, "nina")?;
    let content = "李雷 says \"hi\" \\ tab\tnew\nline 🦀 é ☃";
    client.send(&json!({"type": "message", "content": content}))?;
    client.expect(&json!({"type": "broadcast", "content": content}))?;
    // The same characters written with JSON escapes (a surrogate pair for the crab).
    client.send_raw(b"{\"type\":\"message\",\"content\":\"\\u00e9\\ud83e\\udd80\\n\"}\n")?;
    client.expect(&json!({"type": "broadcast", "content": "é🦀\n"}))?;
    Ok(())
}

fn private_delivered(ctx: &Ctx) -> Result<(), String> {
    // Different rooms: a private message reaches any online user.
    let mut alice = join_group(ctx, &ctx.fresh("room"), &["oscar"])?.remove(0);
    let mut bob = join_group(ctx, &ctx.fresh("room"), &["pam"])?.remove(0);
    let (from, to) = (alice.label.clone(), bob.label.clone());
    alice.send(&json!({"type": "private", "to": to, "content": "psst", "id": "p1"}))?;
    let expected =
        json!({"type": "private", "from": from, "to": to, "content": "psst", "id": "p1"});
    let received = bob.expect(&expected)?;
    expect_ts_near_now(&received)?;
    let receipt = alice.expect(&expected)?;
    if receipt != received {
        return Err(format!(
            "the sender's receipt should be the same frame the recipient got: {receipt} vs \
             {received}"
        ));
    }
    alice.send(&json!({"type": "private", "to": to, "content": "no id"}))?;
    let received = bob.expect(&json!({"type": "private", "from": from, "content": "no id"}))?;
    expect_no_key(&received, "id")?;
    alice.expect(&json!({"type": "private", "to": to, "content": "no id"}))?;
    Ok(())
}

fn ping_pong(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "pinger")?;
    // Before join, without and with ids.
    client.send(&json!({"type": "ping"}))?;
    let pong = client.expect(&json!({"type": "pong"}))?;
    expect_no_key(&pong, "id")?;
    for id in [json!("p-1"), json!(99), json!(-1)] {
        client.send(&json!({"type": "ping", "id": id}))?;
        client.expect(&json!({"type": "pong", "id": id}))?;
    }
    // And after join.
    client.send(
        &json!({"type": "join", "nickname": ctx.fresh("pinger"), "room": ctx.fresh("room")}),
    )?;
    client.expect_event("welcome")?;
    client.send(&json!({"type": "ping", "id": "after"}))?;
    client.expect(&json!({"type": "pong", "id": "after"}))?;
    Ok(())
}

fn quit_bye(ctx: &Ctx) -> Result<(), String> {
    let (mut client, _room) = alone(ctx, "gus")?;
    client.send(&json!({"type": "quit"}))?;
    client.expect(&json!({"type": "bye"}))?;
    client.expect_closed()
}

fn quit_before_join(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "early-quitter")?;
    client.send(&json!({"type": "quit"}))?;
    client.expect(&json!({"type": "bye"}))?;
    client.expect_closed()
}

fn quit_room_notified(ctx: &Ctx) -> Result<(), String> {
    let room = ctx.fresh("room");
    let mut group = join_group(ctx, &room, &["hal", "ida"])?;
    group[0].send(&json!({"type": "quit"}))?;
    group[0].expect(&json!({"type": "bye"}))?;
    group[0].expect_closed()?;
    let quitter = group[0].label.clone();
    group[1].expect(&json!({"type": "left", "nickname": quitter, "room": room}))?;
    Ok(())
}

fn hangup_notifies_room(ctx: &Ctx) -> Result<(), String> {
    let room = ctx.fresh("room");
    let mut group = join_group(ctx, &room, &["jay", "kay"])?;
    let gone = group.remove(0);
    let nickname = gone.label.clone();
    drop(gone); // closes the socket without `quit`
    group[0].expect(&json!({"type": "left", "nickname": nickname, "room": room}))?;
    // The nickname is free again.
    let (_again, _) = Client::join(ctx, &nickname, Some(&ctx.fresh("room")))?;
    Ok(())
}

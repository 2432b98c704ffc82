//! Every error code that does not close the connection, each provoked every way `PROTOCOL.md`
//! names, and after each one the connection must still work (the next line is answered).

use super::client::{join_group, Client};
use super::{Ctx, Need, Scenario};
use serde_json::{json, Value};

pub(crate) fn scenarios() -> Vec<Scenario> {
    use Need::TwoClients;
    let s = |name, needs, run| Scenario { name, needs, run };
    vec![
        s("errors.bad_request.invalid_json", &[], invalid_json),
        s("errors.bad_request.invalid_utf8", &[], invalid_utf8),
        s("errors.bad_request.not_object", &[], not_object),
        s("errors.bad_request.array", &[], array),
        s("errors.bad_request.missing_type", &[], missing_type),
        s("errors.bad_request.type_not_string", &[], type_not_string),
        s("errors.bad_request.missing_field", &[], missing_field),
        s("errors.bad_request.mistyped_field", &[], mistyped_field),
        s("errors.bad_request.empty_content", &[], empty_content),
        s("errors.bad_request.bad_id", &[], bad_id),
        s("errors.bad_request.spaces_line", &[], spaces_line),
        s(
            "errors.bad_request.before_join",
            &[],
            bad_request_before_join,
        ),
        s("errors.unknown_type", &[], unknown_type),
        s("errors.not_joined", &[], not_joined),
        s("errors.already_joined", &[], already_joined),
        s("errors.bad_nickname", &[], bad_nickname),
        s("errors.nickname_taken", &[TwoClients], nickname_taken),
        s("errors.bad_room", &[], bad_room),
        s("errors.no_such_user", &[], no_such_user),
    ]
}

/// Sends `line` (a newline is added), expects error `code`, then checks the connection still
/// works.
fn reject(client: &mut Client, line: &[u8], code: &str) -> Result<(), String> {
    let mut bytes = line.to_vec();
    bytes.push(b'\n');
    client.send_raw(&bytes)?;
    client.expect_error(code)?;
    client.still_works()
}

/// Like [`reject`], for a JSON request.
fn reject_json(client: &mut Client, request: Value, code: &str) -> Result<(), String> {
    reject(client, request.to_string().as_bytes(), code)
}

/// [`reject_json`] for each request in turn, on one connection: each must get error `code`,
/// and the connection must still work after it.
fn reject_each(
    client: &mut Client,
    code: &str,
    requests: impl IntoIterator<Item = Value>,
) -> Result<(), String> {
    requests
        .into_iter()
        .try_for_each(|request| reject_json(client, request, code))
}

/// A client alone in a fresh room.
fn joined(ctx: &Ctx, base: &str) -> Result<Client, String> {
    Ok(join_group(ctx, &ctx.fresh("room"), &[base])?.remove(0))
}

fn invalid_json(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "sender")?;
    for line in [
        &b"{\"type\": \"ping\""[..],
        b"hello",
        b"{\"type\":\"ping\",}",
        b"{'type':'ping'}",
    ] {
        reject(&mut client, line, "bad_request")?;
    }
    Ok(())
}

fn invalid_utf8(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "sender")?;
    reject(
        &mut client,
        b"{\"type\":\"ping\",\"id\":\"\xff\xfe\"}",
        "bad_request",
    )?;
    drop(client); // one connection at a time, for one-client servers
    let mut client = joined(ctx, "utf")?;
    reject(
        &mut client,
        b"{\"type\":\"message\",\"content\":\"\xc3\x28\"}",
        "bad_request",
    )?;
    reject(&mut client, b"\xed\xa0\x80", "bad_request") // an encoded surrogate
}

fn not_object(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "sender")?;
    for line in ["42", "\"ping\"", "null", "true"] {
        reject(&mut client, line.as_bytes(), "bad_request")?;
    }
    Ok(())
}

fn array(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "sender")?;
    for line in ["[{\"type\":\"ping\"}]", "[]"] {
        reject(&mut client, line.as_bytes(), "bad_request")?;
    }
    Ok(())
}

fn missing_type(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "sender")?;
    reject_json(&mut client, json!({}), "bad_request")?;
    reject_json(
        &mut client,
        json!({"id": 1, "nickname": "x"}),
        "bad_request",
    )
}

fn type_not_string(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "sender")?;
    let kinds = [
        json!(1),
        json!(null),
        json!(["ping"]),
        json!({"ping": true}),
    ];
    reject_each(
        &mut client,
        "bad_request",
        kinds.map(|kind| json!({"type": kind})),
    )
}

fn missing_field(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "sender")?;
    reject_json(&mut client, json!({"type": "join"}), "bad_request")?;
    reject_json(
        &mut client,
        json!({"type": "join", "room": "r"}),
        "bad_request",
    )?;
    drop(client); // one connection at a time, for one-client servers
    let mut client = joined(ctx, "fields")?;
    let requests = [
        json!({"type": "nick"}),
        json!({"type": "message"}),
        json!({"type": "message", "id": 1}),
        json!({"type": "private", "content": "hi"}),
        json!({"type": "private", "to": client.label}),
        json!({"type": "join_room"}),
    ];
    reject_each(&mut client, "bad_request", requests)
}

fn mistyped_field(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "sender")?;
    let name = ctx.fresh("typo");
    let requests = [
        json!({"type": "join", "nickname": 5}),
        json!({"type": "join", "nickname": null}),
        json!({"type": "join", "nickname": ["a"]}),
        json!({"type": "join", "nickname": name, "room": 5}),
        json!({"type": "join", "nickname": name, "room": null}),
    ];
    reject_each(&mut client, "bad_request", requests)?;
    drop(client); // one connection at a time, for one-client servers
    let mut client = joined(ctx, "typo")?;
    let requests = [
        json!({"type": "nick", "nickname": 5}),
        json!({"type": "message", "content": 5}),
        json!({"type": "message", "content": ["hi"]}),
        json!({"type": "private", "to": 5, "content": "hi"}),
        json!({"type": "private", "to": client.label, "content": {"text": "hi"}}),
        json!({"type": "join_room", "room": true}),
        json!({"type": "list_users", "room": 5}),
    ];
    reject_each(&mut client, "bad_request", requests)
}

fn empty_content(ctx: &Ctx) -> Result<(), String> {
    let mut client = joined(ctx, "empty")?;
    let me = client.label.clone();
    reject_json(
        &mut client,
        json!({"type": "message", "content": ""}),
        "bad_request",
    )?;
    reject_json(
        &mut client,
        json!({"type": "private", "to": me, "content": ""}),
        "bad_request",
    )
}

fn bad_id(ctx: &Ctx) -> Result<(), String> {
    let mut client = joined(ctx, "ids")?;
    let too_long = "x".repeat(65);
    let ids = [
        b"null".to_vec(),
        b"1.5".to_vec(),
        b"{}".to_vec(),
        b"[1]".to_vec(),
        b"true".to_vec(),
        format!("\"{too_long}\"").into_bytes(),
        b"9223372036854775808".to_vec(), // one past i64::MAX
        b"-9223372036854775809".to_vec(),
    ];
    for id in ids {
        for kind in ["message\",\"content\":\"hi", "ping"] {
            let mut line = format!("{{\"type\":\"{kind}\",\"id\":").into_bytes();
            line.extend_from_slice(&id);
            line.push(b'}');
            reject(&mut client, &line, "bad_request")?;
        }
    }
    Ok(())
}

fn spaces_line(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "sender")?;
    reject(&mut client, b"     ", "bad_request")?;
    reject(&mut client, b" \r", "bad_request")
}

fn bad_request_before_join(ctx: &Ctx) -> Result<(), String> {
    // A malformed request is `bad_request` whether or not the connection has joined.
    let mut client = Client::connect(ctx, "sender")?;
    let requests = [
        json!({"type": "message"}),
        json!({"type": "message", "content": ""}),
        json!({"type": "nick", "nickname": 5}),
        json!({"type": "message", "content": "hi", "id": null}),
    ];
    reject_each(&mut client, "bad_request", requests)
}

fn unknown_type(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "sender")?;
    let kinds = ["dance", "JOIN", "", "ping "];
    reject_each(
        &mut client,
        "unknown_type",
        kinds.map(|kind| json!({"type": kind})),
    )?;
    drop(client); // one connection at a time, for one-client servers
    let mut client = joined(ctx, "unknown")?;
    reject_json(
        &mut client,
        json!({"type": "shout", "content": "hi"}),
        "unknown_type",
    )
}

fn not_joined(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "sender")?;
    let requests = [
        json!({"type": "nick", "nickname": ctx.fresh("n")}),
        json!({"type": "message", "content": "hi"}),
        json!({"type": "message", "content": "hi", "id": 3}),
        json!({"type": "private", "to": ctx.fresh("n"), "content": "hi"}),
        json!({"type": "join_room", "room": ctx.fresh("room")}),
        json!({"type": "list_users"}),
        json!({"type": "list_users", "room": "lobby"}),
        json!({"type": "list_rooms"}),
    ];
    reject_each(&mut client, "not_joined", requests)?;
    // And the connection can still join.
    let (nickname, room) = (ctx.fresh("late"), ctx.fresh("room"));
    client.send(&json!({"type": "join", "nickname": nickname, "room": room}))?;
    client.expect(&json!({"type": "welcome", "nickname": nickname, "room": room}))?;
    Ok(())
}

fn already_joined(ctx: &Ctx) -> Result<(), String> {
    let room = ctx.fresh("room");
    let mut client = join_group(ctx, &room, &["once"])?.remove(0);
    let me = client.label.clone();
    reject_json(
        &mut client,
        json!({"type": "join", "nickname": me}),
        "already_joined",
    )?;
    let other = json!({"type": "join", "nickname": ctx.fresh("twice"), "room": ctx.fresh("room")});
    reject_json(&mut client, other, "already_joined")?;
    // Still the first identity, in the first room.
    client.send(&json!({"type": "list_users"}))?;
    client.expect(&json!({"type": "users", "room": room, "users": [me]}))?;
    Ok(())
}

fn bad_nickname(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "sender")?;
    let bad = [
        "has space".to_string(),
        "tab\there".into(),
        "bell\u{7}".into(),
        "nel\u{85}x".into(),
        "ideographic\u{3000}space".into(),
        "x".repeat(33),
        "é".repeat(33),
        String::new(),
    ];
    let joins = bad
        .iter()
        .map(|nickname| json!({"type": "join", "nickname": nickname}));
    reject_each(&mut client, "bad_nickname", joins)?;
    let room = ctx.fresh("room");
    let good = ctx.fresh("good");
    client.send(&json!({"type": "join", "nickname": good, "room": room}))?;
    client.expect(&json!({"type": "welcome", "nickname": good}))?;
    let renames = bad
        .iter()
        .map(|nickname| json!({"type": "nick", "nickname": nickname}));
    reject_each(&mut client, "bad_nickname", renames)
}

fn nickname_taken(ctx: &Ctx) -> Result<(), String> {
    let tag = ctx.fresh("");
    let room = ctx.fresh("room");
    let owner = format!("Ålice{tag}");
    let (_alice, _) = Client::join(ctx, &owner, Some(&room))?;
    let mut other = Client::connect(ctx, "other")?;
    let taken = [owner.clone(), format!("ålice{tag}"), owner.to_uppercase()];
    let joins = taken.map(|nickname| json!({"type": "join", "nickname": nickname, "room": room}));
    reject_each(&mut other, "nickname_taken", joins)?;
    let free = ctx.fresh("bob");
    other.send(&json!({"type": "join", "nickname": free, "room": ctx.fresh("room")}))?;
    other.expect(&json!({"type": "welcome", "nickname": free}))?;
    reject_json(
        &mut other,
        json!({"type": "nick", "nickname": format!("ålice{tag}")}),
        "nickname_taken",
    )
}

fn bad_room(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "sender")?;
    let bad = [
        "two words".to_string(),
        String::new(),
        "r".repeat(33),
        "ctl\u{1b}".into(),
    ];
    let joins = bad
        .iter()
        .map(|room| json!({"type": "join", "nickname": ctx.fresh("roomy"), "room": room}));
    reject_each(&mut client, "bad_room", joins)?;
    let nickname = ctx.fresh("roomy");
    client.send(&json!({"type": "join", "nickname": nickname, "room": ctx.fresh("room")}))?;
    client.expect_event("welcome")?;
    let moves_and_lists = bad.iter().flat_map(|room| {
        [
            json!({"type": "join_room", "room": room}),
            json!({"type": "list_users", "room": room}),
        ]
    });
    reject_each(&mut client, "bad_room", moves_and_lists)
}

fn no_such_user(ctx: &Ctx) -> Result<(), String> {
    let mut client = joined(ctx, "lonely")?;
    let nobody = ctx.fresh("nobody");
    reject_json(
        &mut client,
        json!({"type": "private", "to": nobody, "content": "anyone?"}),
        "no_such_user",
    )
}

//! The protocol extensions of the course's exercises 12 to 14 (the source course's 练习4), checked
//! only when asked: `loadgen check --extension login,history,file`. Their frames are specified
//! in `lessons/exercises/12-login/README.md`, `13-history/README.md` and
//! `14-file-transfer/README.md`; a server of PROTOCOL.md without them fails every scenario here
//! (it ignores `password`, and answers `history` and `file` with `unknown_type`).
//!
//! | extension | scenarios |
//! |---|---|
//! | `login` | a password registers a nickname; a wrong or missing one gets `bad_password`, case ignored, `nick` too |
//! | `history` | a newcomer gets the room's last messages: at most 20, at most 64 KiB, `limit`, gone with the room |
//! | `file` | a base64 file reaches one user intact, with a receipt; bad fields are `bad_request` |

use super::client::{expect_ts_near_now, join_group, Client};
use super::{Ctx, Need, Scenario};
use base64::Engine;
use serde_json::{json, Value};
use std::time::Duration;

/// An extension `--extension` can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Extension {
    /// `join` and `nick` with a `password`: exercise 12.
    Login,
    /// A room's last messages on request: exercise 13.
    History,
    /// A base64 file for one user: exercise 14.
    File,
}

/// Messages a room keeps for `history` (the exercise's specification).
const HISTORY_MESSAGES: usize = 20;

/// Bytes of messages a room keeps for `history`.
const HISTORY_BYTES: usize = 64 * 1024;

/// The scenarios of the extensions in `enabled`, in the order given.
pub(crate) fn scenarios(enabled: &[Extension]) -> Vec<Scenario> {
    use Need::TwoClients;
    let s = |name, needs, run| Scenario { name, needs, run };
    let mut all = Vec::new();
    for extension in enabled {
        all.extend(match extension {
            Extension::Login => vec![
                s("ext.login.wrong_password", &[], login_wrong_password),
                s("ext.login.missing_password", &[], login_missing_password),
                s("ext.login.ignores_case", &[], login_ignores_case),
                s("ext.login.nick", &[], login_nick),
                s("ext.login.in_use", &[TwoClients], login_in_use),
                s("ext.login.without_password", &[], login_without_password),
                s("ext.login.bad_field", &[], login_bad_field),
            ],
            Extension::History => vec![
                s("ext.history.newcomer", &[TwoClients], history_newcomer),
                s("ext.history.last_20", &[], history_last_20),
                s("ext.history.limit", &[], history_limit),
                s("ext.history.bytes", &[], history_bytes),
                s("ext.history.gone_with_room", &[], history_gone_with_room),
                s("ext.history.not_joined", &[], history_not_joined),
                s("ext.history.bad_field", &[], history_bad_field),
            ],
            Extension::File => vec![
                s("ext.file.delivered", &[TwoClients], file_delivered),
                s("ext.file.large", &[TwoClients], file_large),
                s(
                    "ext.file.only_recipient",
                    &[TwoClients],
                    file_only_recipient,
                ),
                s("ext.file.no_such_user", &[], file_no_such_user),
                s("ext.file.bad_data", &[], file_bad_data),
                s("ext.file.bad_name", &[], file_bad_name),
                s("ext.file.not_joined", &[], file_not_joined),
            ],
        });
    }
    all
}

// ---- login ---------------------------------------------------------------------------------

/// Joins `nickname` with `password` (or none), expecting `welcome`.
fn join_with(ctx: &Ctx, nickname: &str, password: Option<&str>) -> Result<Client, String> {
    let mut client = Client::connect(ctx, nickname)?;
    client.send(&join_request(ctx, nickname, password))?;
    client.expect(&json!({"type": "welcome", "nickname": nickname}))?;
    Ok(client)
}

/// A `join` into a fresh room (so no other scenario's member shows up in it).
fn join_request(ctx: &Ctx, nickname: &str, password: Option<&str>) -> Value {
    let mut request = json!({"type": "join", "nickname": nickname, "room": ctx.fresh("room")});
    if let Some(password) = password {
        request["password"] = json!(password);
    }
    request
}

/// Registers `nickname` with `password` (a first `join` with it), then leaves: the name is free
/// again, but registered.
fn register(ctx: &Ctx, nickname: &str, password: &str) -> Result<(), String> {
    let mut client = join_with(ctx, nickname, Some(password))?;
    client.send(&json!({"type": "quit"}))?;
    client.expect_event("bye")?;
    client.expect_closed()
}

/// A `join` that must be refused with `bad_password`, leaving the connection open and unjoined.
fn expect_refused(client: &mut Client, request: &Value) -> Result<(), String> {
    client.send(request)?;
    client.expect_error("bad_password")?;
    client.still_works()
}

fn login_wrong_password(ctx: &Ctx) -> Result<(), String> {
    let nickname = ctx.fresh("owner");
    register(ctx, &nickname, "right")?;
    let mut thief = Client::connect(ctx, "thief")?;
    expect_refused(&mut thief, &join_request(ctx, &nickname, Some("wrong")))?;
    // Refused, not joined, not closed: the right password on the same connection works.
    thief.send(&join_request(ctx, &nickname, Some("right")))?;
    thief.expect(&json!({"type": "welcome", "nickname": nickname}))?;
    Ok(())
}

fn login_missing_password(ctx: &Ctx) -> Result<(), String> {
    let nickname = ctx.fresh("owner");
    register(ctx, &nickname, "right")?;
    let mut old_client = Client::connect(ctx, "old")?;
    expect_refused(&mut old_client, &join_request(ctx, &nickname, None))
}

fn login_ignores_case(ctx: &Ctx) -> Result<(), String> {
    // Nicknames are unique ignoring case (PROTOCOL.md, section 4): so are registrations.
    let nickname = ctx.fresh("Åsa");
    register(ctx, &nickname, "right")?;
    let lower = nickname.to_lowercase();
    let mut other = Client::connect(ctx, "other")?;
    expect_refused(&mut other, &join_request(ctx, &lower, Some("wrong")))?;
    expect_refused(&mut other, &join_request(ctx, &lower, None))
}

fn login_nick(ctx: &Ctx) -> Result<(), String> {
    let nickname = ctx.fresh("owner");
    register(ctx, &nickname, "right")?;
    let me = ctx.fresh("me");
    let mut client = join_with(ctx, &me, None)?;
    expect_refused(&mut client, &json!({"type": "nick", "nickname": nickname}))?;
    let wrong = json!({"type": "nick", "nickname": nickname, "password": "wrong"});
    expect_refused(&mut client, &wrong)?;
    client.send(&json!({"type": "nick", "nickname": nickname, "password": "right"}))?;
    client.expect(&json!({"type": "renamed", "from": me, "to": nickname}))?;
    Ok(())
}

fn login_in_use(ctx: &Ctx) -> Result<(), String> {
    // The password is checked first: a wrong one is `bad_password` even while the name is
    // online. The right one does not take a name that is online: the usual rule still holds.
    let nickname = ctx.fresh("busy");
    let _owner = join_with(ctx, &nickname, Some("right"))?;
    let mut twin = Client::connect(ctx, "twin")?;
    expect_refused(&mut twin, &join_request(ctx, &nickname, Some("wrong")))?;
    twin.send(&join_request(ctx, &nickname, Some("right")))?;
    twin.expect_error("nickname_taken")?;
    twin.still_works()
}

fn login_without_password(ctx: &Ctx) -> Result<(), String> {
    // Old clients never send a password: a name joined without one is not registered, so after
    // it leaves, anyone may take it (here, with a password that registers it).
    let nickname = ctx.fresh("free");
    let mut first = join_with(ctx, &nickname, None)?;
    first.send(&json!({"type": "quit"}))?;
    first.expect_event("bye")?;
    first.expect_closed()?;
    let mut second = join_with(ctx, &nickname, Some("mine"))?;
    second.send(&json!({"type": "quit"}))?;
    second.expect_event("bye")?;
    second.expect_closed()?;
    let mut third = Client::connect(ctx, "third")?;
    expect_refused(&mut third, &join_request(ctx, &nickname, None))
}

fn login_bad_field(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "typo")?;
    let nickname = ctx.fresh("typo");
    let mut request = join_request(ctx, &nickname, None);
    request["password"] = json!(1234);
    client.send(&request)?;
    client.expect_error("bad_request")?;
    client.send(&json!({"type": "message", "content": "am I in?"}))?;
    client.expect_error("not_joined")?;
    Ok(())
}

// ---- history -------------------------------------------------------------------------------

/// Sends `count` messages with ids `h0`, `h1`, ... from `client` (alone in its room or not) and
/// returns the broadcasts it got back, in order.
fn talk(client: &mut Client, count: usize, content: &str) -> Result<Vec<Value>, String> {
    let mut sent = Vec::new();
    for i in 0..count {
        let id = format!("h{i}");
        client.send(&json!({"type": "message", "content": content, "id": id}))?;
        sent.push(client.expect(&json!({"type": "broadcast", "id": id}))?);
    }
    Ok(sent)
}

/// Asks for the history (with `extra` fields) and returns its `messages`, after checking the
/// reply's `type` and `room`.
fn history(client: &mut Client, room: &str, extra: Value) -> Result<Vec<Value>, String> {
    let mut request = json!({"type": "history"});
    for (key, value) in extra.as_object().into_iter().flatten() {
        request[key] = value.clone();
    }
    client.send(&request)?;
    let reply = client.expect(&json!({"type": "history", "room": room}))?;
    match reply["messages"].as_array() {
        Some(messages) => Ok(messages.clone()),
        None => Err(format!(
            "expected `messages` to be an array, got {}",
            reply["messages"]
        )),
    }
}

/// The history must be exactly `expected` (the broadcasts as members received them).
fn same_messages(got: &[Value], expected: &[Value]) -> Result<(), String> {
    let ids = |v: &[Value]| -> Vec<String> { v.iter().map(|m| m["id"].to_string()).collect() };
    if got.len() != expected.len() || got.iter().zip(expected).any(|(g, e)| g != e) {
        return Err(format!(
            "expected the history to be the last {} broadcasts exactly as sent (ids {:?}), got \
             {} messages (ids {:?})",
            expected.len(),
            ids(expected),
            got.len(),
            ids(got)
        ));
    }
    Ok(())
}

fn history_newcomer(ctx: &Ctx) -> Result<(), String> {
    let room = ctx.fresh("room");
    let mut talker = join_group(ctx, &room, &["talker"])?.remove(0);
    let said = talk(&mut talker, 3, "before you came")?;
    let (mut late, _welcome) = Client::join(ctx, &ctx.fresh("late"), Some(&room))?;
    talker.expect_event("joined")?;
    let got = history(&mut late, &room, json!({}))?;
    same_messages(&got, &said)
}

fn history_last_20(ctx: &Ctx) -> Result<(), String> {
    let room = ctx.fresh("room");
    let mut client = join_group(ctx, &room, &["chatty"])?.remove(0);
    let said = talk(&mut client, HISTORY_MESSAGES + 5, "one of many")?;
    let got = history(&mut client, &room, json!({}))?;
    same_messages(&got, &said[5..])
}

fn history_limit(ctx: &Ctx) -> Result<(), String> {
    let room = ctx.fresh("room");
    let mut client = join_group(ctx, &room, &["brief"])?.remove(0);
    let said = talk(&mut client, 5, "short")?;
    same_messages(
        &history(&mut client, &room, json!({"limit": 2}))?,
        &said[3..],
    )?;
    same_messages(&history(&mut client, &room, json!({"limit": 0}))?, &[])?;
    same_messages(&history(&mut client, &room, json!({"limit": 99}))?, &said)?;
    // An `id` comes back, like a ping's.
    client.send(&json!({"type": "history", "limit": 1, "id": "h-req"}))?;
    client.expect(&json!({"type": "history", "room": room, "id": "h-req"}))?;
    Ok(())
}

fn history_bytes(ctx: &Ctx) -> Result<(), String> {
    // Eight messages of 12,000 bytes: the 64 KiB bound keeps only the newest few (5 at most).
    let room = ctx.fresh("room");
    let mut client = join_group(ctx, &room, &["bulky"])?.remove(0);
    let said = talk(&mut client, 8, &"x".repeat(12_000))?;
    let got = history(&mut client, &room, json!({}))?;
    let kept = got.len();
    let content: usize = got
        .iter()
        .map(|m| m["content"].as_str().map_or(0, str::len))
        .sum();
    if kept == 0 || content > HISTORY_BYTES {
        return Err(format!(
            "expected the newest messages within {HISTORY_BYTES} bytes, got {kept} messages \
             with {content} bytes of content"
        ));
    }
    same_messages(&got, &said[said.len() - kept..])
}

fn history_gone_with_room(ctx: &Ctx) -> Result<(), String> {
    // A room exists while it has members: when the last one leaves, its history goes too.
    let room = ctx.fresh("room");
    let mut first = join_group(ctx, &room, &["first"])?.remove(0);
    talk(&mut first, 2, "soon forgotten")?;
    first.send(&json!({"type": "quit"}))?;
    first.expect_event("bye")?;
    first.expect_closed()?;
    let mut next = join_group(ctx, &room, &["next"])?.remove(0);
    same_messages(&history(&mut next, &room, json!({}))?, &[])
}

fn history_not_joined(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "stranger")?;
    client.send(&json!({"type": "history"}))?;
    client.expect_error("not_joined")?;
    client.still_works()
}

fn history_bad_field(ctx: &Ctx) -> Result<(), String> {
    let room = ctx.fresh("room");
    let mut client = join_group(ctx, &room, &["odd"])?.remove(0);
    for limit in [json!(-1), json!("3"), json!(1.5)] {
        client.send(&json!({"type": "history", "limit": limit}))?;
        client.expect_error("bad_request")?;
    }
    client.still_works()
}

// ---- file transfer -------------------------------------------------------------------------

/// `len` bytes covering every byte value, in a different order each time (xorshift).
fn binary(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `from` sends `to` a file of `bytes`; both must get the same `file` frame, data intact.
fn send_file(from: &mut Client, to: &mut Client, name: &str, bytes: &[u8]) -> Result<(), String> {
    let data = base64(bytes);
    let request = json!({"type": "file", "to": to.label, "name": name, "data": data, "id": "f-1"});
    from.send(&request)?;
    let expected = json!({"type": "file", "from": from.label, "to": to.label, "name": name,
                          "data": data, "id": "f-1"});
    let received = to.expect(&expected)?;
    expect_ts_near_now(&received)?;
    let receipt = from.expect(&expected)?;
    if receipt != received {
        return Err(format!(
            "the sender's receipt should be the frame the recipient got (like `private`): \
             {receipt} vs {received}"
        ));
    }
    Ok(())
}

fn file_delivered(ctx: &Ctx) -> Result<(), String> {
    // Different rooms: like a `private`, a file reaches any online user.
    let mut ann = join_group(ctx, &ctx.fresh("room"), &["ann"])?.remove(0);
    let mut ben = join_group(ctx, &ctx.fresh("room"), &["ben"])?.remove(0);
    send_file(&mut ann, &mut ben, "notes.bin", &binary(3000, 7))?;
    send_file(&mut ben, &mut ann, "empty.txt", b"")
}

fn file_large(ctx: &Ctx) -> Result<(), String> {
    // 40,000 bytes are 53,336 of base64: the frame fits the default --max-line of 65,536.
    let mut ann = join_group(ctx, &ctx.fresh("room"), &["ann"])?.remove(0);
    let mut ben = join_group(ctx, &ctx.fresh("room"), &["ben"])?.remove(0);
    send_file(&mut ann, &mut ben, "photo.jpg", &binary(40_000, 11))
}

fn file_only_recipient(ctx: &Ctx) -> Result<(), String> {
    let mut group = join_group(ctx, &ctx.fresh("room"), &["ann", "ben", "cat"])?;
    let (head, tail) = group.split_at_mut(1);
    let (middle, last) = tail.split_at_mut(1);
    send_file(&mut head[0], &mut middle[0], "secret.txt", b"for ben only")?;
    last[0].expect_silence(Duration::from_millis(300))?;
    last[0].still_works()
}

fn file_no_such_user(ctx: &Ctx) -> Result<(), String> {
    let mut client = join_group(ctx, &ctx.fresh("room"), &["lonely"])?.remove(0);
    let nobody = ctx.fresh("nobody");
    client.send(&json!({"type": "file", "to": nobody, "name": "a.txt", "data": base64(b"hi")}))?;
    client.expect_error("no_such_user")?;
    client.still_works()
}

fn file_bad_data(ctx: &Ctx) -> Result<(), String> {
    let mut client = join_group(ctx, &ctx.fresh("room"), &["sloppy"])?.remove(0);
    let me = client.label.clone();
    for data in [json!("not base64!"), json!("aGk"), json!(42)] {
        client.send(&json!({"type": "file", "to": me, "name": "a.txt", "data": data}))?;
        client.expect_error("bad_request")?;
    }
    client.send(&json!({"type": "file", "to": me, "name": "a.txt"}))?;
    client.expect_error("bad_request")?;
    client.still_works()
}

fn file_bad_name(ctx: &Ctx) -> Result<(), String> {
    let mut client = join_group(ctx, &ctx.fresh("room"), &["sneaky"])?.remove(0);
    let me = client.label.clone();
    for name in ["", "../etc/passwd", "a/b", "line\nbreak"] {
        let data = base64(b"x");
        client.send(&json!({"type": "file", "to": me, "name": name, "data": data}))?;
        client.expect_error("bad_request")?;
    }
    client.still_works()
}

fn file_not_joined(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "stranger")?;
    let request = json!({"type": "file", "to": "anyone", "name": "a.txt", "data": base64(b"x")});
    client.send(&request)?;
    client.expect_error("not_joined")?;
    client.still_works()
}

//! The guarantees: replies in request order (1), one total order per room with nothing lost
//! (2, 3), a stalled reader slows nobody and is cut off (4), bad input stays with its sender (5).

use super::client::{join_group, Client};
use super::wire::Wire;
use super::{Ctx, Need, Scenario};
use serde_json::{json, Value};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub(crate) fn scenarios() -> Vec<Scenario> {
    use Need::{BurstBacklog, MaxBacklog, TwoClients};
    let s = |name, needs, run| Scenario { name, needs, run };
    vec![
        s("order.pipelined_pings", &[], pipelined_pings),
        s("order.pipelined_mixed", &[], pipelined_mixed),
        s(
            "order.concurrent_senders",
            &[TwoClients, BurstBacklog],
            concurrent_senders,
        ),
        s(
            "order.stalled_reader",
            &[TwoClients, MaxBacklog, BurstBacklog],
            stalled_reader,
        ),
        s("isolation.bad_input", &[TwoClients], isolation_bad_input),
    ]
}

fn pipelined_pings(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "pipeliner")?;
    let all: String = (0..100)
        .map(|id| format!("{}\n", json!({"type": "ping", "id": id})))
        .collect();
    client.send_raw(all.as_bytes())?;
    for id in 0..100 {
        client.expect(&json!({"type": "pong", "id": id}))?;
    }
    Ok(())
}

fn pipelined_mixed(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "mixer")?;
    let (nickname, renamed, room) = (ctx.fresh("mixer"), ctx.fresh("mixed"), ctx.fresh("room"));
    let requests = [
        json!({"type": "message", "content": "too early"}),
        json!({"type": "join", "nickname": nickname, "room": room}),
        json!({"type": "message", "content": "first", "id": 1}),
        json!({"type": "ping", "id": 2}),
        json!({"type": "list_users"}),
        json!({"type": "nonsense"}),
        json!({"type": "nick", "nickname": renamed}),
        json!({"type": "message", "content": "second", "id": 3}),
        json!({"type": "quit"}),
    ];
    let all: String = requests.iter().map(|r| format!("{r}\n")).collect();
    client.send_raw(all.as_bytes())?;
    client.expect_error("not_joined")?;
    client.expect(&json!({"type": "welcome", "nickname": nickname, "room": room}))?;
    client.expect(&json!({"type": "broadcast", "content": "first", "id": 1}))?;
    client.expect(&json!({"type": "pong", "id": 2}))?;
    client.expect(&json!({"type": "users", "room": room, "users": [nickname]}))?;
    client.expect_error("unknown_type")?;
    client.expect(&json!({"type": "renamed", "from": nickname, "to": renamed}))?;
    client.expect(&json!({"type": "broadcast", "from": renamed, "content": "second", "id": 3}))?;
    client.expect(&json!({"type": "bye"}))?;
    client.expect_closed()
}

/// Senders in the room, and messages each sends.
const SENDERS: usize = 4;
const MESSAGES: i64 = 200;

fn concurrent_senders(ctx: &Ctx) -> Result<(), String> {
    let room = ctx.fresh("room");
    let group = join_group(ctx, &room, &["s", "t", "u", "v"])?;
    let labels: Vec<String> = group.iter().map(|c| c.label.clone()).collect();
    // Every member sends from its own thread while reading on another, all at once.
    let sequences: Vec<Result<Vec<i64>, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = group
            .into_iter()
            .enumerate()
            .map(|(k, mut client)| {
                let labels = &labels;
                scope.spawn(move || {
                    let writer = client.writer()?;
                    let sending = scope.spawn(move || send_numbered(writer, k as i64));
                    let received = receive_broadcasts(&mut client, labels);
                    let sent = sending
                        .join()
                        .unwrap_or_else(|_| Err("sender panicked".into()));
                    sent.and(received)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("receiver panicked".into())))
            .collect()
    });
    let sequences: Vec<Vec<i64>> = sequences.into_iter().collect::<Result<_, _>>()?;
    for (member, sequence) in sequences.iter().enumerate() {
        for sender in 0..SENDERS as i64 {
            let from: Vec<i64> = sequence
                .iter()
                .filter(|id| *id / 10_000 == sender)
                .map(|id| id % 10_000)
                .collect();
            if from != (0..MESSAGES).collect::<Vec<_>>() {
                return Err(format!(
                    "{} received {}'s messages as {} (expected ids 0..{MESSAGES} each once, in \
                     order)",
                    labels[member],
                    labels[sender as usize],
                    summarize(&from)
                ));
            }
        }
        if let Some(at) = sequence.iter().zip(&sequences[0]).position(|(a, b)| a != b) {
            return Err(format!(
                "{} and {} saw the room's broadcasts in different orders, first at position {at}: \
                 {} vs {}",
                labels[member], labels[0], sequence[at], sequences[0][at]
            ));
        }
    }
    Ok(())
}

/// Sends `MESSAGES` messages with ids `sender * 10000 + i`, twenty lines per write.
fn send_numbered(mut writer: Wire, sender: i64) -> Result<(), String> {
    for chunk in 0..MESSAGES / 20 {
        let lines: String = (chunk * 20..chunk * 20 + 20)
            .map(|i| {
                let request = json!({"type": "message", "content": format!("m{i}"), "id": sender * 10_000 + i});
                format!("{request}\n")
            })
            .collect();
        writer
            .write_all(lines.as_bytes())
            .map_err(|e| format!("sending messages failed: {e}"))?;
    }
    Ok(())
}

/// Reads every member's broadcasts; returns their ids in arrival order.
fn receive_broadcasts(client: &mut Client, labels: &[String]) -> Result<Vec<i64>, String> {
    let expected = SENDERS * MESSAGES as usize;
    let mut ids = Vec::with_capacity(expected);
    while ids.len() < expected {
        let frame = client
            .recv()
            .map_err(|e| format!("{e} (had received {} of {expected} broadcasts)", ids.len()))?;
        let id = frame["id"]
            .as_i64()
            .filter(|_| frame["type"] == "broadcast");
        let Some(id) = id else {
            return Err(format!(
                "{}: expected only broadcasts, got {frame}",
                client.label
            ));
        };
        let sender = usize::try_from(id / 10_000).ok().filter(|&s| s < SENDERS);
        if sender.map(|s| &labels[s]) != frame["from"].as_str().map(String::from).as_ref() {
            return Err(format!(
                "{}: broadcast {frame} has the wrong `from`",
                client.label
            ));
        }
        ids.push(id);
    }
    Ok(ids)
}

/// A short description of a received id sequence, for messages.
fn summarize(ids: &[i64]) -> String {
    let head: Vec<String> = ids.iter().take(8).map(i64::to_string).collect();
    format!(
        "{} ids [{}{}]",
        ids.len(),
        head.join(", "),
        if ids.len() > 8 { ", …" } else { "" }
    )
}

/// Joins `members` (name bases) to a fresh room, then a member with a small receive buffer that
/// reads its `welcome` and nothing more until the end. Returns the members and the stalled one.
pub(crate) fn room_with_a_stalled_member(
    ctx: &Ctx,
    members: &[&str],
) -> Result<(Vec<Client>, Client), String> {
    let room = ctx.fresh("room");
    let mut members = join_group(ctx, &room, members)?;
    let stalled_name = ctx.fresh("stalled");
    let mut stalled = Client::connect_with_small_buffer(ctx, &stalled_name)?;
    stalled.send(&json!({"type": "join", "nickname": stalled_name, "room": room}))?;
    stalled.expect_event("welcome")?; // the last thing it ever reads until the end
    for member in &mut members {
        member.expect(&json!({"type": "joined", "nickname": stalled_name, "room": room}))?;
    }
    Ok((members, stalled))
}

fn stalled_reader(ctx: &Ctx) -> Result<(), String> {
    let (mut members, mut stalled) = room_with_a_stalled_member(ctx, &["talker", "watcher"])?;
    let stalled_name = stalled.label.clone();
    // It keeps sending pings (it is stalled, not idle, so the idle timeout stays out of it).
    let stop = AtomicBool::new(false);
    let pinger = stalled.writer()?;
    let outcome = std::thread::scope(|scope| {
        scope.spawn(|| keep_pinging(pinger, &stop));
        let outcome = flood_until_cut_off(ctx, &mut members, &stalled_name);
        stop.store(true, Ordering::SeqCst);
        outcome
    });
    outcome?;
    // The server closed it (what it had sent before may still be in flight: drain it).
    if !stalled.drain_until_closed(Instant::now() + ctx.timeout() * 2)? {
        return Err(format!(
            "{stalled_name} was removed from the room but its connection stayed open"
        ));
    }
    // Both still chat. (A `left` may still be on its way to one that noticed via `users`.)
    for member in members.iter_mut() {
        settle(member, &stalled_name)?;
    }
    Ok(())
}

/// A ping round trip, allowing a `left` about `gone` before the pong.
fn settle(member: &mut Client, gone: &str) -> Result<(), String> {
    member.send(&json!({"type": "ping", "id": "settle"}))?;
    loop {
        let frame = member.recv()?;
        if frame == json!({"type": "pong", "id": "settle"}) {
            return Ok(());
        }
        if frame["type"] != "left" || frame["nickname"] != gone {
            return Err(format!(
                "{}: expected the pong for \"settle\", got {}",
                member.label,
                super::client::compact(&frame)
            ));
        }
    }
}

pub(crate) fn keep_pinging(mut writer: Wire, stop: &AtomicBool) {
    let _ = writer.set_write_timeout(Some(Duration::from_millis(200)));
    while !stop.load(Ordering::SeqCst) {
        if writer.write_all(b"{\"type\":\"ping\"}\n").is_err() {
            return; // cut off (or its send buffer is full): either way, stop
        }
        for _ in 0..10 {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(40));
        }
    }
}

/// The talker sends big messages in windows; talker and watcher must receive each window
/// promptly, and ask `list_users`, until the stalled member is gone (a `left`, or missing from
/// `users`).
fn flood_until_cut_off(ctx: &Ctx, members: &mut [Client], stalled: &str) -> Result<(), String> {
    const WINDOW: i64 = 8;
    let max_backlog = ctx.config.max_backlog.unwrap_or(1 << 20);
    let max_line = ctx.config.max_line.unwrap_or(65_536);
    let content = "z".repeat(max_line.saturating_sub(200).clamp(100, 60_000));
    // Kernel buffers on both sides hold a few MiB at most on loopback; far past that plus the
    // backlog, a server that still has not cut the reader off never will.
    let cap = max_backlog + 32 * 1024 * 1024;
    let mut sent_bytes = 0;
    let mut next_id = 0i64;
    let started = Instant::now();
    while sent_bytes <= cap {
        let window: Vec<i64> = (next_id..next_id + WINDOW).collect();
        next_id += WINDOW;
        let lines: String = window
            .iter()
            .map(|id| {
                format!(
                    "{}\n",
                    json!({"type": "message", "content": content, "id": id})
                )
            })
            .chain(std::iter::once(format!(
                "{}\n",
                json!({"type": "list_users"})
            )))
            .collect();
        members[0].send_raw(lines.as_bytes())?;
        members[1].send(&json!({"type": "list_users"}))?;
        sent_bytes += content.len() * WINDOW as usize;
        let mut gone = false;
        for member in members.iter_mut() {
            gone |= read_window(member, &window, stalled).map_err(|e| {
                format!(
                    "{e}; {sent_bytes} bytes into the flood, {:.1} s in: a reader that never \
                     reads must not slow the others",
                    started.elapsed().as_secs_f64()
                )
            })?;
        }
        if gone {
            return Ok(());
        }
    }
    Err(format!(
        "sent {sent_bytes} bytes to a room with a member that never reads; the server never \
         disconnected it (--max-backlog {max_backlog})"
    ))
}

/// Reads one window's broadcasts and the `users` reply; true if `stalled` is gone from the room.
fn read_window(member: &mut Client, window: &[i64], stalled: &str) -> Result<bool, String> {
    let mut gone = false;
    let (mut next, mut users_seen) = (0, false);
    while next < window.len() || !users_seen {
        let frame = member.recv()?;
        match frame["type"].as_str() {
            Some("broadcast") if next < window.len() && frame["id"] == window[next] => next += 1,
            Some("users") if !users_seen => {
                users_seen = true;
                gone |= !frame["users"]
                    .as_array()
                    .is_some_and(|users| users.contains(&Value::from(stalled)));
            }
            Some("left") if frame["nickname"] == stalled => gone = true,
            _ => {
                return Err(format!(
                    "{}: expected broadcast {} or `users`, got {}",
                    member.label,
                    window.get(next).copied().unwrap_or(-1),
                    super::client::compact(&frame)
                ))
            }
        }
    }
    Ok(gone)
}

fn isolation_bad_input(ctx: &Ctx) -> Result<(), String> {
    let room = ctx.fresh("room");
    let mut group = join_group(ctx, &room, &["mallory", "bob"])?;
    let depth = 1000.min(ctx.config.max_line.unwrap_or(65_536) / 2 - 10);
    let deep = "[".repeat(depth) + &"]".repeat(depth);
    let garbage: [&[u8]; 5] = [
        b"\xff\xfe\x00\x01 not even text",
        b"{\"type\": \"message\", \"content\": ",
        b"}}}}{{{{",
        deep.as_bytes(),
        b"{\"type\":\"message\",\"content\":\"x\",\"id\":1e999}",
    ];
    for line in garbage {
        let mut bytes = line.to_vec();
        bytes.push(b'\n');
        group[0].send_raw(&bytes)?;
        group[0].expect_error("bad_request")?;
    }
    // The other member is unaffected, and so is the room.
    group[1].send(&json!({"type": "message", "content": "still here", "id": "b1"}))?;
    let from = group[1].label.clone();
    for member in &mut group {
        member.expect(&json!({"type": "broadcast", "from": from, "content": "still here"}))?;
    }
    if let Some(max_line) = ctx.config.max_line {
        // A line too long closes only its sender.
        group[0].send_raw(&vec![b'x'; max_line + 1])?;
        group[0].expect_error("line_too_long")?;
        group[0].expect_closed()?;
        let gone = group[0].label.clone();
        group[1].expect(&json!({"type": "left", "nickname": gone, "room": room}))?;
    }
    group[1].still_works()
}

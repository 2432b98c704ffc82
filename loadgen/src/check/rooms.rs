//! The requests about rooms, and their replies, with every field checked: join_room,
//! list_users, list_rooms.

use super::client::join_group;
use super::requests::alone;
use super::{Ctx, Need, Scenario};
use serde_json::{json, Value};

pub(crate) fn scenarios() -> Vec<Scenario> {
    use Need::TwoClients;
    let s = |name, needs, run| Scenario { name, needs, run };
    vec![
        s("join_room.reply", &[], join_room_reply),
        s(
            "join_room.move_notifies",
            &[TwoClients],
            join_room_move_notifies,
        ),
        s("join_room.same_room", &[TwoClients], join_room_same_room),
        s(
            "join_room.empty_room_vanishes",
            &[],
            join_room_empty_vanishes,
        ),
        s("list_users.own_room", &[], list_users_own_room),
        s(
            "list_users.named_room",
            &[TwoClients],
            list_users_named_room,
        ),
        s("list_rooms.own_room", &[], list_rooms_own_room),
        s(
            "list_rooms.sorted_counts",
            &[TwoClients],
            list_rooms_sorted_counts,
        ),
    ]
}

fn join_room_reply(ctx: &Ctx) -> Result<(), String> {
    let (mut client, _room) = alone(ctx, "quinn")?;
    let target = ctx.fresh("room");
    client.send(&json!({"type": "join_room", "room": target}))?;
    let nickname = client.label.clone();
    client.expect(&json!({"type": "room", "room": target, "users": [nickname]}))?;
    Ok(())
}

fn join_room_move_notifies(ctx: &Ctx) -> Result<(), String> {
    let (old_room, new_room) = (ctx.fresh("room"), ctx.fresh("room"));
    let mut old = join_group(ctx, &old_room, &["rita", "sam"])?;
    let mut new = join_group(ctx, &new_room, &["tina"])?;
    let mover = old[0].label.clone();
    old[0].send(&json!({"type": "join_room", "room": new_room}))?;
    let mut users = vec![mover.clone(), new[0].label.clone()];
    users.sort();
    old[0].expect(&json!({"type": "room", "room": new_room, "users": users}))?;
    old[1].expect(&json!({"type": "left", "nickname": mover, "room": old_room}))?;
    new[0].expect(&json!({"type": "joined", "nickname": mover, "room": new_room}))?;
    // The mover gets no `left`/`joined` about itself: its next frame is this pong.
    old[0].still_works()
}

fn join_room_same_room(ctx: &Ctx) -> Result<(), String> {
    let room = ctx.fresh("room");
    let mut group = join_group(ctx, &room, &["uma", "vic"])?;
    group[0].send(&json!({"type": "join_room", "room": room}))?;
    let mut users = vec![group[0].label.clone(), group[1].label.clone()];
    users.sort();
    group[0].expect(&json!({"type": "room", "room": room, "users": users}))?;
    // Nobody is notified: the other member's next frame is its own pong.
    group[1].still_works()?;
    group[0].still_works()
}

fn join_room_empty_vanishes(ctx: &Ctx) -> Result<(), String> {
    let (mut client, old_room) = alone(ctx, "walt")?;
    let new_room = ctx.fresh("room");
    client.send(&json!({"type": "join_room", "room": new_room}))?;
    client.expect_event("room")?;
    client.send(&json!({"type": "list_rooms"}))?;
    let rooms = room_counts(&client.expect_event("rooms")?)?;
    if rooms.iter().any(|(name, _)| *name == old_room) {
        return Err(format!(
            "the room {old_room} has no members left and should be gone from `rooms`, got \
             {rooms:?}"
        ));
    }
    match rooms.iter().find(|(name, _)| *name == new_room) {
        Some((_, 1)) => Ok(()),
        other => Err(format!(
            "expected {new_room} with 1 user in `rooms`, got {other:?}"
        )),
    }
}

fn list_users_own_room(ctx: &Ctx) -> Result<(), String> {
    let (mut client, room) = alone(ctx, "xena")?;
    client.send(&json!({"type": "list_users"}))?;
    let nickname = client.label.clone();
    client.expect(&json!({"type": "users", "room": room, "users": [nickname]}))?;
    Ok(())
}

fn list_users_named_room(ctx: &Ctx) -> Result<(), String> {
    let mut asker = join_group(ctx, &ctx.fresh("room"), &["yara"])?.remove(0);
    let other_room = ctx.fresh("room");
    let others = join_group(ctx, &other_room, &["zoe", "abe"])?;
    let mut users: Vec<&str> = others.iter().map(|c| c.label.as_str()).collect();
    users.sort_unstable();
    asker.send(&json!({"type": "list_users", "room": other_room}))?;
    asker.expect(&json!({"type": "users", "room": other_room, "users": users}))?;
    // A room nobody is in has no users.
    let empty = ctx.fresh("room");
    asker.send(&json!({"type": "list_users", "room": empty}))?;
    asker.expect(&json!({"type": "users", "room": empty, "users": []}))?;
    Ok(())
}

fn list_rooms_own_room(ctx: &Ctx) -> Result<(), String> {
    let (mut client, room) = alone(ctx, "bea")?;
    client.send(&json!({"type": "list_rooms"}))?;
    let rooms = room_counts(&client.expect_event("rooms")?)?;
    match rooms.iter().find(|(name, _)| *name == room) {
        Some((_, 1)) => Ok(()),
        other => Err(format!(
            "expected {room} with 1 user in `rooms`, got {other:?}"
        )),
    }
}

fn list_rooms_sorted_counts(ctx: &Ctx) -> Result<(), String> {
    // Created in reverse name order, so an unsorted list shows.
    let tag = ctx.fresh("");
    let (late, early) = (format!("zz{tag}"), format!("aa{tag}"));
    let mut late_group = join_group(ctx, &late, &["cole", "fay"])?;
    let _early_group = join_group(ctx, &early, &["dana", "eli"])?;
    let asker = &mut late_group[0];
    asker.send(&json!({"type": "list_rooms"}))?;
    let rooms = room_counts(&asker.expect_event("rooms")?)?;
    let ours: Vec<(String, u64)> = rooms
        .into_iter()
        .filter(|(name, _)| name.ends_with(&tag))
        .collect();
    let expected = vec![(early, 2), (late, 2)];
    if ours != expected {
        return Err(format!(
            "expected rooms {expected:?} (in this order), got {ours:?}"
        ));
    }
    Ok(())
}

/// Checks a `rooms` event's shape (an array of `{"name", "users"}` sorted by name) and returns
/// its entries.
fn room_counts(frame: &Value) -> Result<Vec<(String, u64)>, String> {
    let entries: Option<Vec<(String, u64)>> = frame["rooms"].as_array().and_then(|rooms| {
        rooms
            .iter()
            .map(|r| Some((r["name"].as_str()?.to_string(), r["users"].as_u64()?)))
            .collect()
    });
    let Some(entries) = entries else {
        return Err(format!(
            "expected `rooms` to be an array of {{\"name\": string, \"users\": count}}, got {frame}"
        ));
    };
    if !entries.is_sorted_by(|a, b| a.0 <= b.0) {
        return Err(format!("expected `rooms` sorted by name, got {frame}"));
    }
    Ok(entries)
}

//! A model of the chat rules, to judge the Hub call by call.
//!
//! The `hub` target makes every call on a real [`Hub`] and on this [`Model`], then asks the
//! model to judge what the Hub put in its Outbox. The model keeps only what the spec talks
//! about: which connections are open, who has joined under which nickname, and which room each
//! member is in. From that it knows, for each call, exactly which frames every connection must
//! get and which connections must be closed:
//!
//! - every frame is a valid event ([`check_frame`]) addressed to an open connection, and
//!   nothing is sent to a connection after its `Close` (in this Outbox or any later one);
//! - each line a connection sends gets exactly one reply to it, of the right kind: the error
//!   the spec names (any of them when several apply, since the spec does not rank them), or
//!   the success event, with `rate_limited` allowed in its place when a rate limit is set;
//! - `joined`, `left`, `renamed`, `broadcast` and `private` reach exactly the members the spec
//!   says, with the sender's *registered* nickname;
//! - `welcome`, `room`, `users` and `rooms` list exactly the members the model tracked (so
//!   member counts follow the joins and leaves), and nicknames stay unique ignoring case;
//! - the idle timeout closes exactly the connections silent for at least `--idle-timeout`, and
//!   [`Hub::tick`]'s next deadline is never later than the first one due.
//!
//! Frames are compared as JSON values, without `ts` (checked by [`check_frame`]) and without
//! an error's human `message`.

use crate::events::check_frame;
use crate::spec::{fold, is_valid_name};
use chat_core::{Action, ConnId, ErrorCode, Hub, HubConfig, Id, Inbound, Request};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// What the spec says about one open connection.
#[derive(Debug)]
struct Conn {
    /// Its nickname and room, once it has joined.
    member: Option<Member>,
    /// When its last line arrived: the idle timeout counts from here.
    last_active: Instant,
}

#[derive(Debug, Clone)]
struct Member {
    nickname: String,
    room: String,
}

/// The frames and closes one Hub call produced (or must produce), by connection.
#[derive(Debug, Default, PartialEq)]
pub struct Emitted {
    /// Frames per connection, in the order they must be written, normalised for comparison.
    frames: BTreeMap<u64, Vec<Value>>,
    /// The connections closed, in the order of their `Close` actions.
    closes: Vec<u64>,
}

impl Emitted {
    fn send(&mut self, to: u64, frame: Value) {
        self.frames.entry(to).or_default().push(frame);
    }

    /// The frames for `to` (none: empty).
    fn to(&self, to: u64) -> &[Value] {
        self.frames.get(&to).map(Vec::as_slice).unwrap_or_default()
    }
}

/// The model. See the module docs.
#[derive(Debug)]
pub struct Model {
    max_conns: usize,
    idle_timeout: Option<Duration>,
    rate_limited: bool,
    /// Open connections by id.
    open: BTreeMap<u64, Conn>,
    /// Connections closed, disconnected or refused: nothing may be sent to them ever again.
    gone: BTreeSet<u64>,
    /// The clock the target drives the Hub with.
    pub now: Instant,
}

impl Model {
    pub fn new(config: &HubConfig, now: Instant) -> Model {
        Model {
            max_conns: config.max_conns,
            idle_timeout: config.idle_timeout,
            rate_limited: config.rate_limit > 0,
            open: BTreeMap::new(),
            gone: BTreeSet::new(),
            now,
        }
    }

    /// Checks what holds for any Outbox and sorts it by connection: every frame valid and
    /// addressed to an open connection (or `new`, the one just accepted), nothing after a
    /// connection's `Close`, no connection closed twice.
    pub fn collect(&self, actions: &[Action], new: Option<ConnId>) -> Result<Emitted, String> {
        let mut emitted = Emitted::default();
        let mut closed_now = BTreeSet::new();
        for action in actions {
            match action {
                Action::Send { to, frame } => {
                    let id = to.0;
                    if closed_now.contains(&id) {
                        return Err(format!("a frame for {to} after its Close"));
                    }
                    if !self.open.contains_key(&id) && Some(*to) != new {
                        let state = if self.gone.contains(&id) {
                            "closed"
                        } else {
                            "unknown"
                        };
                        return Err(format!("a frame for {state} connection {to}"));
                    }
                    let mut value = check_frame(frame)
                        .map_err(|e| format!("invalid frame for {to}: {e}: {frame:?}"))?;
                    normalise(&mut value);
                    emitted.send(id, value);
                }
                Action::Close { conn, .. } => {
                    if !closed_now.insert(conn.0) || self.gone.contains(&conn.0) {
                        return Err(format!("{conn} closed twice"));
                    }
                    emitted.closes.push(conn.0);
                }
            }
        }
        Ok(emitted)
    }

    /// `Hub::connect` returned `id`.
    pub fn on_connect(&mut self, id: ConnId, got: &Emitted) -> Result<(), String> {
        if self.open.contains_key(&id.0) || self.gone.contains(&id.0) {
            return Err(format!("connect reused the id {id}"));
        }
        let mut want = Emitted::default();
        if self.open.len() >= self.max_conns {
            want.send(id.0, error("server_full"));
            want.closes.push(id.0);
            self.gone.insert(id.0);
        } else {
            let conn = Conn {
                member: None,
                last_active: self.now,
            };
            self.open.insert(id.0, conn);
        }
        compare("connect", got, &want)
    }

    /// `Hub::handle(id, inbound)` was called.
    pub fn on_handle(
        &mut self,
        id: ConnId,
        inbound: &Inbound,
        got: &Emitted,
    ) -> Result<(), String> {
        let c = id.0;
        let now = self.now;
        let Some(conn) = self.open.get_mut(&c) else {
            // Late input for a connection that is gone is ignored.
            return compare("a line on a closed connection", got, &Emitted::default());
        };
        conn.last_active = now;
        let what = format!("{inbound:?} from {id}");
        if let Err(rejection) = inbound {
            if rejection.code.closes_connection() {
                let mut want = self.remove(c);
                want.frames.insert(c, vec![error(rejection.code.as_str())]);
                want.closes.push(c);
                return compare(&what, got, &want);
            }
        }
        let reply = match got.to(c) {
            [reply] => reply,
            other => return Err(format!("{what}: expected one reply, got {other:?}")),
        };
        if self.rate_limited && *reply == error("rate_limited") {
            // Dropped by the token bucket: nothing else may happen.
            let mut want = Emitted::default();
            want.send(c, error("rate_limited"));
            return compare(&what, got, &want);
        }
        let codes = self.errors(c, inbound);
        if !codes.is_empty() {
            let Some(code) = codes.iter().find(|&&code| *reply == error(code)) else {
                return Err(format!("{what}: expected error {codes:?}, got {reply}"));
            };
            let mut want = Emitted::default();
            want.send(c, error(code));
            return compare(&what, got, &want);
        }
        let Ok(request) = inbound else {
            return Err(format!("{what}: a rejection the model has no error for"));
        };
        let want = self.apply(c, request);
        compare(&what, got, &want)
    }

    /// `Hub::disconnect(id)` was called.
    pub fn on_disconnect(&mut self, id: ConnId, got: &Emitted) -> Result<(), String> {
        let want = if self.open.contains_key(&id.0) {
            self.remove(id.0)
        } else {
            Emitted::default()
        };
        compare("disconnect", got, &want)
    }

    /// `Hub::tick(self.now)` was called and returned `next`.
    pub fn on_tick(&mut self, next: Option<Instant>, got: &Emitted) -> Result<(), String> {
        let Some(timeout) = self.idle_timeout else {
            if next.is_some() {
                return Err("tick returned a deadline with no idle timeout".into());
            }
            return compare("tick without idle timeout", got, &Emitted::default());
        };
        let now = self.now;
        let silent: BTreeSet<u64> = self
            .open
            .iter()
            .filter(|(_, conn)| conn.last_active + timeout <= now)
            .map(|(&id, _)| id)
            .collect();
        let closed: BTreeSet<u64> = got.closes.iter().copied().collect();
        if closed != silent {
            return Err(format!(
                "idle timeout: closed {closed:?}, silent for {timeout:?} or more: {silent:?}"
            ));
        }
        // Several may time out in one tick; each one's room hears `left` from those removed
        // before it, so replay the Hub's order (that of its Closes).
        let mut want = Emitted::default();
        for &c in &got.closes {
            let left = self.remove(c);
            merge(&mut want, left);
            want.send(c, error("idle_timeout"));
            want.closes.push(c);
        }
        compare("tick", got, &want)?;
        if let Some(first_due) = self.open.values().map(|c| c.last_active + timeout).min() {
            match next {
                Some(next) if next > now && next <= first_due => {}
                other => {
                    return Err(format!(
                        "tick returned {other:?}, the next timeout is due at {first_due:?} (now {now:?})"
                    ))
                }
            }
        } else if next.is_some_and(|next| next <= now) {
            return Err("tick returned a deadline that has passed".into());
        }
        Ok(())
    }

    /// `Hub::shutdown` was called.
    pub fn on_shutdown(&mut self, got: &Emitted) -> Result<(), String> {
        let mut want = Emitted::default();
        for &c in self.open.keys() {
            want.send(c, error("shutting_down"));
        }
        let mut closes = got.closes.clone();
        closes.sort_unstable();
        want.closes = self.open.keys().copied().collect();
        self.gone.extend(self.open.keys());
        self.open.clear();
        let got = Emitted {
            frames: got.frames.clone(),
            closes,
        };
        compare("shutdown", &got, &want)
    }

    /// The Hub knows exactly the open connections, and nicknames are unique ignoring case.
    pub fn check_hub(&self, hub: &Hub, ids: &[ConnId]) -> Result<(), String> {
        if hub.len() != self.open.len() {
            return Err(format!(
                "the Hub has {} connections, the model {}",
                hub.len(),
                self.open.len()
            ));
        }
        for &id in ids {
            if hub.contains(id) != self.open.contains_key(&id.0) {
                return Err(format!(
                    "the Hub and the model disagree on whether {id} is open"
                ));
            }
        }
        let mut folded = BTreeSet::new();
        for member in self.open.values().filter_map(|c| c.member.as_ref()) {
            if !folded.insert(fold(&member.nickname)) {
                return Err(format!(
                    "two members are called {:?} ignoring case",
                    member.nickname
                ));
            }
        }
        Ok(())
    }

    // ---- the rules -----------------------------------------------------------------------

    /// The errors the spec allows as the reply to `inbound` from `c` (empty: it succeeds).
    fn errors(&self, c: u64, inbound: &Inbound) -> Vec<&'static str> {
        let request = match inbound {
            Ok(request) => request,
            Err(rejection) => return vec![rejection.code.as_str()],
        };
        let me = self.member(c);
        if me.is_none() && !request.allowed_before_join() {
            return vec![ErrorCode::NotJoined.as_str()];
        }
        let mut codes = Vec::new();
        match request {
            Request::Join { nickname, room } => {
                if me.is_some() {
                    codes.push("already_joined");
                }
                if !is_valid_name(nickname) {
                    codes.push("bad_nickname");
                }
                if !is_valid_name(room.as_deref().unwrap_or(chat_core::DEFAULT_ROOM)) {
                    codes.push("bad_room");
                }
                if self.owner_of(nickname).is_some() {
                    codes.push("nickname_taken");
                }
            }
            Request::Nick { nickname } => {
                if !is_valid_name(nickname) {
                    codes.push("bad_nickname");
                } else if self.owner_of(nickname).is_some_and(|owner| owner != c) {
                    codes.push("nickname_taken");
                }
            }
            Request::Private { to, .. } if self.owner_of(to).is_none() => {
                codes.push("no_such_user");
            }
            Request::JoinRoom { room } | Request::ListUsers { room: Some(room) }
                if !is_valid_name(room) =>
            {
                codes.push("bad_room");
            }
            _ => {}
        }
        codes
    }

    /// Carries out a request that succeeds; returns what everyone must get.
    fn apply(&mut self, c: u64, request: &Request) -> Emitted {
        let mut want = Emitted::default();
        match request {
            Request::Join { nickname, room } => {
                let room = room
                    .clone()
                    .unwrap_or_else(|| chat_core::DEFAULT_ROOM.into());
                for other in self.members_of(&room) {
                    want.send(
                        other,
                        json!({"type": "joined", "nickname": nickname, "room": room}),
                    );
                }
                self.set_member(c, nickname, &room);
                let users = self.names_in(&room);
                want.send(
                    c,
                    json!({"type": "welcome", "nickname": nickname, "room": room, "users": users}),
                );
            }
            Request::Nick { nickname } => {
                let me = self
                    .member(c)
                    .cloned()
                    .unwrap_or_else(|| unreachable_member(c));
                self.set_member(c, nickname, &me.room);
                for member in self.members_of(&me.room) {
                    want.send(
                        member,
                        json!({"type": "renamed", "from": me.nickname, "to": nickname, "room": me.room}),
                    );
                }
            }
            Request::Message { content, id } => {
                let me = self
                    .member(c)
                    .cloned()
                    .unwrap_or_else(|| unreachable_member(c));
                let mut frame = json!({"type": "broadcast", "from": me.nickname, "room": me.room, "content": content});
                with_id(&mut frame, id);
                for member in self.members_of(&me.room) {
                    want.send(member, frame.clone());
                }
            }
            Request::Private { to, content, id } => {
                let me = self
                    .member(c)
                    .cloned()
                    .unwrap_or_else(|| unreachable_member(c));
                let target = self.owner_of(to).unwrap_or(c);
                let target_name = self.member(target).map(|m| m.nickname.clone());
                let mut frame = json!({"type": "private", "from": me.nickname, "to": target_name, "content": content});
                with_id(&mut frame, id);
                want.send(target, frame.clone());
                if target != c {
                    want.send(c, frame); // the sender's receipt
                }
            }
            Request::JoinRoom { room } => {
                let me = self
                    .member(c)
                    .cloned()
                    .unwrap_or_else(|| unreachable_member(c));
                if me.room != *room {
                    for other in self.members_of(&me.room).into_iter().filter(|&o| o != c) {
                        want.send(
                            other,
                            json!({"type": "left", "nickname": me.nickname, "room": me.room}),
                        );
                    }
                    for other in self.members_of(room) {
                        want.send(
                            other,
                            json!({"type": "joined", "nickname": me.nickname, "room": room}),
                        );
                    }
                    self.set_member(c, &me.nickname, room);
                }
                want.send(
                    c,
                    json!({"type": "room", "room": room, "users": self.names_in(room)}),
                );
            }
            Request::ListUsers { room } => {
                let room = room
                    .clone()
                    .or_else(|| self.member(c).map(|m| m.room.clone()))
                    .unwrap_or_default();
                want.send(
                    c,
                    json!({"type": "users", "room": room, "users": self.names_in(&room)}),
                );
            }
            Request::ListRooms => {
                let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
                for member in self.open.values().filter_map(|c| c.member.as_ref()) {
                    *counts.entry(&member.room).or_default() += 1;
                }
                let rooms: Vec<Value> = counts
                    .into_iter()
                    .map(|(name, users)| json!({"name": name, "users": users}))
                    .collect();
                want.send(c, json!({"type": "rooms", "rooms": rooms}));
            }
            Request::Ping { id } => {
                let mut frame = json!({"type": "pong"});
                with_id(&mut frame, id);
                want.send(c, frame);
            }
            Request::Quit => {
                want = self.remove(c);
                want.send(c, json!({"type": "bye"}));
                want.closes.push(c);
            }
        }
        want
    }

    /// Forgets `c` (closed, disconnected or timed out); its room hears `left`.
    fn remove(&mut self, c: u64) -> Emitted {
        let mut want = Emitted::default();
        if let Some(conn) = self.open.remove(&c) {
            if let Some(member) = conn.member {
                for other in self.members_of(&member.room) {
                    want.send(
                        other,
                        json!({"type": "left", "nickname": member.nickname, "room": member.room}),
                    );
                }
            }
        }
        self.gone.insert(c);
        want
    }

    // ---- lookups ---------------------------------------------------------------------------

    fn member(&self, c: u64) -> Option<&Member> {
        self.open.get(&c)?.member.as_ref()
    }

    /// The connection whose nickname equals `nickname` ignoring case.
    fn owner_of(&self, nickname: &str) -> Option<u64> {
        let key = fold(nickname);
        self.open
            .iter()
            .find(|(_, conn)| {
                conn.member
                    .as_ref()
                    .is_some_and(|m| fold(&m.nickname) == key)
            })
            .map(|(&id, _)| id)
    }

    /// The connections in `room`.
    fn members_of(&self, room: &str) -> Vec<u64> {
        self.open
            .iter()
            .filter(|(_, conn)| conn.member.as_ref().is_some_and(|m| m.room == room))
            .map(|(&id, _)| id)
            .collect()
    }

    /// The nicknames in `room`, sorted.
    fn names_in(&self, room: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .open
            .values()
            .filter_map(|conn| conn.member.as_ref())
            .filter(|m| m.room == room)
            .map(|m| m.nickname.clone())
            .collect();
        names.sort();
        names
    }

    fn set_member(&mut self, c: u64, nickname: &str, room: &str) {
        if let Some(conn) = self.open.get_mut(&c) {
            conn.member = Some(Member {
                nickname: nickname.to_string(),
                room: room.to_string(),
            });
        }
    }
}

/// `want`'s frames and closes appended to `into`.
fn merge(into: &mut Emitted, want: Emitted) {
    for (to, frames) in want.frames {
        into.frames.entry(to).or_default().extend(frames);
    }
    into.closes.extend(want.closes);
}

fn compare(what: &str, got: &Emitted, want: &Emitted) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "{what}:\n  the Hub sent  {got:?}\n  the spec says {want:?}"
        ))
    }
}

/// An `error` frame as compared: its code, not its human message.
fn error(code: &str) -> Value {
    json!({"type": "error", "code": code})
}

fn with_id(frame: &mut Value, id: &Option<Id>) {
    if let Some(id) = id {
        frame["id"] = serde_json::to_value(id).unwrap_or(Value::Null);
    }
}

/// Drops what is not compared: `ts` (a clock) and an error's `message` (prose).
fn normalise(frame: &mut Value) {
    if let Some(object) = frame.as_object_mut() {
        object.remove("ts");
        if object.get("type").and_then(Value::as_str) == Some("error") {
            object.remove("message");
        }
    }
}

/// The model only applies requests that need a member after checking there is one.
fn unreachable_member(c: u64) -> Member {
    panic!("the model applied a member's request for #{c}, which has not joined")
}

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

mod rules;

use crate::events::check_frame;
use crate::spec::fold;
use chat_core::{Action, ConnId, Hub, HubConfig, Inbound};
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
    /// As registered (the case the member chose).
    nickname: String,
    /// The one room it is in.
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
    /// `--max-conns`: one more connection gets `server_full`.
    max_conns: usize,
    /// `--idle-timeout`, if set: which connections `tick` must close.
    idle_timeout: Option<Duration>,
    /// Whether `--rate-limit` is set: then `rate_limited` may replace any reply (the model
    /// does not replay the token bucket).
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

/// Drops what is not compared: `ts` (a clock) and an error's `message` (prose).
fn normalise(frame: &mut Value) {
    if let Some(object) = frame.as_object_mut() {
        object.remove("ts");
        if object.get("type").and_then(Value::as_str) == Some("error") {
            object.remove("message");
        }
    }
}

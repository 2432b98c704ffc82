//! The three extensions of exercises 12 to 14 (the source course's 练习4), as a layer around
//! chat-core's [`Hub`], which is left exactly as it is.
//!
//! The layer sees every line first. An extension request (`history`, `file`, or a `join`/`nick`
//! about a registered nickname) is answered here; everything else goes to the Hub untouched, so
//! an old client sees the protocol of PROTOCOL.md and nothing else. To know who is who, the
//! layer reads the Hub's own replies: `welcome`, `renamed`, `room` and the sender's copy of its
//! `broadcast` say who joined, was renamed, moved or spoke, and the closes and cuts of the
//! executor say who left. It never guesses.
//!
//! Building on the Hub instead of changing it has one price: the Hub has no call for "a request
//! arrived" other than `handle`. Each extension request is therefore first shown to the Hub as a
//! `ping` ([`Extended::admit`]): that keeps the idle timeout (it is activity) and the rate limit
//! (it costs a token) true for the new requests too, and the `pong` is thrown away.
//!
//! | extension | state | bound |
//! |---|---|---|
//! | login | folded nickname -> password, for the life of the process | [`MAX_REGISTERED`] names |
//! | history | each room's last messages, while the room has members | see `history.rs` |
//! | file | none: a `file` is passed on like a `private` | `--max-line` |

use crate::history::{Histories, Limits};
use crate::requests::{self, Extension, FileRequest};
use chat_core::names::fold;
use chat_core::{
    carry_out, clip, error_frame, parse_request, Action, BacklogFull, CloseReason, ConnId,
    ErrorCode, Frame, Hub, HubConfig, Inbound, Outbox, Rejection, Request, Sink,
};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Nicknames registered at most. Past it, a `join` with a password still joins, unregistered:
/// the registry, like every table a client can grow, has a bound.
pub const MAX_REGISTERED: usize = 100_000;

/// The chat, with the three extensions.
#[derive(Debug)]
pub struct Extended {
    /// The chat rules of PROTOCOL.md, unchanged.
    hub: Hub,
    /// Every member, as the Hub's replies said: its nickname and room.
    members: HashMap<ConnId, Member>,
    /// Members by folded nickname (Unicode lower case, like the Hub's uniqueness rule): where a
    /// `file` goes.
    by_nickname: HashMap<String, ConnId>,
    /// Login: registered nickname (folded) -> its password. In memory only: a restart forgets
    /// every registration. (A real server would keep a slow, salted hash such as argon2 on
    /// disk, never the password itself.)
    passwords: HashMap<String, String>,
    /// History: each room's last messages.
    histories: Histories,
}

#[derive(Debug, Clone)]
struct Member {
    nickname: String,
    room: String,
}

impl Extended {
    pub fn new(config: HubConfig, limits: Limits) -> Self {
        Extended {
            hub: Hub::new(config),
            members: HashMap::new(),
            by_nickname: HashMap::new(),
            passwords: HashMap::new(),
            histories: Histories::new(limits),
        }
    }

    /// A connection from `ip` was accepted: the Hub gives it an id, or refuses it with
    /// `server_full` (in `out`). The caller registers the connection under that id, then
    /// carries `out` out with [`Extended::carry_out`].
    pub fn connect_from(&mut self, now: Instant, ip: IpAddr, out: &mut Outbox) -> ConnId {
        self.hub.connect_from(now, ip, out)
    }

    /// One line from `id`: `Ok` with the line (without its `\n` or `\r`), or the rejection
    /// the framing produced (`line_too_long`, which closes the connection).
    pub fn handle(
        &mut self,
        id: ConnId,
        line: Result<&[u8], Rejection>,
        now: Instant,
        sink: &mut impl Sink,
    ) {
        let mut out = Outbox::new();
        match line {
            Ok(raw) => self.request(id, raw, now, &mut out),
            Err(rejection) => self.hub.handle(id, Err(rejection), now, &mut out),
        }
        self.carry_out(&mut out, sink);
    }

    /// The peer of `id` went away.
    pub fn disconnect(&mut self, id: ConnId, sink: &mut impl Sink) {
        let mut out = Outbox::new();
        self.hub.disconnect(id, &mut out);
        self.forget(id);
        self.carry_out(&mut out, sink);
    }

    /// Time passed: the idle timeout. Returns when to call again.
    pub fn tick(&mut self, now: Instant, sink: &mut impl Sink) -> Option<Instant> {
        let mut out = Outbox::new();
        let next = self.hub.tick(now, &mut out);
        self.carry_out(&mut out, sink);
        next
    }

    /// SIGINT/SIGTERM: everyone gets `shutting_down`.
    pub fn shutdown(&mut self, sink: &mut impl Sink) {
        let mut out = Outbox::new();
        self.hub.shutdown(&mut out);
        self.carry_out(&mut out, sink);
    }

    // ---- one request ----------------------------------------------------------------------

    fn request(&mut self, id: ConnId, raw: &[u8], now: Instant, out: &mut Outbox) {
        match requests::parse(raw) {
            Extension::Plain => self.pass(id, parse_request(raw), now, out),
            Extension::Claim { password } => self.claim(id, raw, password, now, out),
            Extension::Malformed(why) => {
                if self.admit(id, now, out) {
                    out.send(id, error_frame(ErrorCode::BadRequest, &why));
                }
            }
            Extension::History { limit, id: echo } => {
                if self.admit(id, now, out) {
                    self.history(id, limit, echo, out);
                }
            }
            Extension::File(file) => {
                if self.admit(id, now, out) {
                    self.file(id, file, out);
                }
            }
        }
    }

    /// A request for the Hub; then what its replies say about who is where.
    fn pass(&mut self, id: ConnId, request: Inbound, now: Instant, out: &mut Outbox) {
        let first = out.len();
        self.hub.handle(id, request, now, out);
        self.observe(id, &out.actions()[first..]);
    }

    /// Shows an extension request to the Hub as a `ping`, so it counts as activity and against
    /// the rate limit. `false` (with the Hub's `rate_limited` in `out`) when it may not proceed.
    fn admit(&mut self, id: ConnId, now: Instant, out: &mut Outbox) -> bool {
        if !self.hub.contains(id) {
            return false;
        }
        let mut scratch = Outbox::new();
        self.hub
            .handle(id, Ok(Request::Ping { id: None }), now, &mut scratch);
        let pong_only = scratch.actions().iter().all(|action| match action {
            Action::Send { frame, .. } => frame.starts_with(br#"{"type":"pong""#),
            Action::Close { .. } => false,
        });
        if !pong_only {
            for action in scratch.drain() {
                match action {
                    Action::Send { to, frame } => out.send(to, frame),
                    Action::Close { conn, reason } => out.close(conn, reason),
                }
            }
        }
        pong_only
    }

    // ---- login (exercise 12) --------------------------------------------------------------

    /// `join` or `nick`. A registered nickname needs its password; an unregistered one is the
    /// Hub's as before, and a password given with it registers it once the Hub has said yes.
    fn claim(
        &mut self,
        id: ConnId,
        raw: &[u8],
        password: Option<String>,
        now: Instant,
        out: &mut Outbox,
    ) {
        // The Hub's own checks come first (a bad field, `already_joined`, `not_joined`...): only
        // a request the Hub would carry out is about a password.
        let request = parse_request(raw);
        let wanted = match &request {
            Ok(Request::Join { nickname, .. }) if !self.members.contains_key(&id) => {
                Some(nickname.clone())
            }
            Ok(Request::Nick { nickname }) => match self.members.get(&id) {
                // Another case of one's own (registered, hence logged-in) name is no claim.
                Some(me) if fold(&me.nickname) != fold(nickname) => Some(nickname.clone()),
                _ => None,
            },
            _ => None,
        };
        if let Some(nickname) = &wanted {
            let registered = self.passwords.get(&fold(nickname));
            if registered.is_some_and(|stored| password.as_ref() != Some(stored)) {
                if self.admit(id, now, out) {
                    out.send(id, bad_password(nickname));
                }
                return;
            }
        }
        self.pass(id, request, now, out);
        // Register once the Hub has let the name be taken (the member now has it).
        if let (Some(nickname), Some(password)) = (wanted, password) {
            let taken = self
                .members
                .get(&id)
                .is_some_and(|m| m.nickname == nickname);
            if taken && self.passwords.len() < MAX_REGISTERED {
                self.passwords.entry(fold(&nickname)).or_insert(password);
            }
        }
    }

    // ---- history (exercise 13) ------------------------------------------------------------

    fn history(&mut self, id: ConnId, limit: Option<usize>, echo: Option<Value>, out: &mut Outbox) {
        let Some(member) = self.members.get(&id) else {
            out.send(id, not_joined());
            return;
        };
        // The kept frames are JSON objects already: spliced into the reply as they are.
        let mut frame = format!(
            r#"{{"type":"history","room":{},"messages":["#,
            json!(member.room)
        )
        .into_bytes();
        for (i, message) in self.histories.last(&member.room, limit).iter().enumerate() {
            if i > 0 {
                frame.push(b',');
            }
            frame.extend_from_slice(message.strip_suffix(b"\n").unwrap_or(message));
        }
        frame.push(b']');
        if let Some(echo) = echo {
            frame.extend_from_slice(format!(r#","id":{echo}"#).as_bytes());
        }
        frame.extend_from_slice(b"}\n");
        out.send(id, Frame::from(frame));
    }

    // ---- file transfer (exercise 14) ------------------------------------------------------

    /// Passes a file on to one member, in any room, like a `private`; the sender gets the same
    /// frame as its receipt.
    fn file(&mut self, id: ConnId, file: FileRequest, out: &mut Outbox) {
        let Some(from) = self.members.get(&id) else {
            out.send(id, not_joined());
            return;
        };
        let target = self
            .by_nickname
            .get(&fold(&file.to))
            .copied()
            .filter(|&t| self.hub.contains(t));
        let Some((target, to)) = target.and_then(|t| Some((t, self.members.get(&t)?))) else {
            let why = format!("no user named `{}` is online", clip(&file.to));
            out.send(id, error_frame(ErrorCode::NoSuchUser, &why));
            return;
        };
        let mut event = json!({
            "type": "file",
            "from": from.nickname,
            "to": to.nickname,
            "name": file.name,
            "data": file.data,
            "ts": unix_millis(),
        });
        if let Some(echo) = file.id {
            event["id"] = echo;
        }
        let mut line = event.to_string().into_bytes();
        line.push(b'\n');
        let frame = Frame::from(line);
        out.send(target, frame.clone());
        if target != id {
            out.send(id, frame);
        }
    }

    // ---- who is who, from the Hub's replies -------------------------------------------------

    /// Reads the Hub's replies to `id`'s request: a `welcome` makes it a member, a `renamed` of
    /// its own name renames it, a `room` moves it, its copy of its own `broadcast` is a message
    /// for the history.
    fn observe(&mut self, id: ConnId, actions: &[Action]) {
        for action in actions {
            let Action::Send { to, frame } = action else {
                continue;
            };
            if *to != id {
                continue;
            }
            let Ok(event) = serde_json::from_slice::<Value>(frame) else {
                continue;
            };
            let text = |key: &str| event[key].as_str().map(str::to_string);
            match event["type"].as_str() {
                Some("welcome") => {
                    if let (Some(nickname), Some(room)) = (text("nickname"), text("room")) {
                        self.histories.enter(&room);
                        self.by_nickname.insert(fold(&nickname), id);
                        self.members.insert(id, Member { nickname, room });
                    }
                }
                Some("renamed") => {
                    let Some(me) = self.members.get_mut(&id) else {
                        continue;
                    };
                    if let (Some(from), Some(to)) = (text("from"), text("to")) {
                        if from == me.nickname {
                            self.by_nickname.remove(&fold(&from));
                            self.by_nickname.insert(fold(&to), id);
                            me.nickname = to;
                        }
                    }
                }
                Some("room") => {
                    let (Some(me), Some(room)) = (self.members.get_mut(&id), text("room")) else {
                        continue;
                    };
                    let old = std::mem::replace(&mut me.room, room.clone());
                    self.histories.leave(&old);
                    self.histories.enter(&room);
                }
                Some("broadcast") => {
                    if let Some(me) = self.members.get(&id) {
                        if text("from").as_deref() == Some(me.nickname.as_str()) {
                            self.histories.record(&me.room, frame.clone());
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Carries out `out` (chat-core's executor), and forgets whoever the Hub closed or the
    /// executor cut off for overflowing its backlog.
    pub fn carry_out(&mut self, out: &mut Outbox, sink: &mut impl Sink) {
        let mut watch = Watch {
            sink,
            gone: Vec::new(),
        };
        carry_out(&mut self.hub, out, &mut watch);
        for id in watch.gone {
            self.forget(id);
        }
    }

    fn forget(&mut self, id: ConnId) {
        if let Some(member) = self.members.remove(&id) {
            self.histories.leave(&member.room);
            let folded = fold(&member.nickname);
            if self.by_nickname.get(&folded) == Some(&id) {
                self.by_nickname.remove(&folded);
            }
        }
    }
}

/// A sink that passes everything on, and notes who is closed or cut.
struct Watch<'a, S: Sink> {
    sink: &'a mut S,
    gone: Vec<ConnId>,
}

impl<S: Sink> Sink for Watch<'_, S> {
    fn send(&mut self, to: ConnId, frame: Frame) -> Result<(), BacklogFull> {
        self.sink.send(to, frame)
    }

    fn close(&mut self, conn: ConnId, reason: CloseReason) {
        self.gone.push(conn);
        self.sink.close(conn, reason);
    }

    fn cut(&mut self, conn: ConnId) {
        self.gone.push(conn);
        self.sink.cut(conn);
    }
}

/// `bad_password`: the extension's one new error code. The connection stays open.
fn bad_password(nickname: &str) -> Frame {
    let message = format!("`{}` is registered: its password is needed", clip(nickname));
    let mut line = json!({"type": "error", "code": "bad_password", "message": message})
        .to_string()
        .into_bytes();
    line.push(b'\n');
    Frame::from(line)
}

fn not_joined() -> Frame {
    error_frame(ErrorCode::NotJoined, "send `join` with a nickname first")
}

/// The server clock for `ts`, as the Hub stamps `broadcast` and `private`.
fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

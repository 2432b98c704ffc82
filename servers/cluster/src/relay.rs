//! The node's delivery rules, as a sans-I/O state machine: what arrives from the bus in, frames
//! for local connections out.
//!
//! Redis gives each channel one order: every node receives a room's envelopes in the order they
//! were published. The [`Relay`] keeps that order all the way to the sockets, and decides two
//! things no single-process server had to think about:
//!
//! - **Where a member's history starts.** A joiner's `joined` envelope comes back to its own
//!   node on the room channel. Everything published before it was before the join; everything
//!   after it, the joiner must receive (guarantee 3). So the joiner becomes a *receiver* of the
//!   room exactly at its own `joined`, and its `welcome` (built from the member list the join
//!   script returned) goes out before the first frame after it. Until both the script's reply
//!   and the echo have arrived, the room's frames for the joiner are *held*.
//! - **When a request is finished.** A `message` is answered by the sender's own copy of the
//!   broadcast, which must take its place in the room's order like everyone else's: so the
//!   sender's request completes when its own envelope comes back, not when `PUBLISH` returns.
//!   The same holds for `nick` (`renamed`), `join` (`welcome`) and `join_room` (`room`).
//!
//! The Relay also counts, per room, the local connections that need its channel, and asks for a
//! `SUBSCRIBE` when the first one arrives and an `UNSUBSCRIBE` when the last one leaves.
//!
//! It never touches a socket or Redis: `node.rs` feeds it and carries out its [`Action`]s, and
//! the tests at the bottom drive it by hand.

use crate::envelope::{Header, Kind};
use chat_core::{encode, ConnId, ConnIdMap, Event, Frame};
use std::collections::{BTreeSet, HashMap};

/// What the Relay asks the node to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Queue `frame` on local connection `to`.
    Send { to: ConnId, frame: Frame },
    /// The request connection `conn` waits on is finished (or interrupted).
    Wake { conn: ConnId, outcome: Outcome },
    /// The node needs this room's channel.
    Subscribe(String),
    /// No local connection needs this room's channel any more.
    Unsubscribe(String),
}

/// How a waiting request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its echo came back (or its handshake completed): the reply has been queued.
    Done,
    /// The bus went down before that: the request must answer for itself.
    Interrupted,
}

/// A joined connection's place in the chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub nickname: String,
    pub room: String,
}

/// The reply that ends a handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `join`: `welcome` for this nickname.
    Welcome { nickname: String },
    /// `join_room`: `room`.
    Room,
}

/// A connection on its way into a room.
#[derive(Debug)]
struct Handshake {
    /// The request's sequence number: only its own echoes count.
    seq: u64,
    /// The room being entered.
    room: String,
    /// The room being left (`join_room`), until its `left` echo arrives.
    leaving: Option<String>,
    /// The member list the script returned, once it has.
    users: Option<Vec<String>>,
    /// Whether its `joined` echo has arrived (it is a receiver of `room` from then on).
    entered: bool,
    /// Frames of `room` (and privates, before a `welcome`) that arrived after the echo but
    /// before the reply could be sent.
    held: Vec<Frame>,
    reply: Reply,
}

/// What the Relay knows of one local connection.
#[derive(Debug, Default)]
struct Local {
    /// Set once a `join` completed.
    member: Option<Member>,
    /// A `join` or `join_room` in progress.
    handshake: Option<Handshake>,
    /// The sequence number of the echo its current request waits for.
    awaiting: Option<u64>,
}

/// One room, as far as this node is concerned.
#[derive(Debug, Default)]
struct LocalRoom {
    /// Local connections that receive the room's frames: members from their `joined` on.
    receivers: BTreeSet<ConnId>,
    /// Local connections entering, whose `joined` has not come back yet.
    entering: BTreeSet<ConnId>,
}

impl LocalRoom {
    fn is_unused(&self) -> bool {
        self.receivers.is_empty() && self.entering.is_empty()
    }
}

/// The delivery state machine of one node. See the module docs.
#[derive(Debug)]
pub struct Relay {
    /// This node's id: envelopes with it in their header are our own coming back.
    node: String,
    conns: ConnIdMap<Local>,
    /// Rooms with local receivers or entrants: exactly the room channels we subscribe to.
    rooms: HashMap<String, LocalRoom>,
}

impl Relay {
    pub fn new(node: &str) -> Self {
        Relay {
            node: node.to_string(),
            conns: ConnIdMap::default(),
            rooms: HashMap::new(),
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// A connection was accepted.
    pub fn connect(&mut self, conn: ConnId) {
        self.conns.insert(conn, Local::default());
    }

    /// Local connections (joined or not).
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    pub fn member(&self, conn: ConnId) -> Option<&Member> {
        self.conns.get(&conn)?.member.as_ref()
    }

    /// Every joined local connection (what the node re-registers after a Redis restart).
    pub fn members(&self) -> impl Iterator<Item = (ConnId, &Member)> {
        self.conns
            .iter()
            .filter_map(|(&id, local)| Some((id, local.member.as_ref()?)))
    }

    /// The rooms whose channels this node needs.
    pub fn rooms(&self) -> impl Iterator<Item = &str> {
        self.rooms.keys().map(String::as_str)
    }

    /// Starts a handshake: `conn` is entering `room` (leaving its current room if it has one).
    /// Call before the script runs, so the room's channel is subscribed first.
    pub fn begin_enter(
        &mut self,
        conn: ConnId,
        room: &str,
        seq: u64,
        reply: Reply,
        out: &mut Vec<Action>,
    ) {
        let Some(local) = self.conns.get_mut(&conn) else {
            return;
        };
        let leaving = local.member.as_ref().map(|m| m.room.clone());
        local.handshake = Some(Handshake {
            seq,
            room: room.to_string(),
            leaving,
            users: None,
            entered: false,
            held: Vec::new(),
            reply,
        });
        let entry = self.rooms.entry(room.to_string()).or_insert_with(|| {
            out.push(Action::Subscribe(room.to_string()));
            LocalRoom::default()
        });
        entry.entering.insert(conn);
    }

    /// The script of `conn`'s handshake succeeded, with these members in the room.
    pub fn entered(&mut self, conn: ConnId, mut users: Vec<String>, out: &mut Vec<Action>) {
        let Some(handshake) = self.handshake_mut(conn) else {
            return;
        };
        users.sort_unstable();
        handshake.users = Some(users);
        self.try_complete(conn, out);
    }

    /// The handshake of `conn` failed (nickname taken, the bus refused): it enters nothing.
    pub fn abort_enter(&mut self, conn: ConnId, out: &mut Vec<Action>) {
        let Some(handshake) = self.conns.get_mut(&conn).and_then(|l| l.handshake.take()) else {
            return;
        };
        self.drop_from_room(&handshake.room, conn, out);
    }

    /// `conn`'s request waits for its own envelope `seq` (a broadcast or a rename).
    pub fn expect_echo(&mut self, conn: ConnId, seq: u64) {
        if let Some(local) = self.conns.get_mut(&conn) {
            local.awaiting = Some(seq);
        }
    }

    /// The request gave up waiting (its connection is closing).
    pub fn forget_echo(&mut self, conn: ConnId) {
        if let Some(local) = self.conns.get_mut(&conn) {
            local.awaiting = None;
        }
    }

    /// A rename of `conn` succeeded in the shared state.
    pub fn renamed(&mut self, conn: ConnId, nickname: &str) {
        if let Some(member) = self.conns.get_mut(&conn).and_then(|l| l.member.as_mut()) {
            member.nickname = nickname.to_string();
        }
    }

    /// An envelope arrived on `room`'s channel.
    pub fn on_room_frame(
        &mut self,
        room: &str,
        header: &Header,
        frame: Frame,
        out: &mut Vec<Action>,
    ) {
        if !self.rooms.contains_key(room) {
            return; // a late frame of a channel we just left
        }
        let subject = self.own_conn(header);
        match header.kind {
            Kind::Joined => {
                self.deliver(room, &frame, subject, out);
                if let Some(conn) = subject.filter(|&c| self.is_entering(c, room, header.seq)) {
                    if let Some(r) = self.rooms.get_mut(room) {
                        r.entering.remove(&conn);
                        r.receivers.insert(conn);
                    }
                    if let Some(h) = self.handshake_mut(conn) {
                        h.entered = true;
                    }
                    self.try_complete(conn, out);
                }
            }
            Kind::Left => {
                if let Some(conn) = subject.filter(|&c| self.is_leaving(c, room, header.seq)) {
                    // Its last frame of this room was the one before: out of the room first.
                    if let Some(h) = self.handshake_mut(conn) {
                        h.leaving = None;
                    }
                    self.drop_from_room(room, conn, out);
                    self.deliver(room, &frame, None, out);
                    self.try_complete(conn, out);
                } else {
                    self.deliver(room, &frame, subject, out);
                }
            }
            Kind::Broadcast | Kind::Renamed => {
                self.deliver(room, &frame, None, out);
                if let Some(conn) = subject {
                    self.echoed(conn, header.seq, out);
                }
            }
            Kind::Private | Kind::Replaced => {} // never published on a room channel
        }
    }

    /// An envelope arrived on this node's own channel: a `private` for one of its connections.
    pub fn on_node_frame(&mut self, header: &Header, frame: Frame, out: &mut Vec<Action>) {
        if header.kind != Kind::Private || header.node != self.node {
            return;
        }
        let conn = ConnId(header.conn);
        let Some(local) = self.conns.get_mut(&conn) else {
            return; // it left in the meantime
        };
        match &mut local.handshake {
            // Not a member yet: the private waits behind the `welcome`.
            Some(h) if matches!(h.reply, Reply::Welcome { .. }) => h.held.push(frame),
            _ => out.push(Action::Send { to: conn, frame }),
        }
    }

    /// The connection is gone. Returns the membership it holds in the shared state, which the
    /// node must now release (its nickname, its place in a room, a `left` for the others).
    pub fn remove(&mut self, conn: ConnId, out: &mut Vec<Action>) -> Option<Member> {
        let local = self.conns.remove(&conn)?;
        let mut rooms: Vec<&str> = Vec::new();
        let mut registered = local.member.clone();
        if let Some(member) = &local.member {
            rooms.push(&member.room);
        }
        if let Some(h) = &local.handshake {
            rooms.push(&h.room);
            if h.users.is_some() {
                // Its script ran: in the shared state it is already in the new room.
                registered = Some(Member {
                    nickname: match (&h.reply, &local.member) {
                        (Reply::Welcome { nickname }, _) => nickname.clone(),
                        (Reply::Room, Some(member)) => member.nickname.clone(),
                        (Reply::Room, None) => return None,
                    },
                    room: h.room.clone(),
                });
            }
        }
        for room in rooms {
            self.drop_from_room(room, conn, out);
        }
        registered
    }

    /// The bus is down. Handshakes whose script ran complete now (their echoes may never
    /// come); the others, and every request waiting for an echo, are interrupted.
    pub fn bus_down(&mut self, out: &mut Vec<Action>) {
        let mut ids: Vec<ConnId> = self.conns.keys().copied().collect();
        ids.sort_unstable();
        for conn in ids {
            let Some(local) = self.conns.get_mut(&conn) else {
                continue;
            };
            if local.awaiting.take().is_some() {
                out.push(Action::Wake {
                    conn,
                    outcome: Outcome::Interrupted,
                });
            }
            let Some(h) = &mut local.handshake else {
                continue;
            };
            if h.users.is_none() {
                self.abort_enter(conn, out);
                out.push(Action::Wake {
                    conn,
                    outcome: Outcome::Interrupted,
                });
                continue;
            }
            h.entered = true;
            let (room, leaving) = (h.room.clone(), h.leaving.take());
            if let Some(old) = leaving {
                self.drop_from_room(&old, conn, out);
            }
            if let Some(r) = self.rooms.get_mut(&room) {
                r.entering.remove(&conn);
                r.receivers.insert(conn);
            }
            self.try_complete(conn, out);
        }
    }

    // ---- helpers ---------------------------------------------------------------------------

    fn handshake_mut(&mut self, conn: ConnId) -> Option<&mut Handshake> {
        self.conns.get_mut(&conn)?.handshake.as_mut()
    }

    /// The local connection an envelope is about, if it is one of ours.
    fn own_conn(&self, header: &Header) -> Option<ConnId> {
        let conn = ConnId(header.conn);
        (header.node == self.node && self.conns.contains_key(&conn)).then_some(conn)
    }

    fn is_entering(&self, conn: ConnId, room: &str, seq: u64) -> bool {
        self.conns
            .get(&conn)
            .and_then(|l| l.handshake.as_ref())
            .is_some_and(|h| h.seq == seq && h.room == room && !h.entered)
    }

    fn is_leaving(&self, conn: ConnId, room: &str, seq: u64) -> bool {
        self.conns
            .get(&conn)
            .and_then(|l| l.handshake.as_ref())
            .is_some_and(|h| h.seq == seq && h.leaving.as_deref() == Some(room))
    }

    /// Queues `frame` for every receiver of `room` but `except`; a receiver still in its
    /// handshake into this room gets it held, behind its reply.
    fn deliver(
        &mut self,
        room: &str,
        frame: &Frame,
        except: Option<ConnId>,
        out: &mut Vec<Action>,
    ) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        for &conn in &r.receivers {
            if Some(conn) == except {
                continue;
            }
            let held = self
                .conns
                .get_mut(&conn)
                .and_then(|l| l.handshake.as_mut())
                .filter(|h| h.room == room);
            match held {
                Some(h) => h.held.push(frame.clone()),
                None => out.push(Action::Send {
                    to: conn,
                    frame: frame.clone(),
                }),
            }
        }
    }

    /// `conn`'s own envelope `seq` came back: the request waiting for it is done.
    fn echoed(&mut self, conn: ConnId, seq: u64, out: &mut Vec<Action>) {
        let Some(local) = self.conns.get_mut(&conn) else {
            return;
        };
        if local.awaiting == Some(seq) {
            local.awaiting = None;
            out.push(Action::Wake {
                conn,
                outcome: Outcome::Done,
            });
        }
    }

    /// Ends a handshake once the script replied, the `joined` came back and the `left` of the
    /// room it leaves came back: the reply, then what was held, then the request is done.
    fn try_complete(&mut self, conn: ConnId, out: &mut Vec<Action>) {
        let Some(local) = self.conns.get_mut(&conn) else {
            return;
        };
        let ready = local
            .handshake
            .as_ref()
            .is_some_and(|h| h.users.is_some() && h.entered && h.leaving.is_none());
        if !ready {
            return;
        }
        let Some(h) = local.handshake.take() else {
            return;
        };
        let users = h.users.unwrap_or_default();
        let reply = match h.reply {
            Reply::Welcome { nickname } => {
                local.member = Some(Member {
                    nickname: nickname.clone(),
                    room: h.room.clone(),
                });
                Event::Welcome {
                    nickname,
                    room: h.room,
                    users,
                }
            }
            Reply::Room => {
                if let Some(member) = local.member.as_mut() {
                    member.room = h.room.clone();
                }
                Event::Room {
                    room: h.room,
                    users,
                }
            }
        };
        out.push(Action::Send {
            to: conn,
            frame: encode(&reply),
        });
        for frame in h.held {
            out.push(Action::Send { to: conn, frame });
        }
        out.push(Action::Wake {
            conn,
            outcome: Outcome::Done,
        });
    }

    /// Takes `conn` out of `room` (as a receiver or an entrant); unsubscribes when that was the
    /// room's last local connection.
    fn drop_from_room(&mut self, room: &str, conn: ConnId, out: &mut Vec<Action>) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        r.receivers.remove(&conn);
        r.entering.remove(&conn);
        if r.is_unused() {
            self.rooms.remove(room);
            out.push(Action::Unsubscribe(room.to_string()));
        }
    }
}

#[cfg(test)]
mod tests;

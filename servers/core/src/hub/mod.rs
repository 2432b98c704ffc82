//! The chat rules as a sans-I/O state machine.
//!
//! The [`Hub`] knows every connection, nickname and room. It is driven by five calls:
//!
//! | call | when the server makes it |
//! |---|---|
//! | [`Hub::connect_from`] | a socket was accepted (with the peer's address, for `--max-conns-per-ip`) |
//! | [`Hub::handle`] | the decoder produced a line (a request or a rejection) |
//! | [`Hub::disconnect`] | the peer hung up, errored, or overflowed its backlog |
//! | [`Hub::tick`] | time passed (to enforce the idle timeout) |
//! | [`Hub::shutdown`] | SIGINT/SIGTERM |
//!
//! Each call appends [`Action`](crate::Action)s to an [`Outbox`]: frames addressed to
//! connections, and close directives, which the server carries out with chat-core's
//! [`executor`](crate::executor). It never blocks, never reads a socket and never sleeps, so
//! the same Hub serves a blocking server, an epoll loop and a tokio runtime unchanged, and it can
//! be tested without a network.
//!
//! It keeps the ordering guarantees of `PROTOCOL.md` (1 and 2) by construction: every call's actions come out in
//! the order they must be sent, and a broadcast is appended for all members in one go, so a
//! server that carries out Outboxes in the order they were filled (one Hub call at a time, under
//! a lock if it has threads) gives every member of a room the same order.

mod requests;

use crate::frames::{encode, error_frame, pong_frame, rate_limited_frame};
use crate::maps::{ConnIdMap, SteadyMap};
use crate::names::fold;
use crate::outbox::{CloseReason, ConnId, Outbox};
use crate::protocol::{ErrorCode, Event, Inbound, InboundRef, RequestRef};
use crate::rate::TokenBucket;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The room a `join` without `room` enters.
pub const DEFAULT_ROOM: &str = "lobby";

/// The limits the Hub enforces. (`--max-line` and `--max-backlog` are enforced by the I/O side,
/// in [`LineDecoder`](crate::LineDecoder) and [`SendQueue`](crate::SendQueue).)
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Connections beyond this many are answered `server_full` and closed.
    pub max_conns: usize,
    /// Silence after which a connection is closed with `idle_timeout`; `None` disables it.
    pub idle_timeout: Option<Duration>,
    /// Requests per second per connection (token bucket, burst of the same size); 0 = off.
    pub rate_limit: u32,
    /// Connections at once from one IP address (`--max-conns-per-ip`); the next one is answered
    /// `server_full` and closed. 0 = off. Counted only for connections made with
    /// [`Hub::connect_from`].
    pub max_conns_per_ip: usize,
}

impl Default for HubConfig {
    /// The defaults of `PROTOCOL.md`.
    fn default() -> Self {
        HubConfig {
            max_conns: 100_000,
            idle_timeout: Some(Duration::from_secs(120)),
            rate_limit: 0,
            max_conns_per_ip: 0,
        }
    }
}

/// What the Hub remembers about one connection.
#[derive(Debug)]
struct Conn {
    /// The registered nickname and room, once `join` succeeded.
    member: Option<Member>,
    /// The last time a complete line arrived: the idle timeout counts from here. Bytes of an
    /// unfinished line never reach the Hub, so they are not activity (PROTOCOL.md, guarantee 6).
    last_active: Instant,
    /// The rate limiter, when `--rate-limit` is set.
    bucket: Option<TokenBucket>,
    /// The peer's address, when the server gave it ([`Hub::connect_from`]): what
    /// `--max-conns-per-ip` counts.
    ip: Option<IpAddr>,
}

#[derive(Debug)]
struct Member {
    nickname: String,
    room: String,
}

/// A room exists while it has members.
#[derive(Debug, Default)]
struct Room {
    /// Members by nickname. A `BTreeMap` so `users` lists come out sorted for free.
    members: BTreeMap<String, ConnId>,
}

impl Room {
    /// Queues `frame` for every member: one encoding, a `Bytes` clone (a reference count)
    /// per member.
    fn send_to_all(&self, frame: crate::Frame, out: &mut Outbox) {
        for &member in self.members.values() {
            out.send(member, frame.clone());
        }
    }
}

/// The chat rules. See the module docs.
#[derive(Debug)]
pub struct Hub {
    config: HubConfig,
    /// Every open connection, joined or not. Looked up on every request: keyed with chat-core's
    /// cheap hash for connection ids (see [`ConnIdMap`]). Boxed, so that the map's empty half
    /// costs a pointer a slot (the [`crate::maps`] module says why).
    conns: ConnIdMap<Box<Conn>>,
    /// Nicknames in folded (lowercase) form, so uniqueness ignores case.
    nicknames: SteadyMap<String, ConnId>,
    /// Rooms by name. A `BTreeMap` so `rooms` lists come out sorted.
    rooms: BTreeMap<String, Room>,
    /// Idle deadlines, earliest first. An entry may be stale (the connection was active since,
    /// or is gone): [`Hub::tick`] checks the real deadline when the entry comes due and pushes
    /// it again if needed. Activity therefore costs nothing, and each connection costs about one
    /// heap operation per idle-timeout period.
    deadlines: BinaryHeap<Reverse<(Instant, ConnId)>>,
    /// Open connections per peer address, for `--max-conns-per-ip` (only addresses with one or
    /// more connections are kept).
    per_ip: SteadyMap<IpAddr, usize>,
    /// The id the next connection gets: ids are never reused.
    next_id: u64,
}

impl Hub {
    pub fn new(config: HubConfig) -> Self {
        Hub {
            config,
            conns: ConnIdMap::default(),
            nicknames: SteadyMap::default(),
            rooms: BTreeMap::new(),
            deadlines: BinaryHeap::new(),
            per_ip: SteadyMap::default(),
            next_id: 1,
        }
    }

    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// Open connections (joined or not).
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Whether `id` is an open connection of this Hub.
    pub fn contains(&self, id: ConnId) -> bool {
        self.conns.contains_key(&id)
    }

    /// A new connection was accepted. Returns its id.
    ///
    /// When `--max-conns` connections are already open, the outbox gets `server_full` and a
    /// `Close` for the returned id, and the Hub does not keep it. The peer's address is not
    /// known here, so `--max-conns-per-ip` does not apply: servers call
    /// [`Hub::connect_from`].
    pub fn connect(&mut self, now: Instant, out: &mut Outbox) -> ConnId {
        self.admit(now, None, out)
    }

    /// A new connection from `ip` was accepted. Returns its id.
    ///
    /// Like [`Hub::connect`], and also refused with `server_full` when `--max-conns-per-ip`
    /// connections from `ip` are already open (PROTOCOL.md, guarantee 8).
    pub fn connect_from(&mut self, now: Instant, ip: IpAddr, out: &mut Outbox) -> ConnId {
        self.admit(now, Some(ip), out)
    }

    fn admit(&mut self, now: Instant, ip: Option<IpAddr>, out: &mut Outbox) -> ConnId {
        let id = ConnId(self.next_id);
        self.next_id += 1;
        let per_ip = self.config.max_conns_per_ip;
        let refusal = if self.conns.len() >= self.config.max_conns {
            Some(format!(
                "the server already has {} connections",
                self.config.max_conns
            ))
        } else {
            ip.filter(|ip| per_ip > 0 && self.per_ip.get(ip).copied().unwrap_or(0) >= per_ip)
                .map(|ip| format!("already {per_ip} connections from {ip}"))
        };
        if let Some(message) = refusal {
            out.send(id, error_frame(ErrorCode::ServerFull, &message));
            out.close(id, CloseReason::ServerFull);
            return id;
        }
        if let Some(ip) = ip {
            *self.per_ip.entry(ip).or_default() += 1;
        }
        let bucket =
            (self.config.rate_limit > 0).then(|| TokenBucket::new(self.config.rate_limit, now));
        self.conns.insert(
            id,
            Box::new(Conn {
                member: None,
                last_active: now,
                bucket,
                ip,
            }),
        );
        if let Some(timeout) = self.config.idle_timeout {
            self.deadlines.push(Reverse((now + timeout, id)));
        }
        id
    }

    /// One line arrived from `id`: a parsed request, or the reason it is not one.
    pub fn handle(&mut self, id: ConnId, inbound: Inbound, now: Instant, out: &mut Outbox) {
        self.handle_ref(id, inbound.map(RequestRef::from), now, out);
    }

    /// [`handle`](Self::handle) for a request that borrows its strings from the line it was
    /// parsed from ([`LineDecoder::feed_ref`](crate::LineDecoder::feed_ref)): what the Hub only
    /// reads or echoes (a message's content, an `id`) is never copied on the way.
    pub fn handle_ref(
        &mut self,
        id: ConnId,
        inbound: InboundRef<'_>,
        now: Instant,
        out: &mut Outbox,
    ) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return; // closed already: late input is ignored
        };
        conn.last_active = now;
        let request = match inbound {
            Ok(request) => request,
            Err(rejection) if rejection.code.closes_connection() => {
                out.send(id, error_frame(rejection.code, &rejection.message));
                let reason = match rejection.code {
                    ErrorCode::LineTooLong => CloseReason::LineTooLong,
                    ErrorCode::ServerFull => CloseReason::ServerFull,
                    ErrorCode::IdleTimeout => CloseReason::IdleTimeout,
                    _ => CloseReason::ShuttingDown,
                };
                self.remove(id, out);
                out.close(id, reason);
                return;
            }
            Err(rejection) => {
                // A malformed line still counts against the rate limit.
                if !take_token(conn, now) {
                    out.send(id, rate_limited_frame());
                } else {
                    out.send(id, error_frame(rejection.code, &rejection.message));
                }
                return;
            }
        };
        if !take_token(conn, now) {
            out.send(id, rate_limited_frame());
            return;
        }
        if conn.member.is_none() && !request.allowed_before_join() {
            out.send(
                id,
                error_frame(ErrorCode::NotJoined, "send `join` with a nickname first"),
            );
            return;
        }
        match request {
            RequestRef::Join { nickname, room } => self.join(id, nickname, room, out),
            RequestRef::Nick { nickname } => self.rename(id, nickname, out),
            RequestRef::Message {
                content,
                id: msg_id,
            } => self.broadcast(id, &content, msg_id.as_ref(), out),
            RequestRef::Private {
                to,
                content,
                id: msg_id,
            } => self.private(id, &to, &content, msg_id.as_ref(), out),
            RequestRef::JoinRoom { room } => self.change_room(id, room, out),
            RequestRef::ListUsers { room } => self.list_users(id, room.as_deref(), out),
            RequestRef::ListRooms => self.list_rooms(id, out),
            RequestRef::Ping { id: ping_id } => out.send(id, pong_frame(ping_id.as_ref())),
            RequestRef::Quit => {
                out.send(id, encode(&Event::Bye));
                self.remove(id, out);
                out.close(id, CloseReason::Quit);
            }
        }
    }

    /// The peer of `id` is gone (EOF, reset, backlog overflow). Its room is told `left`.
    /// Unknown ids are ignored, so calling this twice is harmless.
    pub fn disconnect(&mut self, id: ConnId, out: &mut Outbox) {
        self.remove(id, out);
    }

    /// Enforces the idle timeout at time `now`: silent connections get `idle_timeout` and a
    /// `Close`. Returns when `tick` next has work to do (`None`: no timeout pending), which the
    /// server uses as its poll/select/read timeout.
    pub fn tick(&mut self, now: Instant, out: &mut Outbox) -> Option<Instant> {
        let timeout = self.config.idle_timeout?;
        while let Some(&Reverse((deadline, id))) = self.deadlines.peek() {
            if deadline > now {
                return Some(deadline);
            }
            self.deadlines.pop();
            let Some(conn) = self.conns.get(&id) else {
                continue; // gone already
            };
            let real_deadline = conn.last_active + timeout;
            if real_deadline > now {
                self.deadlines.push(Reverse((real_deadline, id)));
                continue;
            }
            out.send(
                id,
                error_frame(
                    ErrorCode::IdleTimeout,
                    &format!("no request for {} s; closing", timeout.as_secs_f64()),
                ),
            );
            self.remove(id, out);
            out.close(id, CloseReason::IdleTimeout);
        }
        None
    }

    /// The server is stopping: every connection gets `shutting_down` and a `Close`.
    pub fn shutdown(&mut self, out: &mut Outbox) {
        let frame = error_frame(ErrorCode::ShuttingDown, "the server is shutting down");
        let mut ids: Vec<ConnId> = self.conns.keys().copied().collect();
        ids.sort();
        for id in ids {
            out.send(id, frame.clone());
            out.close(id, CloseReason::ShuttingDown);
        }
        self.conns.clear();
        self.nicknames.clear();
        self.rooms.clear();
        self.deadlines.clear();
        self.per_ip.clear();
    }

    // ---- helpers ---------------------------------------------------------------------------

    fn member(&self, id: ConnId) -> Option<&Member> {
        self.conns.get(&id)?.member.as_ref()
    }

    fn users_of(&self, room: &str) -> Vec<String> {
        self.rooms
            .get(room)
            .map(|r| r.members.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Encodes `event` once and queues it for every member of `room`.
    fn notify_room(&self, room: &str, event: &Event, out: &mut Outbox) {
        if let Some(room) = self.rooms.get(room) {
            room.send_to_all(encode(event), out);
        }
    }

    /// Tells `room` that `nickname` joined, then puts it there (so it is not sent its own
    /// `joined`); a room that did not exist is made.
    fn enter_room(&mut self, id: ConnId, nickname: &str, room: &str, out: &mut Outbox) {
        self.notify_room(
            room,
            &Event::Joined {
                nickname: nickname.to_string(),
                room: room.to_string(),
            },
            out,
        );
        let members = &mut self.rooms.entry(room.to_string()).or_default().members;
        members.insert(nickname.to_string(), id);
    }

    /// Takes `nickname` out of `room`, tells the rest `left`, and drops the room if now empty.
    fn leave_room(&mut self, nickname: &str, room: &str, out: &mut Outbox) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        r.members.remove(nickname);
        if r.members.is_empty() {
            self.rooms.remove(room);
        } else {
            self.notify_room(
                room,
                &Event::Left {
                    nickname: nickname.to_string(),
                    room: room.to_string(),
                },
                out,
            );
        }
    }

    /// Forgets connection `id` entirely; its room is told `left`.
    fn remove(&mut self, id: ConnId, out: &mut Outbox) {
        let Some(conn) = self.conns.remove(&id) else {
            return;
        };
        if let Some(ip) = conn.ip {
            if let Some(count) = self.per_ip.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    self.per_ip.remove(&ip);
                }
            }
        }
        if let Some(member) = conn.member {
            self.nicknames.remove(&fold(&member.nickname));
            self.leave_room(&member.nickname, &member.room, out);
        }
    }
}

fn take_token(conn: &mut Conn, now: Instant) -> bool {
    conn.bucket.as_mut().is_none_or(|b| b.try_take(now))
}

/// The server clock for `ts`: milliseconds since the Unix epoch.
fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

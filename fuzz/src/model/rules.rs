//! The chat rules the model applies: which errors a line may get, and what a request that
//! succeeds must send to whom. Written from the protocol, never from chat-core's code.

use super::{Emitted, Member, Model};
use crate::spec::{fold, is_valid_name};
use chat_core::{ErrorCode, Id, Inbound, Request};
use serde_json::{json, Value};
use std::collections::BTreeMap;

impl Model {
    /// The errors the spec allows as the reply to `inbound` from `c` (empty: it succeeds).
    pub(super) fn errors(&self, c: u64, inbound: &Inbound) -> Vec<&'static str> {
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
    pub(super) fn apply(&mut self, c: u64, request: &Request) -> Emitted {
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
    pub(super) fn remove(&mut self, c: u64) -> Emitted {
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

    pub(super) fn member(&self, c: u64) -> Option<&Member> {
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

fn with_id(frame: &mut Value, id: &Option<Id>) {
    if let Some(id) = id {
        frame["id"] = serde_json::to_value(id).unwrap_or(Value::Null);
    }
}

/// The model only applies requests that need a member after checking there is one.
fn unreachable_member(c: u64) -> Member {
    panic!("the model applied a member's request for #{c}, which has not joined")
}

//! The request handlers: one method per request type, each applying the rules of `PROTOCOL.md` and
//! appending the replies and notifications to the Outbox.

use super::{unix_millis, Hub, Member, DEFAULT_ROOM};
use crate::frames::{
    bad_name_frame, broadcast_frame, clip, encode, error_frame, private_frame, taken_frame,
};
use crate::names::{fold, is_valid_name};
use crate::outbox::{ConnId, Outbox};
use crate::protocol::{ErrorCode, Event, IdRef, RoomInfo};
use std::borrow::Cow;

impl Hub {
    pub(super) fn join(
        &mut self,
        id: ConnId,
        nickname: Cow<'_, str>,
        room: Option<Cow<'_, str>>,
        out: &mut Outbox,
    ) {
        if self.member(id).is_some() {
            out.send(
                id,
                error_frame(
                    ErrorCode::AlreadyJoined,
                    "this connection has already joined",
                ),
            );
            return;
        }
        let room = room.unwrap_or(Cow::Borrowed(DEFAULT_ROOM));
        if !is_valid_name(&nickname) {
            out.send(id, bad_name_frame(ErrorCode::BadNickname, "nickname"));
            return;
        }
        if !is_valid_name(&room) {
            out.send(id, bad_name_frame(ErrorCode::BadRoom, "room name"));
            return;
        }
        let key = fold(&nickname);
        if self.nicknames.contains_key(&key) {
            out.send(id, taken_frame(&nickname));
            return;
        }
        // Kept from now on: the names get strings of their own.
        let (nickname, room) = (nickname.into_owned(), room.into_owned());
        self.nicknames.insert(key, id);
        self.enter_room(id, &nickname, &room, out);
        let users = self.users_of(&room);
        out.send(
            id,
            encode(&Event::Welcome {
                nickname: nickname.clone(),
                room: room.clone(),
                users,
            }),
        );
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.member = Some(Member { nickname, room });
        }
    }

    pub(super) fn rename(&mut self, id: ConnId, nickname: Cow<'_, str>, out: &mut Outbox) {
        if !is_valid_name(&nickname) {
            out.send(id, bad_name_frame(ErrorCode::BadNickname, "nickname"));
            return;
        }
        let Some(member) = self.member(id) else {
            return;
        };
        let (old, room) = (member.nickname.clone(), member.room.clone());
        let (old_key, new_key) = (fold(&old), fold(&nickname));
        // Renaming to a different case of your own name is allowed; anyone else's is taken.
        if new_key != old_key && self.nicknames.contains_key(&new_key) {
            out.send(id, taken_frame(&nickname));
            return;
        }
        let nickname = nickname.into_owned();
        self.nicknames.remove(&old_key);
        self.nicknames.insert(new_key, id);
        if let Some(r) = self.rooms.get_mut(&room) {
            r.members.remove(&old);
            r.members.insert(nickname.clone(), id);
        }
        if let Some(member) = self.conns.get_mut(&id).and_then(|c| c.member.as_mut()) {
            member.nickname = nickname.clone();
        }
        // Sent after the update, to the whole room, the renamer included.
        self.notify_room(
            &room,
            &Event::Renamed {
                from: old,
                to: nickname,
                room: room.clone(),
            },
            out,
        );
    }

    pub(super) fn broadcast(
        &mut self,
        id: ConnId,
        content: &str,
        msg_id: Option<&IdRef<'_>>,
        out: &mut Outbox,
    ) {
        let Some(member) = self.member(id) else {
            return;
        };
        let Some(room) = self.rooms.get(&member.room) else {
            return;
        };
        // Encoded once, straight from the borrowed parts; every member gets a clone of the
        // same `Bytes`.
        let frame = broadcast_frame(
            &member.nickname,
            &member.room,
            content,
            unix_millis(),
            msg_id,
        );
        room.send_to_all(frame, out);
    }

    pub(super) fn private(
        &mut self,
        id: ConnId,
        to: &str,
        content: &str,
        msg_id: Option<&IdRef<'_>>,
        out: &mut Outbox,
    ) {
        let Some(member) = self.member(id) else {
            return;
        };
        let Some(&target) = self.nicknames.get(&fold(to)) else {
            out.send(
                id,
                error_frame(
                    ErrorCode::NoSuchUser,
                    &format!("no user named `{}` is online", clip(to)),
                ),
            );
            return;
        };
        // The recipient's nickname as registered (the request may use another case).
        let to = self.member(target).map_or(to, |m| m.nickname.as_str());
        let frame = private_frame(&member.nickname, to, content, unix_millis(), msg_id);
        out.send(target, frame.clone());
        if target != id {
            out.send(id, frame); // the sender's receipt
        }
    }

    pub(super) fn change_room(&mut self, id: ConnId, room: Cow<'_, str>, out: &mut Outbox) {
        if !is_valid_name(&room) {
            out.send(id, bad_name_frame(ErrorCode::BadRoom, "room name"));
            return;
        }
        let Some(member) = self.member(id) else {
            return;
        };
        let (nickname, old_room) = (member.nickname.clone(), member.room.clone());
        let room = room.into_owned();
        if old_room != room {
            self.leave_room(&nickname, &old_room, out);
            self.enter_room(id, &nickname, &room, out);
            if let Some(member) = self.conns.get_mut(&id).and_then(|c| c.member.as_mut()) {
                member.room = room.clone();
            }
        }
        let users = self.users_of(&room);
        out.send(id, encode(&Event::Room { room, users }));
    }

    pub(super) fn list_users(&mut self, id: ConnId, room: Option<&str>, out: &mut Outbox) {
        let room = match room {
            Some(room) if !is_valid_name(room) => {
                out.send(id, bad_name_frame(ErrorCode::BadRoom, "room name"));
                return;
            }
            Some(room) => room.to_string(),
            None => match self.member(id) {
                Some(member) => member.room.clone(),
                None => return,
            },
        };
        let users = self.users_of(&room);
        out.send(id, encode(&Event::Users { room, users }));
    }

    pub(super) fn list_rooms(&mut self, id: ConnId, out: &mut Outbox) {
        let rooms = self
            .rooms
            .iter()
            .map(|(name, room)| RoomInfo {
                name: name.clone(),
                users: room.members.len(),
            })
            .collect();
        out.send(id, encode(&Event::Rooms { rooms }));
    }
}

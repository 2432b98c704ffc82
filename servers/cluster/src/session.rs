//! One connection's requests, handled one at a time, in order.
//!
//! In chat-async a request is a synchronous call into the Hub. Here many requests need the
//! cluster: a claim in Redis, a publication that must come back through the room's channel
//! before the sender's copy counts as delivered. So each request is an `async fn`: every
//! `.await` is a round trip to Redis or the wait for an echo, and the connection's next request
//! is not looked at before this one is answered. That is guarantee 1 (replies in request
//! order) for free, and it costs nothing to other connections: each has its own session.
//!
//! The chat rules themselves are chat-core's: parsing (`parse_request`), naming
//! (`is_valid_name`, `fold`), the rate limiter, the events and their encoding, the error
//! frames. What is new is where the state lives: `bus/` (shared, atomic) and `relay.rs`
//! (this node's deliveries).

use crate::bus::{Bus, BusResult, Entered, Record, Renamed};
use crate::envelope::{Header, Kind};
use crate::node::Node;
use crate::relay::{Member, Outcome, Reply};
use chat_core::names::{fold, is_valid_name};
use chat_core::rate::TokenBucket;
use chat_core::{
    bad_name_frame, clip, encode, error_frame, rate_limited_frame, taken_frame, CloseReason,
    ConnId, ErrorCode, Event, Frame, Id, Inbound, Request, RoomInfo, DEFAULT_ROOM,
};
use std::future::Future;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// How many times a `private` looks its recipient up again when the claim changed between the
/// look-up and the publication (it renamed, or left and someone else took the name).
const PRIVATE_ATTEMPTS: usize = 3;

/// Whether the connection stays open after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Its last reply is queued (`bye`, `line_too_long`, `idle_timeout`): close after
    /// flushing, for this reason (a WebSocket close code says it to the client).
    Close(CloseReason),
}

/// One connection's request handler.
pub struct Session<B> {
    node: Arc<Node<B>>,
    conn: ConnId,
    /// `--rate-limit`, when set.
    bucket: Option<TokenBucket>,
    /// Numbers this connection's requests that wait for an echo (see `envelope::Header`).
    seq: u64,
    /// Cancelled when the connection is being closed from elsewhere (backlog overflow,
    /// shutdown): a request waiting for an echo stops waiting.
    closing: CancellationToken,
}

impl<B: Bus> Session<B> {
    pub fn new(
        node: Arc<Node<B>>,
        conn: ConnId,
        rate_limit: u32,
        closing: CancellationToken,
    ) -> Self {
        Session {
            node,
            conn,
            bucket: (rate_limit > 0).then(|| TokenBucket::new(rate_limit, Instant::now())),
            seq: 0,
            closing,
        }
    }

    pub fn conn(&self) -> ConnId {
        self.conn
    }

    /// Handles one line. The order of checks is the Hub's (chat-core `hub/mod.rs`): a line
    /// that closes, then the rate limit, then `not_joined`.
    pub async fn handle(&mut self, inbound: Inbound) -> Flow {
        let request = match inbound {
            Err(rejection) if rejection.code.closes_connection() => {
                self.error(rejection.code, &rejection.message);
                return Flow::Close(closing(rejection.code));
            }
            Err(rejection) => {
                if self.take_token() {
                    self.error(rejection.code, &rejection.message);
                }
                return Flow::Continue;
            }
            Ok(request) => request,
        };
        if !self.take_token() {
            return Flow::Continue;
        }
        let member = self.node.member(self.conn);
        if member.is_none() && !request.allowed_before_join() {
            self.error(ErrorCode::NotJoined, "send `join` with a nickname first");
            return Flow::Continue;
        }
        match (request, member) {
            (Request::Ping { id }, _) => self.reply(encode(&Event::Pong { id })),
            (Request::Quit, _) => {
                self.reply(encode(&Event::Bye));
                return Flow::Close(CloseReason::Quit);
            }
            (Request::Join { .. }, Some(_)) => self.error(
                ErrorCode::AlreadyJoined,
                "this connection has already joined",
            ),
            (Request::Join { nickname, room }, None) => self.join(nickname, room).await,
            (Request::Nick { nickname }, Some(me)) => self.rename(me, nickname).await,
            (Request::Message { content, id }, Some(me)) => self.message(me, content, id).await,
            (Request::Private { to, content, id }, Some(me)) => {
                self.private(me, &to, content, id).await
            }
            (Request::JoinRoom { room }, Some(me)) => self.change_room(me, room).await,
            (Request::ListUsers { room }, Some(me)) => {
                self.list_users(room.unwrap_or(me.room)).await
            }
            (Request::ListRooms, Some(_)) => self.list_rooms().await,
            // Everything else needs a member, and `not_joined` was answered above.
            (_, None) => {}
        }
        Flow::Continue
    }

    async fn join(&mut self, nickname: String, room: Option<String>) {
        let room = room.unwrap_or_else(|| DEFAULT_ROOM.to_string());
        let names = [
            (nickname.as_str(), ErrorCode::BadNickname),
            (room.as_str(), ErrorCode::BadRoom),
        ];
        if !self.ready(&names) {
            return;
        }
        let seq = self.next_seq();
        let member = Member { nickname, room };
        let record = self.node.record(self.conn, &member, 0);
        let joined = self.joined_envelope(&member, seq);
        let reply = Reply::Welcome {
            nickname: member.nickname.clone(),
        };
        let script = self.node.bus.join(&record, joined);
        let taken = |me: &Self| me.refuse(ErrorCode::NicknameTaken, taken_frame(&member.nickname));
        self.enter(&member.room, seq, reply, script, &record, taken)
            .await;
    }

    async fn rename(&mut self, me: Member, nickname: String) {
        if !self.ready(&[(nickname.as_str(), ErrorCode::BadNickname)]) {
            return;
        }
        let seq = self.next_seq();
        let old = self.node.record(self.conn, &me, 0);
        let renamed = Member {
            nickname: nickname.clone(),
            room: me.room.clone(),
        };
        let new = self.node.record(self.conn, &renamed, 0);
        let event = Event::Renamed {
            from: me.nickname,
            to: nickname.clone(),
            room: me.room,
        };
        let (frame, payload) = self.node.envelope(Kind::Renamed, self.conn, seq, &event);
        let done = self.node.expect_echo(self.conn, seq);
        match self.node.bus.rename(&old, &new, payload).await {
            Ok(Renamed::Done) => self.node.renamed(self.conn, &nickname),
            Ok(Renamed::Taken) => {
                self.node.forget_echo(self.conn);
                return self.refuse(ErrorCode::NicknameTaken, taken_frame(&nickname));
            }
            Ok(Renamed::Lost) | Err(_) => {
                self.node.forget_echo(self.conn);
                return self.unavailable();
            }
        }
        if self.wait(done).await == Some(Outcome::Interrupted) {
            // Renamed in the shared state, but the room's copy was lost with the connection.
            self.reply(frame);
        }
    }

    async fn message(&mut self, me: Member, content: String, id: Option<Id>) {
        if !self.node.is_available() {
            return self.unavailable();
        }
        let seq = self.next_seq();
        let event = Event::Broadcast {
            from: me.nickname,
            room: me.room.clone(),
            content,
            ts: unix_millis(),
            id,
        };
        let (frame, payload) = self.node.envelope(Kind::Broadcast, self.conn, seq, &event);
        let done = self.node.expect_echo(self.conn, seq);
        if self.node.bus.publish(&me.room, payload).await.is_err() {
            self.node.forget_echo(self.conn);
            return self.unavailable();
        }
        // The sender's copy is the one Redis delivers back, in the room's order.
        if self.wait(done).await == Some(Outcome::Interrupted) {
            // Published, but the subscription broke before it came back: at most once for the
            // others, and the sender still gets its copy as the reply.
            self.reply(frame);
        }
    }

    async fn private(&mut self, me: Member, to: &str, content: String, id: Option<Id>) {
        if !self.node.is_available() {
            return self.unavailable();
        }
        let folded = fold(to);
        for _ in 0..PRIVATE_ATTEMPTS {
            let owner = match self.node.bus.lookup(&folded).await {
                Ok(Some(owner)) => owner,
                Ok(None) => break,
                Err(_) => return self.unavailable(),
            };
            let frame = encode(&Event::Private {
                from: me.nickname.clone(),
                to: owner.nickname.clone(),
                content: content.clone(),
                ts: unix_millis(),
                id: id.clone(),
            });
            if owner.node == self.node.id && owner.conn == self.conn.0 {
                return self.reply(frame); // to oneself: one copy
            }
            let header = Header {
                kind: Kind::Private,
                node: owner.node.clone(),
                conn: owner.conn,
                seq: 0,
            };
            let payload = crate::envelope::seal(&header, &frame);
            match self.node.bus.send_private(&folded, &owner, payload).await {
                Ok(true) => return self.reply(frame), // the sender's receipt
                Ok(false) => continue,                // the claim changed: look again
                Err(_) => return self.unavailable(),
            }
        }
        self.error(
            ErrorCode::NoSuchUser,
            &format!("no user named `{}` is online", clip(to)),
        );
    }

    async fn change_room(&mut self, me: Member, room: String) {
        if !self.ready(&[(room.as_str(), ErrorCode::BadRoom)]) {
            return;
        }
        if room == me.room {
            // Already there: the reply, and nobody is notified.
            return match self.node.bus.users(&room).await {
                Ok(users) => self.reply(encode(&Event::Room {
                    room,
                    users: sorted(users),
                })),
                Err(_) => self.unavailable(),
            };
        }
        let seq = self.next_seq();
        let old = self.node.record(self.conn, &me, seq);
        let moved = Member {
            nickname: me.nickname.clone(),
            room,
        };
        let new = self.node.record(self.conn, &moved, 0);
        let joined = self.joined_envelope(&moved, seq);
        let script = self.node.bus.change_room(&old, &new, joined);
        // Refused: the nickname is no longer ours (this node was reaped while cut off).
        self.enter(
            &moved.room,
            seq,
            Reply::Room,
            script,
            &new,
            Self::unavailable,
        )
        .await;
    }

    async fn list_users(&mut self, room: String) {
        if !self.ready(&[(room.as_str(), ErrorCode::BadRoom)]) {
            return;
        }
        match self.node.bus.users(&room).await {
            Ok(users) => self.reply(encode(&Event::Users {
                room,
                users: sorted(users),
            })),
            Err(_) => self.unavailable(),
        }
    }

    async fn list_rooms(&mut self) {
        if !self.node.is_available() {
            return self.unavailable();
        }
        match self.node.bus.rooms().await {
            Ok(mut rooms) => {
                rooms.sort_unstable();
                let rooms = rooms
                    .into_iter()
                    .map(|(name, users)| RoomInfo { name, users })
                    .collect();
                self.reply(encode(&Event::Rooms { rooms }))
            }
            Err(_) => self.unavailable(),
        }
    }

    // ---- helpers ---------------------------------------------------------------------------

    /// The checks before a request goes to the cluster, in the Hub's order: each name it
    /// brings follows the naming rules (else the error code given with it, `bad_nickname` or
    /// `bad_room`), then this node can reach the shared state (else `unavailable`). `false`:
    /// one failed, and its error is sent.
    fn ready(&self, names: &[(&str, ErrorCode)]) -> bool {
        for &(name, code) in names {
            if !is_valid_name(name) {
                let what = match code {
                    ErrorCode::BadNickname => "nickname",
                    _ => "room name",
                };
                self.refuse(code, bad_name_frame(code, what));
                return false;
            }
        }
        if !self.node.is_available() {
            self.unavailable();
            return false;
        }
        true
    }

    /// Enters `room` through the cluster, for `join` and `join_room`. The room's channel
    /// first: the `joined` that `script` publishes must come back to us. Then the script (a
    /// future does nothing until it is awaited, so it starts only now), then the wait for the
    /// Relay to deliver that echo and `reply`. `record` is what the script registers, released
    /// again if the connection went away meanwhile; `refused` answers a script that found the
    /// nickname not ours to enter with.
    async fn enter(
        &self,
        room: &str,
        seq: u64,
        reply: Reply,
        script: impl Future<Output = BusResult<Entered>>,
        record: &Record,
        refused: impl FnOnce(&Self),
    ) {
        let (subscribed, done) = self.node.begin_enter(self.conn, room, seq, reply);
        if !matches!(subscribed.await, Ok(Ok(()))) {
            self.node.abort_enter(self.conn);
            return self.unavailable();
        }
        match script.await {
            Ok(Some(users)) => {
                if !self.node.entered(self.conn, users) {
                    // Gone while its script ran: release what the script registered.
                    let _ = self.node.bus.leave(record).await;
                    return;
                }
            }
            Ok(None) => {
                self.node.abort_enter(self.conn);
                return refused(self);
            }
            Err(_) => {
                self.node.abort_enter(self.conn);
                return self.unavailable();
            }
        }
        if self.wait(done).await == Some(Outcome::Interrupted) {
            self.unavailable();
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn joined_envelope(&self, member: &Member, seq: u64) -> bytes::Bytes {
        let event = Event::Joined {
            nickname: member.nickname.clone(),
            room: member.room.clone(),
        };
        self.node.envelope(Kind::Joined, self.conn, seq, &event).1
    }

    /// Waits for the Relay to finish this request; `None` if the connection is closing.
    async fn wait(&self, done: oneshot::Receiver<Outcome>) -> Option<Outcome> {
        tokio::select! {
            outcome = done => outcome.ok(),
            _ = self.closing.cancelled() => {
                self.node.forget_echo(self.conn);
                None
            }
        }
    }

    fn take_token(&mut self) -> bool {
        let allowed = self
            .bucket
            .as_mut()
            .is_none_or(|bucket| bucket.try_take(Instant::now()));
        if !allowed {
            self.refuse(ErrorCode::RateLimited, rate_limited_frame());
        }
        allowed
    }

    fn reply(&self, frame: Frame) {
        self.node.reply(self.conn, frame);
    }

    fn error(&self, code: ErrorCode, message: &str) {
        self.refuse(code, error_frame(code, message));
    }

    /// Sends an error frame (built by chat-core), counted by code for `/metrics`.
    fn refuse(&self, code: ErrorCode, frame: Frame) {
        metrics::counter!("chat_errors_total", "code" => code.as_str()).increment(1);
        self.reply(frame);
    }

    fn unavailable(&self) {
        self.error(
            ErrorCode::Unavailable,
            "the cluster's shared state cannot be reached right now; the request had no \
             effect, try again",
        );
    }
}

/// The reason to close after a closing error a client's input caused.
fn closing(code: ErrorCode) -> CloseReason {
    match code {
        ErrorCode::IdleTimeout => CloseReason::IdleTimeout,
        ErrorCode::ServerFull => CloseReason::ServerFull,
        ErrorCode::ShuttingDown => CloseReason::ShuttingDown,
        _ => CloseReason::LineTooLong,
    }
}

fn sorted(mut users: Vec<String>) -> Vec<String> {
    users.sort_unstable();
    users
}

/// The server clock for `ts`: milliseconds since the Unix epoch.
fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

//! The bus: the shared state and the channels of the cluster, behind one trait.
//!
//! A node asks the bus to do things that must be *atomic across the cluster* (claim a
//! nickname and enter a room in one step, rename, move, release) and to carry envelopes
//! between nodes (publish to a room channel, send to a node channel). Each method is one
//! round trip to Redis; each of the multi-key ones is a Lua script, which Redis runs with
//! nothing else in between, so two nodes can never both win the same nickname, and a member's
//! `joined` is published in the same instant it becomes a member.
//!
//! [`RedisBus`](redis::RedisBus) is the real thing. [`MemoryBus`](memory::MemoryBus) is the
//! same interface inside the process, for one node without Redis (`--redis memory`): the node
//! does not know which one it talks to, it only ever sees this interface and the
//! [`BusEvent`]s.
//!
//! ## Taking a nickname back
//! A WebSocket client may give a session key (`/ws?session=KEY`, a secret it keeps for the life
//! of its browser tab), recorded with its membership. When its connection drops and it
//! reconnects, its old membership may still hold the nickname: on a node that died (until the
//! reaper runs, seconds later), or on a node that has not noticed the drop yet. A `join` with
//! the same session key then takes the nickname over: the old membership is released (its room
//! gets `left`), its node is told to close the old connection ([`Kind::Replaced`]
//! (crate::envelope::Kind::Replaced) on the node's channel), and the join proceeds. Without a
//! key, or with another one, a held nickname is `nickname_taken`, as always.

pub mod memory;
pub mod redis;
mod scripts;

use crate::keys::Owner;
use bytes::Bytes;
use chat_core::{error_frame, ErrorCode, Frame};
use std::future::Future;
use std::time::Duration;

/// The bus cannot be reached right now: the request had no effect (or its effect is unknown
/// and will be reconciled when the bus is back). Clients are answered `unavailable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the cluster's shared state (Redis) cannot be reached")
    }
}

impl std::error::Error for Unavailable {}

pub type BusResult<T> = Result<T, Unavailable>;

/// What the bus tells its node, in order, on one channel (`mpsc`).
#[derive(Debug)]
pub enum BusEvent {
    /// Connected (again): nothing is subscribed on the new connection, and the shared state
    /// may have forgotten this node (a restarted Redis): the node must re-register.
    Up,
    /// The connection is lost: requests fail with [`Unavailable`] until the next `Up`.
    Down,
    /// An envelope arrived on `channel`.
    Message { channel: String, payload: Bytes },
}

/// One member as the shared state records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its connection id on this node.
    pub conn: u64,
    pub nickname: String,
    pub room: String,
    /// The `left` envelope to publish in `room` for it, kept in the shared state so that a
    /// reaper can publish it when this node is dead.
    pub left: Bytes,
    /// Its WebSocket session key, or "" (a TCP client, or none given): a `join` with the same
    /// key may take the nickname over (see the module docs).
    pub session: String,
}

/// What a connection whose nickname was taken over by a newer connection of its session is
/// told before it is closed.
pub fn replaced_frame() -> Frame {
    error_frame(
        ErrorCode::NicknameTaken,
        "your session continued on a newer connection, which took this nickname over",
    )
}

/// What entering a room (`join`, `change_room`) came to: the room's members, the newcomer
/// included, or `None` when the nickname is not this connection's to enter with (each
/// operation says when).
pub type Entered = Option<Vec<String>>;

/// What a rename came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renamed {
    Done,
    /// Someone else holds the new nickname.
    Taken,
    /// The old nickname is no longer ours (this node was reaped while cut off).
    Lost,
}

/// The operations a node needs from the shared state. See the module docs.
///
/// `impl Future + Send` rather than `async fn`, so that the futures can run on tokio's
/// multi-threaded runtime; implementations write plain `async fn`.
pub trait Bus: Send + Sync + 'static {
    /// What carries the cluster: `redis` or `memory` (reported by `/health`).
    const KIND: &'static str;

    /// Whether the bus is connected right now.
    fn is_up(&self) -> bool;

    /// Claims `record.nickname` (ignoring case) for this node's `record.conn`, puts it in
    /// `record.room` and publishes `joined` there. `None`: the nickname is taken (by someone
    /// who is not an earlier connection of `record.session`; see the module docs).
    /// Returns the room's members, the joiner included.
    fn join(
        &self,
        record: &Record,
        joined: Bytes,
    ) -> impl Future<Output = BusResult<Entered>> + Send;

    /// Releases the member's nickname and place (if still its own) and publishes its `left`.
    fn leave(&self, record: &Record) -> impl Future<Output = BusResult<()>> + Send;

    /// Moves the claim from `old.nickname` to `new.nickname` and publishes `renamed`.
    fn rename(
        &self,
        old: &Record,
        new: &Record,
        renamed: Bytes,
    ) -> impl Future<Output = BusResult<Renamed>> + Send;

    /// Moves the member from `old.room` to `new.room`, publishing `old.left` there and
    /// `joined` in the new one. `None`: the nickname is no longer ours.
    fn change_room(
        &self,
        old: &Record,
        new: &Record,
        joined: Bytes,
    ) -> impl Future<Output = BusResult<Entered>> + Send;

    /// Publishes an envelope on a room's channel.
    fn publish(&self, room: &str, payload: Bytes) -> impl Future<Output = BusResult<()>> + Send;

    /// Who holds a nickname (given in lowercase), if anyone.
    fn lookup(&self, folded: &str) -> impl Future<Output = BusResult<Option<Owner>>> + Send;

    /// Publishes an envelope on `owner.node`'s channel if `owner` still holds the nickname;
    /// `false` if it does not any more.
    fn send_private(
        &self,
        folded: &str,
        owner: &Owner,
        payload: Bytes,
    ) -> impl Future<Output = BusResult<bool>> + Send;

    /// A room's members (unsorted).
    fn users(&self, room: &str) -> impl Future<Output = BusResult<Vec<String>>> + Send;

    /// Every room with its member count (unsorted).
    fn rooms(&self) -> impl Future<Output = BusResult<Vec<(String, usize)>>> + Send;

    /// Subscribes to channels; returns once every subscription is confirmed, so everything
    /// published after that is delivered.
    fn subscribe(&self, channels: &[String]) -> impl Future<Output = BusResult<()>> + Send;

    fn unsubscribe(&self, channels: &[String]) -> impl Future<Output = BusResult<()>> + Send;

    /// Refreshes this node's heartbeat, which expires after `ttl` without a refresh. `true`:
    /// the node was reaped meanwhile (it was too slow to refresh), and must re-register.
    fn heartbeat(&self, ttl: Duration) -> impl Future<Output = BusResult<bool>> + Send;

    /// Reaps every node whose heartbeat expired: frees its nicknames, takes its members out
    /// of their rooms and publishes their `left`. Returns the reaped node ids.
    fn reap(&self) -> impl Future<Output = BusResult<Vec<String>>> + Send;

    /// Makes the shared state agree with this node's members after a reconnection: records
    /// it has of connections that are gone are released (with a `left`), and every current
    /// member is claimed and placed again (with a `joined` if the cluster saw it leave, that
    /// is, if this node was reaped meanwhile). Returns the connections whose nickname someone
    /// else holds now.
    fn reregister(
        &self,
        members: &[(Record, Bytes)],
    ) -> impl Future<Output = BusResult<Vec<u64>>> + Send;
}

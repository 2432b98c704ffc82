//! The bus inside the process: one node without Redis (`--redis memory`).
//!
//! The same operations as the Lua scripts of `scripts.rs`, on plain maps, each under one lock:
//! holding the lock makes every operation one indivisible step, as Redis makes a script. A
//! publication goes to the node's event channel only for a channel the node subscribed to, in
//! the order the operations ran, exactly as Redis delivers; the node therefore keeps every
//! rule it has with Redis (its own echo completes a request, history starts at its `joined`),
//! and the relay and the sessions run unchanged.
//!
//! What a one-process bus cannot lose, it never pretends to: it is always up, nobody else
//! needs a heartbeat from it, and nothing is ever forgotten, so re-registering has nothing to
//! repair. The lock is tokio's, because a publication waits for room in the node's event
//! channel while it holds the lock: that wait is what keeps the order, and the backpressure.

use super::{replaced_frame, BusEvent, BusResult, Entered, Record, Renamed};
use crate::envelope::{self, Header, Kind};
use crate::keys::{Keys, Owner};
use bytes::Bytes;
use chat_core::names::fold;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;
use tokio::sync::{mpsc, Mutex, MutexGuard};

/// The in-process bus of one node.
pub struct MemoryBus {
    /// Channel names (the same as on Redis, so the node recognises them).
    keys: Keys,
    /// This node's id, in the claims.
    node: String,
    /// The shared state, and the subscriptions.
    state: Mutex<State>,
    /// Where publications on subscribed channels go: the node's pump.
    events: mpsc::Sender<BusEvent>,
}

#[derive(Default)]
struct State {
    /// Lowercase nickname -> who holds it.
    claims: HashMap<String, Owner>,
    /// Room -> its members' nicknames (a room exists while it has members).
    rooms: BTreeMap<String, BTreeSet<String>>,
    /// Connection id -> its member record (what `P node:<id>` holds on Redis).
    records: HashMap<u64, Record>,
    /// The channels the node listens to.
    subscribed: HashSet<String>,
}

impl MemoryBus {
    /// A bus for `node`; it reports `Up` at once on `events`, where every later publication on
    /// a subscribed channel goes.
    pub fn new(keys: Keys, node: &str, events: mpsc::Sender<BusEvent>) -> Self {
        // The channel is new and empty, so this cannot fail for lack of room.
        let _ = events.try_send(BusEvent::Up);
        MemoryBus {
            keys,
            node: node.to_string(),
            state: Mutex::new(State::default()),
            events,
        }
    }

    async fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().await
    }

    fn owner(&self, record: &Record) -> Owner {
        Owner {
            node: self.node.clone(),
            conn: record.conn,
            nickname: record.nickname.clone(),
        }
    }

    /// Whether `conn` holds the claim on `folded` (a `leave` after a takeover does not).
    fn holds(&self, state: &State, folded: &str, conn: u64) -> bool {
        state
            .claims
            .get(folded)
            .is_some_and(|o| o.node == self.node && o.conn == conn)
    }

    /// Sends `payload` to the node if it listens on `channel` (Redis's `PUBLISH`).
    async fn publish_locked(&self, state: &State, channel: String, payload: Bytes) {
        if state.subscribed.contains(&channel) {
            let _ = self
                .events
                .send(BusEvent::Message { channel, payload })
                .await;
        }
    }

    /// Publishes `payload` on `room`'s channel.
    async fn publish_in_room(&self, state: &State, room: &str, payload: Bytes) {
        let channel = self.keys.room_channel(room);
        self.publish_locked(state, channel, payload).await;
    }

    /// Frees a member's claim and place and publishes its `left` (the scripts' `release`).
    async fn release_locked(&self, state: &mut State, record: &Record) {
        let folded = fold(&record.nickname);
        if !self.holds(state, &folded, record.conn) {
            return;
        }
        state.claims.remove(&folded);
        remove_member(state, &record.room, &record.nickname);
        self.publish_in_room(state, &record.room, record.left.clone())
            .await;
    }
}

/// Puts `record.nickname` in `record.room` (the room is listed if new), and keeps the record.
fn place_member(state: &mut State, record: &Record) {
    state
        .rooms
        .entry(record.room.clone())
        .or_default()
        .insert(record.nickname.clone());
    state.records.insert(record.conn, record.clone());
}

/// Takes `nickname` out of `room`, and the room out of the list when it is empty.
fn remove_member(state: &mut State, room: &str, nickname: &str) {
    if let Some(members) = state.rooms.get_mut(room) {
        members.remove(nickname);
        if members.is_empty() {
            state.rooms.remove(room);
        }
    }
}

fn members(state: &State, room: &str) -> Vec<String> {
    state
        .rooms
        .get(room)
        .map(|m| m.iter().cloned().collect())
        .unwrap_or_default()
}

impl super::Bus for MemoryBus {
    const KIND: &'static str = "memory";

    fn is_up(&self) -> bool {
        true
    }

    async fn join(&self, record: &Record, joined: Bytes) -> BusResult<Entered> {
        let mut state = self.lock().await;
        let folded = fold(&record.nickname);
        if let Some(holder) = state.claims.get(&folded) {
            // Taken, unless by an earlier connection of the same session (see `bus/mod.rs`).
            let old = state.records.get(&holder.conn).cloned();
            let Some(old) =
                old.filter(|o| !record.session.is_empty() && o.session == record.session)
            else {
                return Ok(None);
            };
            self.release_locked(&mut state, &old).await;
            state.records.remove(&old.conn);
            let header = Header {
                kind: Kind::Replaced,
                node: self.node.clone(),
                conn: old.conn,
                seq: 0,
            };
            let channel = self.keys.node_channel(&self.node);
            let payload = envelope::seal(&header, &replaced_frame());
            self.publish_locked(&state, channel, payload).await;
        }
        state.claims.insert(folded, self.owner(record));
        place_member(&mut state, record);
        self.publish_in_room(&state, &record.room, joined).await;
        Ok(Some(members(&state, &record.room)))
    }

    async fn leave(&self, record: &Record) -> BusResult<()> {
        let mut state = self.lock().await;
        state.records.remove(&record.conn);
        self.release_locked(&mut state, record).await;
        Ok(())
    }

    async fn rename(&self, old: &Record, new: &Record, renamed: Bytes) -> BusResult<Renamed> {
        let mut state = self.lock().await;
        let (from, to) = (fold(&old.nickname), fold(&new.nickname));
        if !self.holds(&state, &from, old.conn) {
            return Ok(Renamed::Lost);
        }
        if from != to && state.claims.contains_key(&to) {
            return Ok(Renamed::Taken);
        }
        state.claims.remove(&from);
        state.claims.insert(to, self.owner(new));
        remove_member(&mut state, &old.room, &old.nickname);
        place_member(&mut state, new); // the same room: a rename keeps it
        self.publish_in_room(&state, &old.room, renamed).await;
        Ok(Renamed::Done)
    }

    async fn change_room(&self, old: &Record, new: &Record, joined: Bytes) -> BusResult<Entered> {
        let mut state = self.lock().await;
        if !self.holds(&state, &fold(&old.nickname), old.conn) {
            return Ok(None);
        }
        remove_member(&mut state, &old.room, &old.nickname);
        place_member(&mut state, new);
        self.publish_in_room(&state, &old.room, old.left.clone())
            .await;
        self.publish_in_room(&state, &new.room, joined).await;
        Ok(Some(members(&state, &new.room)))
    }

    async fn publish(&self, room: &str, payload: Bytes) -> BusResult<()> {
        let state = self.lock().await;
        self.publish_in_room(&state, room, payload).await;
        Ok(())
    }

    async fn lookup(&self, folded: &str) -> BusResult<Option<Owner>> {
        Ok(self.lock().await.claims.get(folded).cloned())
    }

    async fn send_private(&self, folded: &str, owner: &Owner, payload: Bytes) -> BusResult<bool> {
        let state = self.lock().await;
        if state.claims.get(folded) != Some(owner) {
            return Ok(false);
        }
        let channel = self.keys.node_channel(&owner.node);
        self.publish_locked(&state, channel, payload).await;
        Ok(true)
    }

    async fn users(&self, room: &str) -> BusResult<Vec<String>> {
        Ok(members(&*self.lock().await, room))
    }

    async fn rooms(&self) -> BusResult<Vec<(String, usize)>> {
        let state = self.lock().await;
        Ok(state
            .rooms
            .iter()
            .map(|(name, members)| (name.clone(), members.len()))
            .collect())
    }

    async fn subscribe(&self, channels: &[String]) -> BusResult<()> {
        self.lock()
            .await
            .subscribed
            .extend(channels.iter().cloned());
        Ok(())
    }

    async fn unsubscribe(&self, channels: &[String]) -> BusResult<()> {
        let mut state = self.lock().await;
        for channel in channels {
            state.subscribed.remove(channel);
        }
        Ok(())
    }

    async fn heartbeat(&self, _ttl: Duration) -> BusResult<bool> {
        Ok(false) // nobody else could have declared this node dead
    }

    async fn reap(&self) -> BusResult<Vec<String>> {
        Ok(Vec::new()) // no other node to outlive
    }

    async fn reregister(&self, _members: &[(Record, Bytes)]) -> BusResult<Vec<u64>> {
        // Called once, when the node starts (the `Up` of `new`): nothing to repair, since this
        // bus lives and dies with the node and never forgets.
        Ok(Vec::new())
    }
}

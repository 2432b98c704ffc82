//! The node: what every connection of this process shares, and the tasks that keep it in step
//! with the bus.
//!
//! Like chat-async's `shared.rs`, the state sits behind one *std* `Mutex`, held for
//! microseconds and never across an `.await`: the [`Relay`] (who receives what), each
//! connection's outbound queue, and the requests waiting for their echo. Frames are pushed into
//! queues under the lock, so two envelopes of one room reach every local member in the order
//! Redis delivered them; writing happens in each connection's writer task, outside it.
//!
//! Three tasks run beside the connections (`node/tasks.rs`):
//! - [`Node::pump`]: every bus event, in order: envelopes into the Relay, `Up` and `Down`;
//! - [`Node::subscriber`]: `SUBSCRIBE`/`UNSUBSCRIBE` in the order the Relay asked, so an
//!   unsubscribe never overtakes the subscribe that followed it;
//! - [`Node::liveness`]: the heartbeat, and the reaper of dead nodes.

use crate::bus::{Bus, Record, Unavailable};
use crate::envelope::{self, Header, Kind};
use crate::keys::Keys;
use crate::outlet::Outlet;
use crate::relay::{Action, Member, Outcome, Relay, Reply};
use bytes::Bytes;
use chat_core::{
    encode, error_frame, CloseReason, ConnId, ConnIdMap, ErrorCode, Event, Frame, SteadyMap,
};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

mod tasks;

/// How often a node refreshes its heartbeat and looks for dead nodes.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);

/// A heartbeat not refreshed for this long means the node is dead. With the reaper running
/// every second on every node, a killed node's members leave within about 8 s (the spec asks
/// for 10). Shorter would notice deaths sooner, and reap nodes that are merely slow (a node
/// or a Redis starved of CPU for a few seconds).
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(7);

/// What the subscriber task is asked to do.
#[derive(Debug)]
enum Subscription {
    /// Make sure this channel is subscribed, then answer (a joiner waits for it).
    Ensure(String, Option<oneshot::Sender<Result<(), Unavailable>>>),
    /// Nobody here needs this channel any more.
    Release(String),
    /// The connection is new (or gone): nothing is subscribed on it.
    Reset,
}

/// The limits a node enforces on its connections, TCP and WebSocket alike.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `--max-conns`: connections of this process at once.
    pub max_conns: usize,
    /// `--max-conns-per-ip`: connections of this process from one address at once; 0 = off.
    pub max_conns_per_ip: usize,
}

/// Why a connection is refused ([`Node::connect`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `ServerFull` (a limit), or `ShuttingDown`.
    pub reason: CloseReason,
    /// The sentence for the client.
    pub message: String,
}

impl Refusal {
    /// The error code the client is sent.
    pub fn code(&self) -> ErrorCode {
        match self.reason {
            CloseReason::ShuttingDown => ErrorCode::ShuttingDown,
            _ => ErrorCode::ServerFull,
        }
    }
}

/// The state every connection of the node shares. See the module docs.
pub struct Node<B> {
    /// This node's id (`--node-id`).
    pub id: String,
    pub bus: Arc<B>,
    pub keys: Keys,
    /// Checked at each [`Node::connect`].
    limits: Limits,
    state: Mutex<State>,
    /// Requests for the subscriber task, sent under the state lock so they keep the Relay's
    /// order.
    subscriptions: mpsc::UnboundedSender<Subscription>,
    /// The bus is up *and* this node has re-registered on it: requests that need the cluster
    /// are served. Until then they are answered `unavailable`.
    available: AtomicBool,
    /// Connection ids: never reused in this process's life.
    next_conn: AtomicU64,
    /// Signalled each time the node becomes available (for the start-up wait).
    registered: tokio::sync::Notify,
}

struct State {
    relay: Relay,
    /// Every open connection.
    peers: ConnIdMap<Peer>,
    /// Open connections per client address, for `--max-conns-per-ip` (only addresses with at
    /// least one).
    per_ip: SteadyMap<IpAddr, usize>,
    /// The request each connection is waiting on, if any.
    waiters: ConnIdMap<oneshot::Sender<Outcome>>,
    /// Set by [`Node::shut_down`]: connections that arrive later are refused.
    stopping: bool,
}

/// What the node keeps of one open connection.
struct Peer {
    /// Its output: the queue, its writer, its framing.
    outlet: Arc<Outlet>,
    /// The client's address, counted in `per_ip`.
    ip: IpAddr,
    /// A WebSocket client's session key (`/ws?session=KEY`), recorded with its membership.
    session: Option<String>,
}

impl<B: Bus> Node<B> {
    /// A node and the receiving end of its subscription requests (for [`Node::subscriber`]).
    pub fn new(
        id: &str,
        bus: Arc<B>,
        keys: Keys,
        limits: Limits,
    ) -> (Arc<Self>, SubscriptionQueue) {
        let (tx, rx) = mpsc::unbounded_channel();
        let node = Node {
            id: id.to_string(),
            bus,
            keys,
            limits,
            state: Mutex::new(State {
                relay: Relay::new(id),
                peers: ConnIdMap::default(),
                per_ip: SteadyMap::default(),
                waiters: ConnIdMap::default(),
                stopping: false,
            }),
            subscriptions: tx,
            available: AtomicBool::new(false),
            next_conn: AtomicU64::new(1),
            registered: tokio::sync::Notify::new(),
        };
        (Arc::new(node), SubscriptionQueue(rx))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_available(&self) -> bool {
        self.available.load(Ordering::SeqCst)
    }

    /// Waits until the node is available, for at most `limit`; whether it is.
    pub async fn wait_available(&self, limit: Duration) -> bool {
        let registered = self.registered.notified();
        if self.is_available() {
            return true;
        }
        let _ = tokio::time::timeout(limit, registered).await;
        self.is_available()
    }

    /// Open connections.
    pub fn connections(&self) -> usize {
        self.lock().peers.len()
    }

    // ---- connections ----------------------------------------------------------------------

    /// Registers an accepted connection from `ip`, or refuses it: past `--max-conns`, past
    /// `--max-conns-per-ip` for its address (PROTOCOL.md, guarantee 8), or while stopping. One
    /// check for both transports, under the lock, so two connections arriving at once cannot
    /// both take the last place.
    pub fn connect(
        &self,
        outlet: Arc<Outlet>,
        ip: IpAddr,
        session: Option<String>,
    ) -> Result<ConnId, Refusal> {
        let mut state = self.lock();
        let full = |message: String| Refusal {
            reason: CloseReason::ServerFull,
            message,
        };
        if state.stopping {
            return Err(Refusal {
                reason: CloseReason::ShuttingDown,
                message: "the server is shutting down".into(),
            });
        }
        if state.peers.len() >= self.limits.max_conns {
            let max = self.limits.max_conns;
            return Err(full(format!("the server already has {max} connections")));
        }
        let per_ip = self.limits.max_conns_per_ip;
        let from_ip = state.per_ip.get(&ip).copied().unwrap_or(0);
        if per_ip > 0 && from_ip >= per_ip {
            return Err(full(format!("already {per_ip} connections from {ip}")));
        }
        let id = ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed));
        state.relay.connect(id);
        state.peers.insert(
            id,
            Peer {
                outlet,
                ip,
                session,
            },
        );
        *state.per_ip.entry(ip).or_default() += 1;
        metrics::gauge!("chat_connections").set(state.peers.len() as f64);
        Ok(id)
    }

    /// Forgets an open connection (and its place in the per-address count).
    fn forget(state: &mut State, conn: ConnId) -> Option<Arc<Outlet>> {
        let peer = state.peers.remove(&conn)?;
        if let Some(count) = state.per_ip.get_mut(&peer.ip) {
            *count -= 1;
            if *count == 0 {
                state.per_ip.remove(&peer.ip);
            }
        }
        state.waiters.remove(&conn);
        metrics::gauge!("chat_connections").set(state.peers.len() as f64);
        Some(peer.outlet)
    }

    /// The connection is gone: forget it, and release its place in the cluster (nickname,
    /// room, a `left` for the others) in the background.
    pub fn disconnect(self: &Arc<Self>, conn: ConnId) {
        let mut out = Vec::new();
        let mut state = self.lock();
        if Self::forget(&mut state, conn).is_none() {
            return;
        }
        let member = state.relay.remove(conn, &mut out);
        self.carry_out(&mut state, out);
        drop(state);
        if let Some(member) = member {
            self.release(conn, member);
        }
    }

    /// Runs the `leave` script for a member that is gone. If Redis is down it fails, and the
    /// stale record is released when this node re-registers.
    fn release(self: &Arc<Self>, conn: ConnId, member: Member) {
        let record = self.record(conn, &member, 0);
        let bus = Arc::clone(&self.bus);
        tokio::spawn(async move {
            let _ = bus.leave(&record).await;
        });
    }

    /// Queues a reply for `conn` (a frame that is not a room's: pong, users, an error...).
    pub fn reply(&self, conn: ConnId, frame: Frame) {
        let mut state = self.lock();
        self.push(&mut state, conn, frame);
    }

    /// The member `conn` is, once joined.
    pub fn member(&self, conn: ConnId) -> Option<Member> {
        self.lock().relay.member(conn).cloned()
    }

    // ---- what requests wait for -------------------------------------------------------------

    /// `conn` starts entering `room` (`join` or `join_room`). Returns what to wait on: the
    /// subscription to the room's channel (before the script may run), then the handshake.
    pub fn begin_enter(
        &self,
        conn: ConnId,
        room: &str,
        seq: u64,
        reply: Reply,
    ) -> (
        oneshot::Receiver<Result<(), Unavailable>>,
        oneshot::Receiver<Outcome>,
    ) {
        let (sub_tx, sub_rx) = oneshot::channel();
        let (wake_tx, wake_rx) = oneshot::channel();
        let mut out = Vec::new();
        let mut state = self.lock();
        state.waiters.insert(conn, wake_tx);
        state.relay.begin_enter(conn, room, seq, reply, &mut out);
        // Every joiner asks (not only the first): the answer comes once the subscription the
        // first one triggered is confirmed, since the subscriber works in order.
        let channel = self.keys.room_channel(room);
        let _ = self
            .subscriptions
            .send(Subscription::Ensure(channel, Some(sub_tx)));
        self.carry_out(&mut state, out);
        (sub_rx, wake_rx)
    }

    /// The handshake's script returned the room's members. `false` if the connection left
    /// meanwhile: then nobody will release what the script registered, and the caller must.
    pub fn entered(&self, conn: ConnId, users: Vec<String>) -> bool {
        let mut out = Vec::new();
        let mut state = self.lock();
        if !state.peers.contains_key(&conn) {
            return false;
        }
        state.relay.entered(conn, users, &mut out);
        self.carry_out(&mut state, out);
        true
    }

    /// The handshake failed: `conn` stays where it was.
    pub fn abort_enter(&self, conn: ConnId) {
        let mut out = Vec::new();
        let mut state = self.lock();
        state.waiters.remove(&conn);
        state.relay.abort_enter(conn, &mut out);
        self.carry_out(&mut state, out);
    }

    /// `conn` publishes envelope `seq` and waits for it to come back.
    pub fn expect_echo(&self, conn: ConnId, seq: u64) -> oneshot::Receiver<Outcome> {
        let (tx, rx) = oneshot::channel();
        let mut state = self.lock();
        state.waiters.insert(conn, tx);
        state.relay.expect_echo(conn, seq);
        rx
    }

    /// The publication failed: stop waiting.
    pub fn forget_echo(&self, conn: ConnId) {
        let mut state = self.lock();
        state.waiters.remove(&conn);
        state.relay.forget_echo(conn);
    }

    pub fn renamed(&self, conn: ConnId, nickname: &str) {
        self.lock().relay.renamed(conn, nickname);
    }

    // ---- envelopes --------------------------------------------------------------------------

    /// An envelope about `conn` of this node.
    pub fn envelope(&self, kind: Kind, conn: ConnId, seq: u64, event: &Event) -> (Frame, Bytes) {
        let frame = encode(event);
        let header = Header {
            kind,
            node: self.id.clone(),
            conn: conn.0,
            seq,
        };
        let payload = envelope::seal(&header, &frame);
        (frame, payload)
    }

    /// The shared-state record of a member, with the `left` envelope that releases it
    /// (carrying `seq`, for a `join_room` that waits for it).
    pub fn record(&self, conn: ConnId, member: &Member, seq: u64) -> Record {
        let session = self
            .lock()
            .peers
            .get(&conn)
            .and_then(|peer| peer.session.clone());
        self.record_of(conn, member, seq, session)
    }

    fn record_of(
        &self,
        conn: ConnId,
        member: &Member,
        seq: u64,
        session: Option<String>,
    ) -> Record {
        let left = Event::Left {
            nickname: member.nickname.clone(),
            room: member.room.clone(),
        };
        Record {
            conn: conn.0,
            nickname: member.nickname.clone(),
            room: member.room.clone(),
            left: self.envelope(Kind::Left, conn, seq, &left).1,
            session: session.unwrap_or_default(),
        }
    }

    // ---- carrying out -----------------------------------------------------------------------

    /// Pushes a frame into `conn`'s queue; a queue over `--max-backlog` cuts the connection off
    /// (guarantee 4), which the Relay hears at once.
    fn push(&self, state: &mut State, conn: ConnId, frame: Frame) {
        let mut out = Vec::new();
        let Some(peer) = state.peers.get(&conn) else {
            return;
        };
        let len = frame.len();
        if peer.outlet.send(frame).is_ok() {
            metrics::counter!("chat_frames_out_total").increment(1);
            metrics::counter!("chat_bytes_out_total").increment(len as u64);
            return;
        }
        metrics::counter!("chat_backlog_overflows_total").increment(1);
        tracing::info!("{conn}: backlog over --max-backlog; disconnecting");
        let session = state.peers.get(&conn).and_then(|p| p.session.clone());
        if let Some(outlet) = Self::forget(state, conn) {
            outlet.abort();
        }
        if let Some(member) = state.relay.remove(conn, &mut out) {
            let record = self.record_of(conn, &member, 0, session);
            let bus = Arc::clone(&self.bus);
            tokio::spawn(async move {
                let _ = bus.leave(&record).await;
            });
        }
        self.carry_out(state, out);
    }

    /// Carries out the Relay's actions, under the lock.
    fn carry_out(&self, state: &mut State, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send { to, frame } => self.push(state, to, frame),
                Action::Wake { conn, outcome } => {
                    if let Some(waiter) = state.waiters.remove(&conn) {
                        let _ = waiter.send(outcome);
                    }
                }
                // `begin_enter` asks for every joiner; nothing more to do here.
                Action::Subscribe(_) => {}
                Action::Unsubscribe(room) => {
                    let channel = self.keys.room_channel(&room);
                    let _ = self.subscriptions.send(Subscription::Release(channel));
                }
            }
        }
    }

    /// Shutting down: every client gets `shutting_down` (a WebSocket client then a close
    /// with 1001, "going away"), connections that arrive later are refused, and the node
    /// leaves the cluster at once (its members' `left` are published now, not by a reaper in
    /// 6 s).
    pub async fn shut_down(&self) {
        let frame = error_frame(ErrorCode::ShuttingDown, "the server is shutting down");
        let members: Vec<Record> = {
            let mut state = self.lock();
            state.stopping = true;
            let mut ids: Vec<ConnId> = state.peers.keys().copied().collect();
            ids.sort_unstable();
            for &id in &ids {
                if let Some(peer) = state.peers.get(&id) {
                    let _ = peer.outlet.send(frame.clone());
                    peer.outlet.close(CloseReason::ShuttingDown);
                }
            }
            let members = state
                .relay
                .members()
                .map(|(conn, member)| {
                    let session = state.peers.get(&conn).and_then(|p| p.session.clone());
                    self.record_of(conn, member, 0, session)
                })
                .collect();
            state.peers.clear();
            state.per_ip.clear();
            state.waiters.clear();
            members
        };
        self.available.store(false, Ordering::SeqCst);
        let leaves = members.iter().map(|record| self.bus.leave(record));
        let _ = tokio::time::timeout(
            Duration::from_millis(500),
            futures_util::future::join_all(leaves),
        )
        .await;
    }
}

/// The receiving end of a node's subscription requests.
pub struct SubscriptionQueue(mpsc::UnboundedReceiver<Subscription>);

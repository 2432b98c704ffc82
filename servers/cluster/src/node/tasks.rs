//! The node's background work: the pump (bus events, in order), the subscriber (SUBSCRIBE
//! and UNSUBSCRIBE in batches, in order), recovery after a reconnection (re-registering every
//! member), and liveness (the heartbeat and the reaper).

use super::{Node, Subscription, SubscriptionQueue, HEARTBEAT_EVERY, HEARTBEAT_TTL};
use crate::bus::{Bus, BusEvent, Record, Unavailable};
use crate::envelope::{self, Kind};
use bytes::Bytes;
use chat_core::{error_frame, ConnId, ErrorCode, Event, Frame};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tungstenite::protocol::frame::coding::CloseCode;

/// Subscription requests the subscriber takes in one batch, at most.
const SUBSCRIPTION_BATCH: usize = 1024;

impl<B: Bus> Node<B> {
    /// Handles every bus event, in order, until the bus stops.
    pub async fn pump(self: Arc<Self>, mut events: mpsc::Receiver<BusEvent>) {
        let node_channel = self.keys.node_channel(&self.id);
        while let Some(event) = events.recv().await {
            match event {
                BusEvent::Message { channel, payload } => {
                    metrics::counter!("chat_bus_messages_total").increment(1);
                    let Some((header, frame)) = envelope::open(payload) else {
                        tracing::warn!("ignored a message on {channel} that is not an envelope");
                        continue;
                    };
                    if channel == node_channel && header.kind == Kind::Replaced {
                        // A newer connection of its session took its nickname over.
                        if header.node == self.id {
                            self.evict(ConnId(header.conn), frame);
                        }
                        continue;
                    }
                    let mut out = Vec::new();
                    let mut state = self.lock();
                    if channel == node_channel {
                        state.relay.on_node_frame(&header, frame, &mut out);
                    } else if let Some(room) = self.keys.room_of_channel(&channel) {
                        state.relay.on_room_frame(room, &header, frame, &mut out);
                    }
                    self.carry_out(&mut state, out);
                }
                BusEvent::Up => {
                    tokio::spawn(Arc::clone(&self).recover());
                }
                BusEvent::Down => {
                    self.available.store(false, Ordering::SeqCst);
                    let _ = self.subscriptions.send(Subscription::Reset);
                    let mut out = Vec::new();
                    let mut state = self.lock();
                    state.relay.bus_down(&mut out);
                    self.carry_out(&mut state, out);
                }
            }
        }
    }

    /// After (re)connecting: heartbeat first (so nobody reaps us meanwhile), subscribe this
    /// node's channels again, and make the shared state agree with our members. Then serve.
    async fn recover(self: Arc<Self>) {
        match self.reregister().await {
            Ok(()) => {
                self.available.store(true, Ordering::SeqCst);
                self.registered.notify_waiters();
                tracing::info!("registered with the cluster as {}", self.id);
            }
            Err(Unavailable) => tracing::debug!("re-registration interrupted"),
        }
    }

    async fn reregister(&self) -> Result<(), Unavailable> {
        self.bus.heartbeat(HEARTBEAT_TTL).await?;
        let (ack_tx, ack_rx) = oneshot::channel();
        let members: Vec<(Record, Bytes)> = {
            let state = self.lock();
            let _ = self.subscriptions.send(Subscription::Reset);
            for room in state.relay.rooms() {
                let channel = self.keys.room_channel(room);
                let _ = self.subscriptions.send(Subscription::Ensure(channel, None));
            }
            let channel = self.keys.node_channel(&self.id);
            let _ = self
                .subscriptions
                .send(Subscription::Ensure(channel, Some(ack_tx)));
            state
                .relay
                .members()
                .map(|(conn, member)| {
                    let joined = Event::Joined {
                        nickname: member.nickname.clone(),
                        room: member.room.clone(),
                    };
                    let payload = self.envelope(Kind::Joined, conn, 0, &joined).1;
                    let session = state.peers.get(&conn).and_then(|p| p.session.clone());
                    (self.record_of(conn, member, 0, session), payload)
                })
                .collect()
        };
        ack_rx.await.map_err(|_| Unavailable)??;
        let conflicts = self.bus.reregister(&members).await?;
        let frame = error_frame(
            ErrorCode::NicknameTaken,
            "this node lost touch with the cluster and your nickname was taken meanwhile; \
             reconnect and join again",
        );
        for conn in conflicts {
            self.evict(ConnId(conn), frame.clone());
        }
        Ok(())
    }

    /// Someone else holds this member's nickname now: the newer claim wins, and this
    /// connection is told `frame` and closed (a WebSocket one with 1008, policy). Its claim is
    /// not released: it is not its own any more.
    fn evict(&self, conn: ConnId, frame: Frame) {
        let mut out = Vec::new();
        let mut state = self.lock();
        self.push(&mut state, conn, frame);
        if let Some(outlet) = Self::forget(&mut state, conn) {
            outlet.close_with(CloseCode::Policy, "nickname_taken");
        }
        state.relay.remove(conn, &mut out);
        self.carry_out(&mut state, out);
    }

    /// Subscribes and unsubscribes, in the order asked. Requests that queued up while the
    /// previous batch was out are taken together: for each channel only the last wish counts,
    /// and one `UNSUBSCRIBE` and one `SUBSCRIBE` carry the whole batch (a thousand clients
    /// joining a thousand rooms cost a few round trips, not a thousand).
    pub async fn subscriber(self: Arc<Self>, mut queue: SubscriptionQueue) {
        let mut subscribed: HashSet<String> = HashSet::new();
        while let Some(first) = queue.0.recv().await {
            let mut batch = vec![first];
            while batch.len() < SUBSCRIPTION_BATCH {
                match queue.0.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            // The last wish per channel, in order; `Reset` forgets what the old connection had.
            let mut wanted: HashMap<String, bool> = HashMap::new();
            let mut acks = Vec::new();
            for request in batch {
                match request {
                    Subscription::Ensure(channel, ack) => {
                        wanted.insert(channel, true);
                        acks.extend(ack);
                    }
                    Subscription::Release(channel) => {
                        wanted.insert(channel, false);
                    }
                    Subscription::Reset => subscribed.clear(),
                }
            }
            let (on, off): (Vec<_>, Vec<_>) = wanted.into_iter().partition(|(_, want)| *want);
            let off: Vec<String> = off
                .into_iter()
                .map(|(channel, _)| channel)
                .filter(|channel| subscribed.contains(channel))
                .collect();
            let on: Vec<String> = on
                .into_iter()
                .map(|(channel, _)| channel)
                .filter(|channel| !subscribed.contains(channel))
                .collect();
            if !off.is_empty() {
                for channel in &off {
                    subscribed.remove(channel);
                }
                let _ = self.bus.unsubscribe(&off).await;
            }
            let result = if on.is_empty() {
                Ok(())
            } else {
                self.bus.subscribe(&on).await
            };
            if result.is_ok() {
                subscribed.extend(on);
            }
            for ack in acks {
                let _ = ack.send(result);
            }
        }
    }

    /// The heartbeat and the reaper, every [`HEARTBEAT_EVERY`], until `stop`.
    pub async fn liveness(self: Arc<Self>, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(HEARTBEAT_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.cancelled() => return,
            }
            if !self.bus.is_up() {
                continue;
            }
            let started = std::time::Instant::now();
            let reaped = match self.bus.heartbeat(HEARTBEAT_TTL).await {
                Ok(reaped) => reaped,
                Err(_) => continue,
            };
            if started.elapsed() > HEARTBEAT_TTL / 4 {
                // An overloaded node or Redis: a little more and the others reap us.
                tracing::warn!("the heartbeat took {:?}", started.elapsed());
            }
            if reaped && self.is_available() {
                // We were declared dead while alive (stalled past the TTL): our members got
                // `left` and lost their claims. Claim them again, with a `joined` each.
                tracing::warn!("this node was reaped while alive; registering again");
                self.available.store(false, Ordering::SeqCst);
                tokio::spawn(Arc::clone(&self).recover());
            }
            match self.bus.reap().await {
                Ok(reaped) if !reaped.is_empty() => {
                    tracing::info!("reaped dead nodes: {}", reaped.join(", "));
                }
                _ => {}
            }
        }
    }
}

//! The bus on Redis: two connections per node, and the Lua scripts of `scripts.rs`.
//!
//! - A **multiplexed command connection** (`MultiplexedConnection`): every task of the node
//!   sends its commands on this one socket without waiting for the others' replies. That is
//!   *pipelining*: with 10,000 clients chatting, hundreds of `PUBLISH`es are in flight on one
//!   connection, and each costs a fraction of a round trip.
//! - A **pub/sub connection**, split into a sink (`SUBSCRIBE`/`UNSUBSCRIBE`, each awaited
//!   until Redis confirms it) and a stream of messages. A connection in subscribed mode can do
//!   nothing else in RESP2, hence the second socket.
//!
//! - A third, small **control connection** for the heartbeat and the reaper. Replies on one
//!   connection come back in order, so on the busy command connection a heartbeat would wait
//!   behind every command queued before it: a node busy with thousands of joins could miss
//!   its own heartbeat and be declared dead. On its own connection it waits for nobody.
//!
//! [`RedisBus::maintain`] owns the connecting: it connects both, reports `Up`, forwards every
//! message, and when either connection fails (the stream ends, or a command reports a broken
//! connection) it reports `Down` and reconnects with exponential backoff (50 ms doubling up to
//! 2 s). Nothing here remembers subscriptions or members across a reconnection: the node
//! re-asserts them on `Up`, because a restarted Redis has forgotten them too.

use super::{scripts, BusEvent, BusResult, Record, Unavailable};

mod commands;
use crate::keys::{owner_prefix, Keys, Owner};
use bytes::Bytes;
use chat_core::names::fold;
use futures_util::StreamExt;
use redis::aio::{MultiplexedConnection, PubSubSink};
use redis::io::tcp::TcpSettings;
use redis::{AsyncConnectionConfig, IntoConnectionInfo, RedisError, RedisResult, Script};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long connecting may take before Redis counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the heartbeat may wait for its reply before Redis counts as unreachable. A Redis
/// that died resets its connections at once; this catches a Redis that hangs, or a network
/// that drops packets. Only the heartbeat decides: an ordinary command that is slow (a node
/// or a Redis starved of CPU) just waits, since giving up on it would not undo it, and
/// reconnecting would only add the cost of re-registering to an overloaded node.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

/// The first wait before reconnecting, doubled after each failure...
const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// ...up to this.
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// How long a reaped node's tombstone lasts: longer than any outage it could come back from.
const TOMBSTONE: Duration = Duration::from_secs(3600);

/// Members re-asserted per script call: keeps each script short, so Redis stays responsive to
/// the other nodes while a big node re-registers.
const CHUNK: usize = 500;

/// The Redis bus of one node.
pub struct RedisBus {
    /// Where Redis is (`--redis`).
    client: redis::Client,
    /// Key and channel names under `--redis-prefix`.
    keys: Keys,
    /// This node's id: in claims, records and the heartbeat.
    node: String,
    /// The live connections, `None` while down.
    link: Mutex<Link>,
    /// Whether `link` holds live connections (read without the lock by `/health`).
    up: AtomicBool,
    scripts: Scripts,
}

#[derive(Default)]
struct Link {
    commands: Option<MultiplexedConnection>,
    /// The heartbeat's and the reaper's own connection.
    control: Option<MultiplexedConnection>,
    subscriptions: Option<PubSubSink>,
    /// Cancelled when a command on *these* connections saw them fail: tells
    /// [`RedisBus::maintain`] to reconnect. (A token per connection, so that a late failure of
    /// an old connection's command cannot break a new connection.)
    lost: CancellationToken,
}

/// The scripts, compiled once (each knows its SHA).
struct Scripts {
    heartbeat: Script,
    join: Script,
    leave: Script,
    rename: Script,
    moving: Script,
    private: Script,
    rooms: Script,
    reap: Script,
    release_stale: Script,
    assert: Script,
}

impl RedisBus {
    /// A bus for `node` on the Redis at `url`. Nothing connects until [`RedisBus::maintain`]
    /// runs.
    pub fn new(url: &str, keys: Keys, node: &str) -> anyhow::Result<Self> {
        let info = url
            .into_connection_info()
            .map_err(|e| anyhow::anyhow!("--redis {url}: not a Redis URL ({e})"))?
            // TCP_NODELAY: pipelined commands are small writes; with Nagle's algorithm on, a
            // write waits for the ACK of the previous one (up to 40 ms of delayed ACK).
            .set_tcp_settings(TcpSettings::default().set_nodelay(true));
        let client =
            redis::Client::open(info).map_err(|e| anyhow::anyhow!("--redis {url}: {e}"))?;
        Ok(RedisBus {
            client,
            keys,
            node: node.to_string(),
            link: Mutex::new(Link::default()),
            up: AtomicBool::new(false),
            scripts: Scripts {
                heartbeat: Script::new(scripts::HEARTBEAT),
                join: Script::new(&scripts::join()),
                leave: Script::new(scripts::LEAVE),
                rename: Script::new(scripts::RENAME),
                moving: Script::new(scripts::MOVE),
                private: Script::new(scripts::PRIVATE),
                rooms: Script::new(scripts::ROOMS),
                reap: Script::new(&scripts::reap()),
                release_stale: Script::new(&scripts::release_stale()),
                assert: Script::new(scripts::ASSERT),
            },
        })
    }

    /// Connects, reports `Up`, forwards messages, and reconnects after a failure, until
    /// `stop`. Run it as a task.
    pub async fn maintain(&self, events: mpsc::Sender<BusEvent>, stop: CancellationToken) {
        let mut backoff = BACKOFF_MIN;
        let mut outage_logged = false;
        loop {
            match self.connect().await {
                Ok((stream, lost)) => {
                    tracing::info!("connected to Redis");
                    outage_logged = false;
                    backoff = BACKOFF_MIN;
                    if !self.forward(stream, lost, &events, &stop).await {
                        return;
                    }
                    tracing::warn!("lost the connection to Redis; reconnecting");
                }
                Err(e) if !outage_logged => {
                    tracing::warn!("cannot reach Redis ({e}); retrying with backoff");
                    outage_logged = true;
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.cancelled() => return,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Opens both connections; on success the command side is live and the message stream is
    /// returned.
    async fn connect(&self) -> RedisResult<(redis::aio::PubSubStream, CancellationToken)> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(None);
        let commands = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let control = self
            .client
            .get_multiplexed_async_connection_with_config(
                &config.set_response_timeout(Some(CONTROL_TIMEOUT)),
            )
            .await?;
        let pubsub = tokio::time::timeout(CONNECT_TIMEOUT, self.client.get_async_pubsub())
            .await
            .map_err(|_| RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut)))??;
        let (sink, stream) = pubsub.split();
        let lost = CancellationToken::new();
        *self.lock() = Link {
            commands: Some(commands),
            control: Some(control),
            subscriptions: Some(sink),
            lost: lost.clone(),
        };
        Ok((stream, lost))
    }

    /// Reports `Up`, then forwards messages until the connection fails (returns `true`: go
    /// reconnect) or `stop` (returns `false`). Reports `Down` on the way out.
    async fn forward(
        &self,
        mut stream: redis::aio::PubSubStream,
        lost: CancellationToken,
        events: &mpsc::Sender<BusEvent>,
        stop: &CancellationToken,
    ) -> bool {
        self.up.store(true, Ordering::SeqCst);
        metrics::gauge!("chat_redis_up").set(1.0);
        let mut carry_on = events.send(BusEvent::Up).await.is_ok();
        while carry_on {
            tokio::select! {
                message = stream.next() => match message {
                    Some(message) => {
                        let event = BusEvent::Message {
                            channel: message.get_channel_name().to_string(),
                            payload: Bytes::copy_from_slice(message.get_payload_bytes()),
                        };
                        carry_on = events.send(event).await.is_ok();
                    }
                    None => {
                        tracing::warn!("Redis closed the subscription connection");
                        break;
                    }
                },
                _ = lost.cancelled() => break,
                _ = stop.cancelled() => carry_on = false,
            }
        }
        self.up.store(false, Ordering::SeqCst);
        metrics::gauge!("chat_redis_up").set(0.0);
        *self.lock() = Link::default();
        let _ = events.send(BusEvent::Down).await;
        carry_on
    }

    fn lock(&self) -> MutexGuard<'_, Link> {
        self.link.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The command connection (a cheap clone: a handle on the shared socket), and the token
    /// to cancel if it fails.
    fn commands(&self) -> BusResult<(MultiplexedConnection, CancellationToken)> {
        let link = self.lock();
        let commands = link.commands.clone().ok_or(Unavailable)?;
        Ok((commands, link.lost.clone()))
    }

    /// The control connection, for the heartbeat and the reaper.
    fn control(&self) -> BusResult<(MultiplexedConnection, CancellationToken)> {
        let link = self.lock();
        let control = link.control.clone().ok_or(Unavailable)?;
        Ok((control, link.lost.clone()))
    }

    fn subscriptions(&self) -> BusResult<(PubSubSink, CancellationToken)> {
        let link = self.lock();
        let sink = link.subscriptions.clone().ok_or(Unavailable)?;
        Ok((sink, link.lost.clone()))
    }

    /// Turns a Redis result into ours: a broken connection wakes [`RedisBus::maintain`] to
    /// reconnect; anything else (a script error: a bug) is logged. Either way the client
    /// hears `unavailable`.
    fn settle<T>(
        &self,
        lost: &CancellationToken,
        started: Instant,
        result: RedisResult<T>,
    ) -> BusResult<T> {
        metrics::histogram!("chat_redis_round_trip_seconds").record(started.elapsed());
        result.map_err(|e| {
            if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                if !lost.is_cancelled() {
                    tracing::warn!("a Redis command failed: {e}");
                }
                lost.cancel();
            } else {
                tracing::error!("Redis refused a command: {e}");
            }
            Unavailable
        })
    }

    /// The JSON record kept in `P node:<id>` for a member (see `scripts.rs`).
    fn record_json(&self, record: &Record) -> String {
        serde_json::json!({
            "fold": fold(&record.nickname),
            "nickname": record.nickname,
            "room": record.room,
            "owner": owner_prefix(&self.node, record.conn),
            "left": String::from_utf8_lossy(&record.left),
            "session": record.session,
        })
        .to_string()
    }

    fn owner(&self, record: &Record) -> Owner {
        Owner {
            node: self.node.clone(),
            conn: record.conn,
            nickname: record.nickname.clone(),
        }
    }
}

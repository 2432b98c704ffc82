//! # chat-cluster: one chat across many processes and machines
//!
//! Every other server of this workspace keeps the chat in its own memory, so a room ends at
//! the edge of one process, and one process holds at most as many clients as it has file
//! descriptors. chat-cluster is chat-async's I/O model (tokio, a reader and a writer task per
//! connection) with the chat's *shared* state moved out of the process, into Redis:
//!
//! ```text
//! clients -> (load balancer) -> chat-cluster nodes -> Redis pub/sub (routing) + Redis (state)
//! ```
//!
//! ## Where each piece of state lives, and why
//! | state | where | why there |
//! |---|---|---|
//! | a connection's socket, decoder, outbound queue, rate bucket | its node | only its node touches it |
//! | who receives a room's frames on this node | the node's [`relay::Relay`] | delivery is local work |
//! | nickname claims, room members, the room list | Redis keys (`keys.rs`) | must agree cluster-wide, atomically |
//! | a room's order | the room's Redis channel | one channel = one order, seen alike by every node |
//! | which nodes are alive | heartbeat keys with a TTL | a dead node cannot say it died |
//!
//! ## How the guarantees cross nodes
//! - **One order per room** (guarantee 2): every `broadcast`, `joined`, `left` and `renamed`
//!   is published on the room's channel, *including* the sender's own copy; every node delivers
//!   what Redis delivers, in Redis's order. A sender's request completes when its own envelope
//!   comes back ([`session`], [`relay`]).
//! - **Nothing lost after `welcome`** (guarantee 3): the node subscribes to the room's channel
//!   *before* the join script publishes `joined`; the joiner receives everything after its own
//!   `joined`, held until its `welcome` is out ([`relay`]).
//! - **Unique nicknames**: a claim key per lowercase nickname, taken with the join script's
//!   `EXISTS`/`SET` inside Redis's one-script-at-a-time execution ([`bus`]).
//! - **A dead node's members leave**: each node refreshes a heartbeat key (TTL 7 s) every
//!   second and reaps nodes whose key expired, in one atomic script ([`node`]).
//! - **Redis goes away**: clients stay connected; requests that need the cluster are answered
//!   `unavailable` (nothing happened, retry later); the bus reconnects with backoff and the
//!   node re-registers every member, because a restarted Redis has forgotten them ([`node`]).
//!
//! - **WebSocket** (PROTOCOL.md, section 9): a browser connects to `/ws` on the HTTP port; after
//!   the upgrade the socket is a chat connection like the chat port's, with the same session,
//!   queue, writer and limits, and WebSocket messages instead of lines ([`websocket`]). TCP and
//!   WebSocket clients share rooms: the node does not tell them apart beyond framing.
//!
//! ## Files
//! | file | concept |
//! |---|---|
//! | `lib.rs` (this file) | the accept loop and shutdown, as in chat-async |
//! | [`connection`] | a connection's reader task, for both transports; the writer is chat-async's `outbound` |
//! | [`transport`], [`websocket`] | how bytes become frames: lines (TCP) or WebSocket messages (`websocket/decoder.rs`); the upgrade |
//! | [`outlet`] | how frames become bytes: as they are (TCP), or as WebSocket text messages |
//! | [`session`] | one connection's requests, one at a time, each an `async fn` |
//! | [`relay`] | the node's delivery rules, sans-I/O: envelopes in, frames out |
//! | [`node`] | the shared state, the limits; `node/tasks.rs`: the pump, subscriber, recovery and liveness tasks |
//! | [`bus`] | the [`bus::Bus`] trait; Redis behind it: connections and reconnecting (`bus/redis.rs`), the operations (`bus/redis/commands.rs`), the Lua scripts (`bus/scripts.rs`); or the process's own memory (`bus/memory.rs`, `--redis memory`) |
//! | [`envelope`], [`keys`] | what travels on channels; every key and channel name |
//! | [`http`] | `/health`, `/metrics`, `/ws` and the browser client (`web/`) on hyper and axum |
//! | [`prefork`] | `--processes N`: a supervisor and its workers on one port |
//! | [`args`], `main.rs` | flags, the runtime, signals |
//!
//! ## Run it, poke it
//! ```text
//! cargo run --release -p chat-cluster -- --redis memory    # one node, no Redis: then open
//!                                                          # http://127.0.0.1:8080/
//! redis-server --port 6379 --save '' --appendonly no &
//! cargo run --release -p chat-cluster -- --addr 127.0.0.1:8001 --http-addr 127.0.0.1:9001 &
//! cargo run --release -p chat-cluster -- --addr 127.0.0.1:8002 --http-addr 127.0.0.1:9002 &
//! nc 127.0.0.1 8001     # {"type":"join","nickname":"ada"}
//! nc 127.0.0.1 8002     # {"type":"join","nickname":"bob"}: ada gets `joined`
//! curl -s 127.0.0.1:9001/health
//! redis-cli monitor     # every claim, script and PUBLISH, live
//! ```

pub mod args;
pub mod bus;
pub mod connection;
pub mod envelope;
pub mod http;
pub mod keys;
pub mod node;
pub mod outlet;
pub mod prefork;
pub mod relay;
pub mod session;
pub mod transport;
pub mod websocket;

use bus::memory::MemoryBus;
use bus::redis::RedisBus;
use bus::Bus;
use chat_core::{net, ServerArgs};
use keys::Keys;
use node::{Limits, Node};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// `--redis memory`: no Redis, one node with its bus in its own memory.
pub const MEMORY: &str = "memory";

/// How long accepting pauses when the process is out of file descriptors.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Between the stop signal and giving up on connections still closing (inside the spec's 2 s).
const STOP_GRACE: Duration = Duration::from_millis(1200);

/// Envelopes buffered between the bus and the node's pump.
const EVENT_QUEUE: usize = 4096;

/// At start, how long the node waits to register with the cluster before it announces its
/// address anyway (and answers `unavailable` until Redis can be reached).
const START_WAIT: Duration = Duration::from_secs(5);

/// Everything a node needs to run, besides its listeners.
pub struct NodeConfig {
    /// The common server flags: limits and socket options, for both transports.
    pub server: ServerArgs,
    /// `--node-id`: this node's name in the cluster.
    pub node_id: String,
    /// `--redis`: a Redis URL, or [`MEMORY`].
    pub redis_url: String,
    /// `--redis-prefix`: in front of every key and channel.
    pub redis_prefix: String,
    /// The worker index under `--processes` (reported by `/health`).
    pub worker: Option<usize>,
    /// Renders `/metrics`; `None` serves no HTTP.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Called once the node has registered with the cluster (or gave up waiting): prints
    /// `listening on`, so that a client that read it is served.
    pub announce: Option<Box<dyn FnOnce() + Send>>,
}

/// Runs a node until `stop`, on Redis or, with `--redis memory`, on a bus of its own: serves
/// `listener` (and `http`), then shuts down gracefully.
pub async fn run(
    listener: TcpListener,
    http: Option<TcpListener>,
    config: NodeConfig,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let keys = Keys::new(&config.redis_prefix);
    let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
    if config.redis_url == MEMORY {
        let bus = Arc::new(MemoryBus::new(keys.clone(), &config.node_id, events_tx));
        serve(bus, events, keys, listener, http, config, stop).await;
        return Ok(());
    }
    let bus = Arc::new(RedisBus::new(
        &config.redis_url,
        keys.clone(),
        &config.node_id,
    )?);
    let bus_stop = CancellationToken::new();
    let maintain = {
        let bus = Arc::clone(&bus);
        let bus_stop = bus_stop.clone();
        tokio::spawn(async move { bus.maintain(events_tx, bus_stop).await })
    };
    serve(bus, events, keys, listener, http, config, stop).await;
    bus_stop.cancel();
    let _ = maintain.await;
    Ok(())
}

/// The node on any [`Bus`]: starts its tasks, accepts until `stop`, shuts down.
pub async fn serve<B: Bus>(
    bus: Arc<B>,
    events: mpsc::Receiver<bus::BusEvent>,
    keys: Keys,
    listener: TcpListener,
    http: Option<TcpListener>,
    mut config: NodeConfig,
    stop: CancellationToken,
) {
    let limits = Limits {
        max_conns: config.server.max_conns,
        max_conns_per_ip: config.server.max_conns_per_ip,
    };
    let (node, queue) = Node::new(&config.node_id, bus, keys, limits);
    // Every connection's tasks, TCP and WebSocket: the shutdown waits for them all.
    let tasks = TaskTracker::new();
    let background = TaskTracker::new();
    background.spawn(Arc::clone(&node).pump(events));
    background.spawn(Arc::clone(&node).subscriber(queue));
    background.spawn(Arc::clone(&node).liveness(stop.clone()));
    if let (Some(listener), Some(metrics)) = (http, config.metrics.clone()) {
        let state = http::Http {
            node: Arc::clone(&node),
            metrics,
            started: Instant::now(),
            worker: config.worker,
            connections: tasks.clone(),
            server: config.server.clone(),
        };
        background.spawn(http::serve::serve(listener, state, stop.clone()));
    }
    if !node.wait_available(START_WAIT).await {
        tracing::warn!("not registered with the cluster yet; serving, `unavailable` until then");
    }
    if let Some(announce) = config.announce.take() {
        announce();
    }

    while let Some(stream) = accept(&listener, &stop).await {
        connection::start(
            &tasks,
            &node,
            stream,
            &config.server,
            connection::Transport::Lines,
        );
    }

    drop(listener);
    node.shut_down().await;
    tasks.close();
    if tokio::time::timeout(STOP_GRACE, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still closing at the end of the grace period");
    }
}

/// The next accepted socket, or `None` once `stop` is cancelled. Out of file descriptors, it
/// pauses rather than spin (see chat-async); the chat port and the HTTP port both use it.
pub async fn accept(listener: &TcpListener, stop: &CancellationToken) -> Option<TcpStream> {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.cancelled() => return None,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => return Some(stream),
            Err(e) if net::is_transient_accept_error(&e) => {}
            Err(e) => {
                tracing::warn!("accept failed: {e}; pausing for {ACCEPT_PAUSE:?}");
                tokio::select! {
                    _ = tokio::time::sleep(ACCEPT_PAUSE) => {}
                    _ = stop.cancelled() => return None,
                }
            }
        }
    }
}

//! The HTTP listener: `/health` for load balancers and people, `/metrics` for Prometheus, `/ws`
//! for WebSocket clients, and `/`, the browser client.
//!
//! Under `--processes N` every worker serves this listener on the shared port (SO_REUSEPORT,
//! like the chat port), so a request reaches one worker, and the answer is that worker's: its
//! `node` id says which. Each worker is a node of the cluster with its own connections.
//!
//! | file | what |
//! |---|---|
//! | `http/mod.rs` (this file) | the routes, `/health`, `/metrics` |
//! | [`serve`] | the accept loop: hyper serving each connection, upgrades included |
//! | `http/page.rs` | the browser client's page, script and style, built into the binary |
//! | [`crate::websocket`] | `GET /ws`: the upgrade, and the connection it becomes |

mod page;
pub mod serve;

use crate::bus::Bus;
use crate::node::Node;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chat_core::ServerArgs;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::Arc;
use std::time::Instant;
use tokio_util::task::TaskTracker;

/// What the handlers need.
pub struct Http<B> {
    /// The node: `/health` reads it, `/ws` connections join it.
    pub node: Arc<Node<B>>,
    /// Renders the metrics recorded by this process.
    pub metrics: PrometheusHandle,
    /// For `uptime_s`.
    pub started: Instant,
    /// The worker index under `--processes`.
    pub worker: Option<usize>,
    /// Where a WebSocket connection's tasks are tracked: with the chat port's, so that the
    /// shutdown waits for both kinds.
    pub connections: TaskTracker,
    /// The limits and socket options of every connection, WebSocket ones included.
    pub server: ServerArgs,
}

/// The routes.
pub fn router<B: Bus>(http: Arc<Http<B>>) -> Router {
    Router::new()
        .route("/health", get(health::<B>))
        .route("/metrics", get(metrics_text::<B>))
        .route("/ws", get(crate::websocket::upgrade::<B>))
        .route("/", get(page::index))
        .route("/app.js", get(page::script))
        .route("/app.css", get(page::style))
        .with_state(http)
}

/// Installs this process's metrics recorder (once per process), every series labelled with
/// the node id. Redis round trips get real histogram buckets, from 50 µs to 1 s.
pub fn install_metrics(node: &str) -> anyhow::Result<PrometheusHandle> {
    let buckets = [
        0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
        1.0,
    ];
    let handle = PrometheusBuilder::new()
        .add_global_label("node", node)
        .set_buckets_for_metric(
            Matcher::Full("chat_redis_round_trip_seconds".into()),
            &buckets,
        )?
        .install_recorder()?;
    describe();
    Ok(handle)
}

/// The `# HELP` lines.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!("chat_connections", "open client connections");
    describe_counter!("chat_connections_accepted_total", "connections accepted");
    describe_counter!(
        "chat_frames_in_total",
        "complete lines received from clients"
    );
    describe_counter!("chat_frames_out_total", "frames queued for clients");
    describe_counter!(
        "chat_bytes_in_total",
        Unit::Bytes,
        "bytes read from clients"
    );
    describe_counter!(
        "chat_bytes_out_total",
        Unit::Bytes,
        "bytes queued for clients"
    );
    describe_counter!(
        "chat_backlog_overflows_total",
        "clients cut off for exceeding --max-backlog"
    );
    describe_counter!("chat_errors_total", "error frames sent, by code");
    describe_counter!("chat_bus_messages_total", "envelopes received from Redis");
    describe_gauge!("chat_redis_up", "1 while connected to Redis");
    describe_histogram!(
        "chat_redis_round_trip_seconds",
        Unit::Seconds,
        "time from sending a Redis command to its reply"
    );
}

/// `GET /health`: 200 and `"status": "ok"` while the node serves the cluster; 503 and
/// `"degraded"` while Redis is down (the node still holds its clients). `bus` says what
/// carries the cluster: `redis`, or `memory` for a node of its own (always `up`).
async fn health<B: Bus>(State(http): State<Arc<Http<B>>>) -> Response {
    let ok = http.node.is_available();
    let body = serde_json::json!({
        "node": http.node.id,
        "status": if ok { "ok" } else { "degraded" },
        "connections": http.node.connections(),
        "redis": if http.node.bus.is_up() { "up" } else { "down" },
        "bus": B::KIND,
        "uptime_s": http.started.elapsed().as_secs(),
        "pid": std::process::id(),
        "worker": http.worker,
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// `GET /metrics`: the Prometheus text format.
async fn metrics_text<B: Bus>(State(http): State<Arc<Http<B>>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        http.metrics.render(),
    )
        .into_response()
}

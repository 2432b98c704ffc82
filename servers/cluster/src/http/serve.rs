//! The HTTP accept loop: each connection served by hyper's HTTP/1 server, upgrades included.
//!
//! `axum::serve` would do this for us, but it wraps each socket in a type of its own, and a
//! WebSocket upgrade could then only hand back an opaque stream. Serving the connection with
//! hyper directly, on `TokioIo<TcpStream>`, lets the `/ws` handler get the very `TcpStream`
//! back after the `101 Switching Protocols` (`Upgraded::downcast`), so a WebSocket connection
//! is a socket like the chat port's, written by the same writer task.

use super::{router, Http};
use crate::bus::Bus;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A client has this long to send its request's headers (a slow client must not hold a
/// socket for nothing).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the metrics' histograms are folded into their buckets.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// Serves HTTP until `stop`; then lets requests in progress finish (upgraded connections are
/// no longer HTTP: the node's shutdown closes them).
pub async fn serve<B: Bus>(listener: TcpListener, http: Http<B>, stop: CancellationToken) {
    let http = Arc::new(http);
    let upkeep = {
        let metrics = http.metrics.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(METRICS_UPKEEP) => metrics.run_upkeep(),
                    _ = stop.cancelled() => return,
                }
            }
        })
    };
    let service = TowerToHyperService::new(router(Arc::clone(&http)));
    let requests = TaskTracker::new();
    while let Some(stream) = crate::accept(&listener, &stop).await {
        let service = service.clone();
        let stop = stop.clone();
        requests.spawn(async move {
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                tracing::debug!("HTTP: {e}");
            }
        });
    }
    requests.close();
    let _ = tokio::time::timeout(Duration::from_secs(1), requests.wait()).await;
    upkeep.abort();
}

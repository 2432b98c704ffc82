//! The idle timeout: one task sleeps until the Hub's next deadline, then ticks it.
//!
//! The Hub keeps every connection's deadline in a heap and [`Hub::tick`](chat_core::Hub::tick)
//! says when it next has work, so one timer serves 10,000 connections (rather than a timeout
//! around each connection's `read`, which would re-arm a timer on every request).
//! The clock is tokio's: under `tokio::time::pause()` the tests move it by hand and the ticker
//! follows, so a 120-second timeout is tested in no real time at all.

use crate::shared::Shared;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Ticks the Hub until `stop` is cancelled. Returns at once without an idle timeout.
pub async fn run(shared: Arc<Shared>, idle_timeout: Option<Duration>, stop: CancellationToken) {
    let Some(timeout) = idle_timeout else { return };
    loop {
        let now = Instant::now();
        // With no deadline pending, look again one timeout from now: a connection that arrives
        // later cannot be due before then.
        let next = match shared.tick(now.into_std()) {
            Some(deadline) => Instant::from_std(deadline),
            None => now + timeout,
        };
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stop.cancelled() => return,
        }
    }
}

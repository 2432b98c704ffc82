//! chat-epoll against the protocol's conformance suite (`loadgen::check`), level- and
//! edge-triggered, plus the process-level behaviours: graceful shutdown and running out of
//! descriptors.

use loadgen::check::{assert_conformance, assert_graceful_shutdown, assert_survives_fd_exhaustion};
use std::path::Path;

fn program() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_chat-epoll"))
}

/// Every conformance scenario passes level-triggered (the default).
#[test]
fn level_triggered_passes_conformance() {
    assert_conformance(program(), &["--trigger", "level"], false);
}

/// Every conformance scenario passes edge-triggered (reads and accepts until EAGAIN).
#[test]
fn edge_triggered_passes_conformance() {
    assert_conformance(program(), &["--trigger", "edge"], false);
}

/// Every conformance scenario passes when each frame is written as soon as it is queued
/// (`--flush per-frame`, the measurement mode): batching is an optimisation, not a semantic.
#[test]
fn per_frame_flush_passes_conformance() {
    assert_conformance(program(), &["--flush", "per-frame"], false);
}

/// SIGTERM wakes epoll_wait through the self-pipe: every client gets `shutting_down` and EOF,
/// and the process exits 0 within 2 s.
#[test]
fn level_triggered_shuts_down_gracefully() {
    assert_graceful_shutdown(program(), &["--trigger", "level"], 5);
}

/// The same edge-triggered (the wake pipe is drained until EAGAIN).
#[test]
fn edge_triggered_shuts_down_gracefully() {
    assert_graceful_shutdown(program(), &["--trigger", "edge"], 5);
}

/// With 64 descriptors, EMFILE on accept is met with the spare descriptor (accept, refuse,
/// close): the joined client keeps chatting, the loop does not spin, and new clients get in
/// once descriptors are free again.
#[test]
fn level_triggered_survives_fd_exhaustion() {
    assert_survives_fd_exhaustion(program(), &["--trigger", "level"]);
}

/// The same edge-triggered, where a listener left with pending connections would never be
/// reported again.
#[test]
fn edge_triggered_survives_fd_exhaustion() {
    assert_survives_fd_exhaustion(program(), &["--trigger", "edge"]);
}

//! chat-poll against the protocol's conformance suite (`loadgen::check`), with both backends,
//! plus the process-level behaviours: graceful shutdown and running out of descriptors.

use loadgen::check::{assert_conformance, assert_graceful_shutdown, assert_survives_fd_exhaustion};
use std::path::Path;

fn program() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_chat-poll"))
}

/// Every conformance scenario passes with `--backend poll` (the default).
#[test]
fn poll_backend_passes_conformance() {
    assert_conformance(program(), &["--backend", "poll"], false);
}

/// Every conformance scenario passes with `--backend select`.
#[test]
fn select_backend_passes_conformance() {
    assert_conformance(program(), &["--backend", "select"], false);
}

/// SIGTERM wakes the poll loop through its self-pipe: every client gets `shutting_down` and
/// EOF, and the process exits 0 within 2 s.
#[test]
fn poll_backend_shuts_down_gracefully() {
    assert_graceful_shutdown(program(), &["--backend", "poll"], 5);
}

/// The same through select(2).
#[test]
fn select_backend_shuts_down_gracefully() {
    assert_graceful_shutdown(program(), &["--backend", "select"], 5);
}

/// With 64 descriptors, a flood of connections is refused through the spare descriptor: the
/// joined client keeps chatting, the loop does not spin on a readable listener, and new
/// clients get in once descriptors are free again.
#[test]
fn poll_backend_survives_fd_exhaustion() {
    assert_survives_fd_exhaustion(program(), &["--backend", "poll"]);
}

/// The same with select(2).
#[test]
fn select_backend_survives_fd_exhaustion() {
    assert_survives_fd_exhaustion(program(), &["--backend", "select"]);
}

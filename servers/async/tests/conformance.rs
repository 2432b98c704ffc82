//! chat-async against the shared conformance checker and the process-level checks.

use loadgen::check::{assert_conformance, assert_graceful_shutdown, assert_survives_fd_exhaustion};
use std::path::Path;

fn program() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_chat-async"))
}

/// Every scenario of the protocol passes on a two-thread runtime.
#[test]
fn passes_the_conformance_suite() {
    assert_conformance(program(), &["--threads", "2"], false);
}

/// SIGTERM cancels the token: every client gets `shutting_down` then EOF, and the process
/// exits 0 within 2 s.
#[test]
fn shuts_down_gracefully() {
    assert_graceful_shutdown(program(), &["--threads", "2"], 20);
}

/// Out of file descriptors: the accept loop pauses instead of spinning, existing clients keep
/// chatting, and accepting resumes once descriptors are free.
#[test]
fn survives_fd_exhaustion() {
    assert_survives_fd_exhaustion(program(), &["--threads", "2"]);
}

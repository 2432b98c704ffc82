//! chat-reactor against the shared conformance checker and the process-level checks.

use loadgen::check::{assert_conformance, assert_graceful_shutdown, assert_survives_fd_exhaustion};
use std::path::Path;

fn program() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_chat-reactor"))
}

/// Every scenario of the protocol passes with the hand-off: two event loops, two workers,
/// every loop turn's input handed to the workers (`--offload-min-bytes 0`).
#[test]
fn passes_the_conformance_suite_with_workers() {
    let flags = [
        "--io-threads",
        "2",
        "--workers",
        "2",
        "--offload-min-bytes",
        "0",
    ];
    assert_conformance(program(), &flags, false);
}

/// Every scenario passes without the hand-off too (`--workers 0`: the loop runs the chat rules
/// itself), the baseline the module docs measure against.
#[test]
fn passes_the_conformance_suite_without_workers() {
    assert_conformance(program(), &["--io-threads", "1", "--workers", "0"], false);
}

/// SIGTERM: every client (spread over both loops) gets `shutting_down` then EOF, and the
/// process exits 0 within 2 s (default flags otherwise).
#[test]
fn shuts_down_gracefully() {
    assert_graceful_shutdown(program(), &["--io-threads", "2", "--workers", "2"], 20);
}

/// Out of file descriptors: the loops pause accepting instead of spinning, existing clients
/// keep chatting, and accepting resumes once descriptors are free.
#[test]
fn survives_fd_exhaustion() {
    assert_survives_fd_exhaustion(program(), &["--io-threads", "2", "--workers", "2"]);
}

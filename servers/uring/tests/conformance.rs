//! chat-uring against the protocol's conformance suite (`loadgen::check`), plus the
//! process-level behaviours: graceful shutdown and running out of descriptors.

mod support;

use loadgen::check::{assert_conformance, assert_graceful_shutdown, assert_survives_fd_exhaustion};
use support::{io_uring_usable, program};

/// Every conformance scenario passes with the default buffer pool.
#[test]
fn passes_conformance() {
    if io_uring_usable("passes_conformance") {
        assert_conformance(program(), &[], false);
    }
}

/// Every conformance scenario passes with a pool of four 64-byte receive buffers: almost every
/// line spans several buffers, and receives keep finding the pool empty (`-ENOBUFS`) and being
/// armed again. Nothing is lost or reordered: the data waits in the socket meanwhile.
#[test]
fn passes_conformance_with_a_tiny_buffer_pool() {
    if io_uring_usable("passes_conformance_with_a_tiny_buffer_pool") {
        assert_conformance(program(), &["--buffers", "4", "--buffer-size", "64"], false);
    }
}

/// SIGTERM completes the read the loop keeps on its eventfd: every client gets `shutting_down`
/// and EOF, and the process exits 0 within 2 s.
#[test]
fn shuts_down_gracefully() {
    if io_uring_usable("shuts_down_gracefully") {
        assert_graceful_shutdown(program(), &[], 5);
    }
}

/// With an open-file limit of 64 the ring's file table has 64 slots. When it is full, the
/// multishot accept ends with ENFILE; the loop pauses accepting until a slot is free: the
/// joined client keeps chatting, the loop does not spin, and new clients get in again once
/// the extra connections are gone.
#[test]
fn survives_fd_exhaustion() {
    if io_uring_usable("survives_fd_exhaustion") {
        assert_survives_fd_exhaustion(program(), &[]);
    }
}

//! chat-uring against the conformance suite (`loadgen check`), the process-level checks and the
//! burst scenario (see `loadgen::model_tests!`), each skipped with the reason where io_uring is
//! not available:
//! - with the default pool of receive buffers;
//! - with a pool of four 64-byte buffers: almost every line spans several buffers, and receives
//!   keep finding the pool empty (`-ENOBUFS`) and being armed again. Nothing is lost or
//!   reordered: the data waits in the socket meanwhile.
//!
//! Running out of descriptors is running out of slots here: with an open-file limit of 64 the
//! ring's file table has 64 slots, and when it is full the multishot accept ends with ENFILE;
//! the loop pauses accepting until a slot is free, without spinning.

mod support;

loadgen::model_tests! {
    program: env!("CARGO_BIN_EXE_chat-uring"), clients: 5, guard: crate::support::io_uring_usable;
    default_pool: [];
    tiny_pool: ["--buffers", "4", "--buffer-size", "64"];
}

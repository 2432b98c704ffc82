//! chat-epoll against the conformance suite (`loadgen check`), the process-level checks and the
//! burst scenario, level- and edge-triggered, and with each frame written as soon as it is
//! queued (`--flush per-frame`: batching is an optimisation, not a semantic). See
//! `loadgen::model_tests!`.

loadgen::model_tests! {
    program: env!("CARGO_BIN_EXE_chat-epoll"), clients: 5;
    level_triggered: ["--trigger", "level"];
    edge_triggered: ["--trigger", "edge"];
    per_frame_flush: ["--flush", "per-frame"];
}

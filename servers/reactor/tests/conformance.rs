//! chat-reactor against the conformance suite (`loadgen check`), the process-level checks and
//! the burst scenario (see `loadgen::model_tests!`): with the hand-off (two event loops, two
//! workers, every loop turn's input handed to the workers), and without it (`--workers 0`: the
//! loop runs the chat rules itself).

loadgen::model_tests! {
    program: env!("CARGO_BIN_EXE_chat-reactor"), clients: 20;
    with_workers: ["--io-threads", "2", "--workers", "2", "--offload-min-bytes", "0"];
    without_workers: ["--io-threads", "1", "--workers", "0"];
}

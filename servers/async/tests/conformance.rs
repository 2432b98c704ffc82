//! chat-async against the conformance suite (`loadgen check`), the process-level checks and the
//! burst scenario, on a two-thread runtime (see `loadgen::model_tests!`).

loadgen::model_tests! {
    program: env!("CARGO_BIN_EXE_chat-async"), clients: 20;
    two_threads: ["--threads", "2"];
}

//! chat-poll against the conformance suite (`loadgen check`), the process-level checks and the
//! burst scenario, with both backends (see `loadgen::model_tests!`).

loadgen::model_tests! {
    program: env!("CARGO_BIN_EXE_chat-poll"), clients: 5;
    poll_backend: ["--backend", "poll"];
    select_backend: ["--backend", "select"];
}

//! # loadgen: the conformance checker and the load generator
//!
//! One binary, `loadgen`, with these subcommands, and a library the tests and benches reuse:
//!
//! | command | module | what it does |
//! |---|---|---|
//! | `loadgen check` | [`check`] | runs the protocol's scenarios against any server and grades it |
//! | `loadgen run` | [`run`] | drives N connections with a workload and reports QPS, latency, loss |
//! | `loadgen sweep` | [`sweep`] | runs every server model at several connection counts and charts them |
//! | `loadgen fuzz` | [`fuzz`] | attacks any server with hostile traffic while a witness checks it still answers |
//!
//! [`ws`] is the WebSocket handshake and framing that `run --transport ws`, `check --transport
//! ws` and the test server's WebSocket front share.
//! [`server_process`] starts a server binary on a free port and always stops it again, and
//! [`affinity`] pins a child process to a set of CPUs.
//! [`testkit`] is an in-process chat server with injectable faults, for testing these tools,
//! and [`testkit::TestClient`], the blocking test client every server crate's tests share.

pub mod affinity;
pub mod check;
pub mod fanout;
pub mod fuzz;
pub mod run;
pub mod server_process;
pub mod sweep;
pub mod testkit;
pub mod ws;

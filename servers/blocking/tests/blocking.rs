//! chat-blocking over real sockets: the protocol (one client at a time), and the model's lesson —
//! a second client waits in the listen backlog until the first leaves or goes idle.

use loadgen::server_process::ServerProcess;
use loadgen::testkit::TestClient;
use std::path::Path;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_chat-blocking");

/// Every single-client scenario of the conformance checker passes; the multi-client ones are
/// skipped, never passed.
#[test]
fn conformance_single_client() {
    loadgen::check::assert_conformance(Path::new(BIN), &[], true);
}

/// SIGTERM: the connected client gets `shutting_down`, the process exits 0 within 2 s.
#[test]
fn graceful_shutdown() {
    loadgen::check::assert_graceful_shutdown(Path::new(BIN), &[], 1);
}

/// Out of file descriptors: the server backs off instead of spinning or crashing.
#[test]
fn survives_fd_exhaustion() {
    loadgen::check::assert_survives_fd_exhaustion(Path::new(BIN), &[]);
}

/// `--linger 0`: after `quit` the connection is aborted at once (a RST, no `TIME-WAIT`), without
/// the short lingering close this server otherwise gives a client that quits.
#[test]
fn aborts_with_linger_zero() {
    loadgen::check::assert_aborts_with_linger_zero(Path::new(BIN), &[]);
}

/// The lesson: while one client is served, a second one is connected (the kernel completed its
/// handshake) but gets no answer; it is served as soon as the first one quits.
#[test]
fn second_client_waits_until_the_first_leaves() {
    let server = ServerProcess::spawn(BIN, ["--idle-timeout", "0"]).unwrap();
    let mut first = TestClient::connect(server.addr());
    first.send_line(r#"{"type":"join","nickname":"first"}"#);
    assert_eq!(first.recv()["type"], "welcome");

    let mut second = TestClient::join_unserved(
        server.addr(),
        "second",
        Duration::from_millis(800),
        "a single-threaded blocking server cannot answer two clients at once",
    );

    first.quit();
    assert_eq!(second.welcomed(), serde_json::json!(["second"]));
}

/// The idle timeout is what frees the server from a silent client: the waiting client is served
/// once the silent one is timed out.
#[test]
fn idle_timeout_frees_the_server() {
    let server = ServerProcess::spawn(BIN, ["--idle-timeout", "1"]).unwrap();
    // Make sure the silent client is the one being served before the next one connects.
    let mut silent = TestClient::connect_served(server.addr());

    let started = Instant::now();
    let mut waiting = TestClient::connect(server.addr());
    waiting.send_line(r#"{"type":"ping","id":1}"#);
    let timed_out = silent.recv();
    assert_eq!(timed_out["code"], "idle_timeout");
    assert_eq!(waiting.recv()["type"], "pong");
    assert!(started.elapsed() < Duration::from_secs(8));
}

//! chat-pool over real sockets: the protocol (with enough workers), and the model's lesson — at most
//! `--workers` clients are served at once; the next ones wait until a worker frees up (a client
//! leaves, or the idle timeout drops a silent one), and past `--queue` they get `server_full`.

use loadgen::server_process::ServerProcess;
use loadgen::testkit::TestClient;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_chat-pool");

// The conformance suite, graceful shutdown, fd exhaustion and the burst scenario (see
// `loadgen::model_tests!`), with more workers than the checker has clients at once.
loadgen::model_tests! {
    program: env!("CARGO_BIN_EXE_chat-pool"), clients: 8;
    enough_workers: ["--workers", "64"];
}

/// The lesson: with two workers, a third client is connected but not answered while the first
/// two are served; it is served as soon as one of them quits.
#[test]
fn third_client_waits_for_a_free_worker() {
    let server = ServerProcess::spawn(BIN, ["--workers", "2", "--idle-timeout", "0"]).unwrap();
    let mut first = TestClient::join(server.addr(), "first", "lobby");
    let mut second = TestClient::join(server.addr(), "second", "lobby");
    assert_eq!(first.recv()["type"], "joined");

    let mut third = TestClient::join_unserved(
        server.addr(),
        "third",
        Duration::from_secs(1),
        "two workers cannot serve a third client",
    );

    first.quit();
    assert_eq!(third.welcomed(), serde_json::json!(["second", "third"]));
    // The second client hears about it: the freed worker serves the third one fully.
    assert_eq!(second.recv()["type"], "left");
    assert_eq!(second.recv()["type"], "joined");
}

/// The idle timeout is what frees a worker held by a silent client: the waiting client is
/// served once the silent one is timed out.
#[test]
fn idle_timeout_frees_a_worker() {
    let server = ServerProcess::spawn(BIN, ["--workers", "1", "--idle-timeout", "2"]).unwrap();
    // Make sure the silent client holds the only worker before the next one connects.
    let mut silent = TestClient::connect_served(server.addr());

    let started = Instant::now();
    let mut waiting = TestClient::connect(server.addr());
    waiting.send_line(r#"{"type":"ping","id":1}"#);
    assert!(
        !waiting.replies_within(Duration::from_millis(800)),
        "one worker cannot serve a second client"
    );
    assert_eq!(silent.recv()["code"], "idle_timeout");
    assert!(silent.is_closed());
    let pong = waiting.recv();
    assert_eq!(pong["type"], "pong");
    assert_eq!(pong["id"], 1);
    assert!(started.elapsed() < Duration::from_secs(9));
}

/// Past the served clients and `--queue` waiting ones, a client is refused with `server_full`
/// at once; the waiting one is still served when the worker frees up.
#[test]
fn full_queue_answers_server_full() {
    let server = ServerProcess::spawn(BIN, ["--workers", "1", "--queue", "1"]).unwrap();
    let mut served = TestClient::join(server.addr(), "served", "lobby");
    let mut waiting = TestClient::connect(server.addr());
    waiting.send_line(r#"{"type":"join","nickname":"waiting"}"#);

    let mut refused = TestClient::connect(server.addr());
    let reply = refused.recv();
    assert_eq!(reply["type"], "error");
    assert_eq!(reply["code"], "server_full");
    assert!(refused.is_closed());

    served.quit();
    assert_eq!(waiting.recv()["type"], "welcome");
}

/// A refused client that spoke before reading still gets its `server_full` and an orderly
/// EOF. Closing a socket whose client has sent something unread makes the kernel answer with a
/// reset, and a reset can overtake the error line (`printf ... | nc` then prints nothing), so
/// the refusal half-closes and lingers until the client hangs up.
#[test]
fn a_refused_client_that_spoke_first_still_reads_why() {
    let server = ServerProcess::spawn(BIN, ["--workers", "1", "--queue", "1"]).unwrap();
    let mut served = TestClient::connect(server.addr());
    served.send_line(r#"{"type":"ping"}"#);
    assert_eq!(served.recv()["type"], "pong");
    let mut waiting = TestClient::connect(server.addr());
    waiting.send_line(r#"{"type":"ping"}"#);

    let mut refused = TestClient::connect(server.addr());
    refused.send_line(r#"{"type":"ping"}"#);
    // Time for the refusal, and for a reset if the server sends one, to arrive.
    std::thread::sleep(Duration::from_millis(300));
    // A reset shows as a pending socket error: poll(2) reports POLLERR, and `nc` drops the
    // connection on it without reading the line that was waiting.
    let reset = refused.writer().take_error().unwrap();
    assert!(reset.is_none(), "the refusal ended in a reset: {reset:?}");
    let reply = refused.recv();
    assert_eq!(reply["code"], "server_full");
    assert!(refused.sees_eof(), "an orderly EOF, not a reset");
}

/// SIGTERM also reaches the clients still waiting for a worker: they were accepted, so they are
/// told `shutting_down` like the served ones.
#[test]
fn shutdown_tells_waiting_clients_too() {
    let mut server = ServerProcess::spawn(BIN, ["--workers", "1"]).unwrap();
    let mut served = TestClient::join(server.addr(), "served", "lobby");
    let mut waiting = TestClient::connect(server.addr());
    waiting.send_line(r#"{"type":"join","nickname":"waiting"}"#);
    assert!(!waiting.replies_within(Duration::from_millis(300)));

    let status = server.terminate(Duration::from_secs(5)).unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "exit 0, got {status:?}"
    );
    for client in [&mut served, &mut waiting] {
        let reply = client.recv();
        assert_eq!(reply["code"], "shutting_down");
        assert!(client.is_closed());
    }
}

/// A pool larger than the thread limit does not start half-way: the process exits with an
/// error before announcing its address.
#[test]
fn more_workers_than_threads_allowed_fails_at_start() {
    let started = ServerProcess::spawn(BIN, ["--workers", "8", "--max-threads", "4"]);
    assert!(
        started.is_err(),
        "started with 8 workers and --max-threads 4"
    );
}

/// `--linger 0`: after `quit` the connection is aborted at once (a RST, no `TIME-WAIT`): the
/// worker does not wait for the client's FIN as it otherwise does (a lingering close).
#[test]
fn aborts_with_linger_zero() {
    loadgen::check::assert_aborts_with_linger_zero(std::path::Path::new(BIN), &[]);
}

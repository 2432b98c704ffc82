//! chat-threads over real sockets: the protocol, shutdown, fd exhaustion, and the model's promise —
//! 10,000 clients at once on this 2-core machine (20,000 threads), every broadcast delivered to
//! every member of its room, in order.

use loadgen::fanout::{run_rooms, FanoutSpec};
use loadgen::server_process::ServerProcess;
use loadgen::testkit::TestClient;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_chat-threads");

// The conformance suite, graceful shutdown, fd exhaustion, the burst scenario and `--linger 0`:
// see `loadgen::model_tests!`.
loadgen::model_tests! {
    program: env!("CARGO_BIN_EXE_chat-threads"), clients: 8;
    defaults: [];
}

/// The default stack is big enough for the deepest thing a reader does — parsing JSON nested as
/// deep as serde_json allows — so no client can crash the server by overflowing a thread's
/// stack (in this debug build, which needs four times the stack of a release build).
#[test]
fn deeply_nested_json_does_not_overflow_the_stack() {
    let server = ServerProcess::spawn(BIN, std::iter::empty::<&str>()).unwrap();
    let mut client = TestClient::connect(server.addr());
    for (open, close) in [("[", "]"), (r#"{"a":"#, "}")] {
        let depth = 127;
        let line = format!(
            r#"{{"type":"nested","x":{}1{}}}"#,
            open.repeat(depth),
            close.repeat(depth)
        );
        client.send_raw(format!("{line}\n").as_bytes());
        assert_eq!(client.recv()["type"], "error", "at depth {depth}");
        let too_deep = format!("{}1{}\n", open.repeat(1000), close.repeat(1000));
        client.send_raw(too_deep.as_bytes());
        assert_eq!(
            client.recv()["code"],
            "bad_request",
            "past serde_json's limit"
        );
    }
    client.send_raw(b"{\"type\":\"ping\"}\n");
    assert_eq!(client.recv()["type"], "pong");
}

/// A client that reads slower than its room talks is neither dropped nor allowed to slow the
/// room: while it does not read, a writer thread of its own holds its backlog (the sender is
/// answered at once, every time), and when it reads it receives every broadcast, in order;
/// then its writer thread ends.
#[test]
fn lagging_reader_gets_a_writer_thread_and_catches_up() {
    // Small kernel send buffers, so the backlog outgrows them quickly.
    let server =
        ServerProcess::spawn(BIN, ["--idle-timeout", "0", "--send-buffer", "4096"]).unwrap();
    let mut lagger = TestClient::join(server.addr(), "lagger", "lag");
    let mut talker = TestClient::join(server.addr(), "talker", "lag");
    assert_eq!(lagger.recv()["type"], "joined");
    let threads_before = thread_count(server.pid());

    // About 400 KiB of broadcasts: more than the lagger's socket buffers hold, less than
    // --max-backlog (1 MiB).
    let messages = 400;
    let content = "x".repeat(1000);
    for i in 0..messages {
        let line = format!(r#"{{"type":"message","content":"{content}","id":{i}}}"#);
        talker.send_raw(format!("{line}\n").as_bytes());
        let echo = talker.recv();
        assert_eq!(
            (echo["type"].as_str(), echo["id"].as_i64()),
            (Some("broadcast"), Some(i))
        );
    }
    assert!(
        wait_for(|| thread_count(server.pid()) == threads_before + 1),
        "a writer thread waits for the lagging client ({} threads, {threads_before} before)",
        thread_count(server.pid())
    );

    for i in 0..messages {
        let broadcast = lagger.recv();
        assert_eq!(broadcast["type"], "broadcast");
        assert_eq!(broadcast["id"], i, "every broadcast, in order");
    }
    assert!(
        wait_for(|| thread_count(server.pid()) == threads_before),
        "the writer thread ends once the client caught up"
    );
}

/// When no thread can be had (here `--max-threads 3`: the idle timer and two clients; in
/// production the kernel's EAGAIN or `vm.max_map_count`), the next client is answered
/// `server_full` and closed while the others are served on; once a client leaves, its thread
/// is free for a newcomer.
#[test]
fn out_of_threads_answers_server_full() {
    let server = ServerProcess::spawn(BIN, ["--max-threads", "3"]).unwrap();
    let mut first = TestClient::join(server.addr(), "first", "room");
    let mut second = TestClient::join(server.addr(), "second", "room");
    assert_eq!(first.recv()["type"], "joined");

    let mut refused = TestClient::connect(server.addr());
    let reply = refused.recv();
    assert_eq!(reply["type"], "error");
    assert_eq!(reply["code"], "server_full");

    first.send_raw(b"{\"type\":\"ping\",\"id\":1}\n");
    assert_eq!(first.recv()["type"], "pong", "the others are still served");
    second.send_raw(b"{\"type\":\"quit\"}\n");
    assert_eq!(second.recv()["type"], "bye");

    // The second client's thread ends shortly after its `bye`: retry until a newcomer gets in.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut newcomer = TestClient::connect(server.addr());
        newcomer.send_raw(b"{\"type\":\"join\",\"nickname\":\"third\",\"room\":\"room\"}\n");
        let reply = newcomer.recv();
        if reply["type"] == "welcome" {
            break;
        }
        assert_eq!(reply["code"], "server_full");
        assert!(
            Instant::now() < deadline,
            "the freed thread was never reused"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The C10K promise of this model: 10,000 clients at once (two threads each), in rooms of 10,
/// every member sending; every member receives every broadcast of its room exactly once and
/// each sender's messages in order. Server and clients run in separate processes (10,000
/// descriptors each).
#[test]
fn ten_thousand_clients_in_rooms_of_ten() {
    // A small stack: 20,000 threads. (128 KiB is plenty without deeply nested JSON, even in this
    // debug build.) No idle timeout: on a busy machine the run may take a while.
    let server = ServerProcess::spawn(BIN, ["--stack-size", "128", "--idle-timeout", "0"]).unwrap();
    let report = run_rooms(server.addr(), &FanoutSpec::new(10_000, 10, 5)).unwrap();
    println!("{report:?}");
    report.assert_perfect();
}

/// Threads of process `pid`.
fn thread_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |dir| dir.count())
}

/// Polls `condition` for up to 10 s.
fn wait_for(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    condition()
}

/// A client whose line is too long gets `line_too_long` and an orderly EOF, even though it is
/// still sending: the server stops reading at the limit, and closing a socket with unread input
/// would make the kernel answer with a reset, which can overtake the error line (`nc` then
/// prints nothing). So the connection is half-closed and its input read and thrown away until
/// the client hangs up (a lingering close).
#[test]
fn a_too_long_line_is_answered_without_a_reset() {
    let server = ServerProcess::spawn(BIN, ["--max-line", "1024"]).unwrap();
    let mut client = TestClient::connect(server.addr());
    // Far past the limit, and more than the server will have read when it answers.
    client.send_raw(&vec![b'a'; 256 * 1024]);
    // Time for the answer, and for a reset if the server sends one, to arrive.
    std::thread::sleep(Duration::from_millis(300));
    let reset = client.writer().take_error().unwrap();
    assert!(reset.is_none(), "the close ended in a reset: {reset:?}");
    assert_eq!(client.recv()["code"], "line_too_long");
    client.writer().shutdown(std::net::Shutdown::Write).unwrap();
    assert!(client.sees_eof(), "an orderly EOF, not a reset");
}

//! How `chat` fails at the start: no server, or a nickname the server refuses.

mod support;

use loadgen::testkit::{nothing_listens, Faults, TestServer};
use support::{Chat, Peer};

/// With nothing listening, the client says so plainly, tells how to start a server, and exits 1
/// at once (no retries for a first connection).
#[test]
fn no_server_gives_a_clear_message_and_exit_code_1() {
    let closed = nothing_listens();
    let addr = closed.addr().to_string();

    let mut chat = Chat::spawn(&addr, "alice", &[]);
    let (lines, status) = chat.finish();
    assert_eq!(status.code(), Some(1), "stdout: {lines:?}");
    assert!(lines.is_empty(), "nothing on stdout, got {lines:?}");
    assert_eq!(
        chat.stderr().trim_end(),
        format!(
            "no chat server at {addr}: connection refused — start one with \
             `cargo run --release -p chat-blocking`"
        )
    );
}

/// A nickname already in use (ignoring case) is refused by the server: the client prints the
/// server's error and exits 1.
#[test]
fn taken_nickname_prints_the_error_and_exits_1() {
    let server = TestServer::start(Faults::default()).expect("test server");
    let _bob = Peer::join(server.addr(), "bob", "lobby");

    let mut chat = Chat::spawn(&server.addr().to_string(), "BOB", &[]);
    let (lines, status) = chat.finish();
    assert_eq!(status.code(), Some(1), "stdout: {lines:?}");
    assert_eq!(lines.len(), 1, "stdout: {lines:?}");
    assert!(
        lines[0].starts_with("!! error nickname_taken: "),
        "got {lines:?}"
    );
    assert!(chat.stderr().contains("could not join as BOB"));
}

/// A nickname that breaks the naming rules is refused the same way (`bad_nickname`, exit 1),
/// even when lines were already typed: they are never sent.
#[test]
fn bad_nickname_exits_1_without_sending_the_script() {
    let server = TestServer::start(Faults::default()).expect("test server");
    let mut bob = Peer::join(server.addr(), "bob", "lobby");

    let mut chat = Chat::spawn(
        &server.addr().to_string(),
        "a-nickname-far-longer-than-thirty-two-characters",
        &[],
    );
    chat.run_script(&["hello?"]);
    let (lines, status) = chat.finish();
    assert_eq!(status.code(), Some(1), "stdout: {lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("!! error bad_nickname: ")),
        "got {lines:?}"
    );
    assert!(bob.events_so_far().is_empty());
}

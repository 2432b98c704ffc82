//! The `chat` binary driven by a piped script, against a real server on loopback: what it sends,
//! what it prints, and that it exits 0 once the server has answered everything.

mod support;

use chat_core::{Event, Request};
use loadgen::testkit::{Faults, TestServer};
use support::{Chat, Peer};

/// A whole piped session: every command reaches the server, every reply is rendered in order,
/// and after the end of input the client waits for the last replies, quits and exits 0.
#[test]
fn piped_script_runs_every_command_and_exits_zero() {
    let server = TestServer::start(Faults::default()).expect("test server");
    let addr = server.addr().to_string();
    let mut bob = Peer::join(server.addr(), "bob", "lobby");

    let mut alice = Chat::spawn(&addr, "alice", &[]);
    alice.run_script(&[
        "hello everyone",
        "/msg bob psst, bob",
        "/users",
        "/rooms",
        "/nick alice2",
        "/join rust",
        "/users",
        "/rooms",
        "bye from rust",
    ]);
    let (lines, status) = alice.finish();
    assert_eq!(
        lines,
        [
            "-- welcome alice! you are in lobby with: alice, bob",
            "<alice> hello everyone",
            "*alice* -> bob: psst, bob",
            "-- users in lobby: alice, bob",
            "-- rooms: lobby (2)",
            "-- alice is now known as alice2",
            "-- you are now in rust with: alice2",
            "-- users in rust: alice2",
            "-- rooms: lobby (1), rust (1)",
            "<alice2> bye from rust",
            "-- bye",
        ]
    );
    assert!(status.success(), "exit status {status:?}");

    // What the other user saw: the client sent exactly what the script said.
    let seen = bob.events_so_far();
    let summary: Vec<String> = seen
        .iter()
        .map(|event| match event {
            Event::Joined { nickname, room } => format!("joined {nickname} {room}"),
            Event::Broadcast { from, content, .. } => format!("broadcast {from}: {content}"),
            Event::Private {
                from, to, content, ..
            } => format!("private {from}->{to}: {content}"),
            Event::Renamed { from, to, .. } => format!("renamed {from}->{to}"),
            Event::Left { nickname, room } => format!("left {nickname} {room}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        summary,
        [
            "joined alice lobby",
            "broadcast alice: hello everyone",
            "private alice->bob: psst, bob",
            "renamed alice->alice2",
            "left alice2 lobby",
        ]
    );
}

/// Empty lines send nothing, an unknown command prints a local error and sends nothing, and
/// `/help` lists the commands without asking the server.
#[test]
fn local_commands_and_blank_lines_send_nothing() {
    let server = TestServer::start(Faults::default()).expect("test server");
    let mut bob = Peer::join(server.addr(), "bob", "lobby");

    let mut alice = Chat::spawn(&server.addr().to_string(), "alice", &[]);
    alice.run_script(&["", "   ", "/dance wildly", "/help", "/join", "//slash"]);
    let (lines, status) = alice.finish();
    assert!(status.success(), "exit status {status:?}");
    assert!(lines.contains(&"!! unknown command /dance (type /help for the list)".to_string()));
    assert!(lines.contains(&"!! usage: /join ROOM".to_string()));
    assert!(lines.contains(&"commands:".to_string()));
    assert!(lines.iter().any(|l| l.contains("/msg NICK TEXT")));
    assert!(lines.contains(&"<alice> /slash".to_string()));

    // bob saw alice arrive, the one escaped message, and alice leave: nothing else was sent.
    let seen = bob.events_so_far();
    assert_eq!(seen.len(), 3, "bob saw {seen:?}");
    assert!(matches!(&seen[0], Event::Joined { nickname, .. } if nickname == "alice"));
    assert!(matches!(&seen[1], Event::Broadcast { content, .. } if content == "/slash"));
    assert!(matches!(&seen[2], Event::Left { nickname, .. } if nickname == "alice"));
}

/// What other users do shows up while the client is running: their messages, private messages,
/// arrivals, renames and departures, each rendered as its own line.
#[test]
fn incoming_events_are_rendered() {
    let server = TestServer::start(Faults::default()).expect("test server");
    let mut alice = Chat::spawn(&server.addr().to_string(), "alice", &[]);
    alice.expect("the welcome", |l| l.starts_with("-- welcome alice!"));

    let mut bob = Peer::join(server.addr(), "bob", "lobby");
    alice.expect("bob's arrival", |l| l == "-- bob joined lobby");
    bob.send(&Request::Message {
        content: "hi alice".into(),
        id: None,
    });
    alice.expect("bob's message", |l| l == "<bob> hi alice");
    bob.send(&Request::Private {
        to: "alice".into(),
        content: "just between us".into(),
        id: None,
    });
    alice.expect("bob's private message", |l| {
        l == "*bob* -> alice: just between us"
    });
    bob.send(&Request::Nick {
        nickname: "robert".into(),
    });
    alice.expect("bob's rename", |l| l == "-- bob is now known as robert");
    bob.send(&Request::Quit);
    alice.expect("bob's departure", |l| l == "-- robert left lobby");

    alice.end_input_and_exit_zero();
}

/// `/quit` sends `quit`, prints the server's `bye`, and exits 0 without waiting for the end of
/// input.
#[test]
fn quit_command_exits_zero() {
    let server = TestServer::start(Faults::default()).expect("test server");
    let mut alice = Chat::spawn(&server.addr().to_string(), "alice", &[]);
    alice.expect("the welcome", |l| l.starts_with("-- welcome alice!"));
    alice.type_line("/quit");
    let status = alice.wait();
    assert!(status.success(), "exit status {status:?}");
    let (lines, _) = alice.finish();
    assert_eq!(lines.last().map(String::as_str), Some("-- bye"));
}

/// Against a server that welcomes the client and then never answers, the client reports lines
/// it cannot read, and after the end of input waits a bounded time for the last replies: it
/// says so and exits 1 instead of hanging or claiming success.
#[test]
fn unanswered_end_of_input_times_out_with_exit_1() {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local addr");
    // A mute server: reads the `join`, sends one garbled line and a `welcome`, then only reads.
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut join = String::new();
        reader.read_line(&mut join).expect("read the join");
        let mut writer = stream;
        writer
            .write_all(
                b"this is not json\n{\"type\":\"welcome\",\"nickname\":\"alice\",\"room\":\"lobby\",\"users\":[\"alice\"]}\n",
            )
            .expect("write");
        // Drain until the client hangs up (bounded by its 10 s wait).
        let mut sink = String::new();
        while matches!(reader.read_line(&mut sink), Ok(n) if n > 0) {
            sink.clear();
        }
        join
    });

    let mut alice = Chat::spawn(&addr.to_string(), "alice", &[]);
    alice.run_script(&["anyone?"]);
    let (lines, status) = alice.finish();
    assert_eq!(status.code(), Some(1), "{lines:?}");
    assert_eq!(
        lines,
        [
            "!! unreadable line from the server: this is not json",
            "-- welcome alice! you are in lobby with: alice",
            "!! no reply from the server within 10 s after the end of input",
        ]
    );
    let join = server.join().expect("server thread");
    assert!(join.contains("\"type\":\"join\""), "{join}");
}

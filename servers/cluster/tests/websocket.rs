//! `/ws`: the chat protocol over WebSocket (PROTOCOL.md, section 9), against a node on its
//! in-process bus: the same frames, rules and limits as over TCP, RFC 6455's control frames and
//! closing handshake, the close codes, and TCP and WebSocket clients in one room.

mod support;

use bytes::Bytes;
use loadgen::testkit::TestClient;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::ws::{Next, WsClient, WAIT};
use support::{http_get, Node};
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::Message;

/// A WebSocket client and a TCP client share a room: joins, messages both ways in one order,
/// privates across transports, renames, and `left` when one goes.
#[test]
fn websocket_and_tcp_clients_share_a_room() {
    let node = Node::memory(&[]);
    let mut web = WsClient::join(node.http, "网页", "den");
    let mut tcp = TestClient::join(node.addr, "tcp", "den");
    let joined = web.expect("joined");
    assert_eq!(
        joined,
        json!({"type": "joined", "nickname": "tcp", "room": "den"})
    );

    for i in 0..5 {
        web.send(&json!({"type": "message", "content": format!("web {i} 🌍"), "id": i}));
        tcp.send(&json!({"type": "message", "content": format!("tcp {i}")}));
    }
    // Both see the same ten broadcasts in the same order.
    let content = |broadcast: Value| broadcast["content"].as_str().unwrap_or("").to_string();
    let seen_by_web: Vec<String> = (0..10).map(|_| content(web.expect("broadcast"))).collect();
    let seen_by_tcp: Vec<String> = (0..10).map(|_| content(tcp.expect("broadcast"))).collect();
    assert_eq!(seen_by_web, seen_by_tcp);

    tcp.send(&json!({"type": "private", "to": "网页", "content": "psst"}));
    tcp.expect("private");
    let private = web.expect("private");
    assert_eq!(private["from"], "tcp");
    assert_eq!(private["content"], "psst");

    web.send(&json!({"type": "nick", "nickname": "web"}));
    assert_eq!(web.expect("renamed")["to"], "web");
    assert_eq!(tcp.expect("renamed")["from"], "网页");

    web.send(&json!({"type": "list_users"}));
    assert_eq!(
        web.expect("users"),
        json!({"type": "users", "room": "den", "users": ["tcp", "web"]})
    );
    web.send(&json!({"type": "quit"}));
    web.expect("bye");
    web.expect_close(1000);
    tcp.expect("left");
}

/// One message is one frame: a final newline is allowed, an empty message is skipped like an
/// empty line, a binary message and text that is not UTF-8 are `bad_request` and the
/// connection stays open, and a long message is fine up to `--max-line` (newline counted as a
/// line's).
#[test]
fn one_message_is_one_frame() {
    let node = Node::memory(&["--max-line", "4096"]);
    let mut client = WsClient::connect(node.http, "", "framer").expect("connect");
    client.send_message(Message::text("{\"type\":\"ping\",\"id\":1}\n"));
    assert_eq!(client.recv(), json!({"type": "pong", "id": 1}));
    client.send_message(Message::text(""));
    client.send_message(Message::binary(Bytes::from_static(b"{\"type\":\"ping\"}")));
    client.expect_error("bad_request");
    let invalid = Frame::message(
        Bytes::from_static(b"{\"type\":\"ping\",\"id\":\"\xff\"}"),
        OpCode::Data(Data::Text),
        true,
    );
    client.send_message(Message::Frame(invalid));
    client.expect_error("bad_request");
    client.send_message(Message::text("not json"));
    client.expect_error("bad_request");
    // A message sent in three fragments is one message.
    for (i, part) in ["{\"type\":", "\"ping\",", "\"id\":2}"].iter().enumerate() {
        let opcode = if i == 0 { Data::Text } else { Data::Continue };
        let fragment = Frame::message(part.to_string(), OpCode::Data(opcode), i == 2);
        client.send_message(Message::Frame(fragment));
    }
    assert_eq!(client.recv(), json!({"type": "pong", "id": 2}));
    // 4095 bytes + the implied newline = --max-line: allowed.
    let join = json!({"type": "join", "nickname": "framer"}).to_string();
    client.send_message(Message::text(join));
    client.expect("welcome");
    let prefix = r#"{"type":"message","content":""#;
    let filler = "x".repeat(4095 - prefix.len() - 2);
    client.send_message(Message::text(format!("{prefix}{filler}\"}}")));
    assert_eq!(
        client.expect("broadcast")["content"].as_str().map(str::len),
        Some(filler.len())
    );
}

/// A message longer than `--max-line` gets `line_too_long`, then a close with 1008 (policy
/// violation), then the end of the stream.
#[test]
fn a_message_over_the_limit_closes_with_1008() {
    let node = Node::memory(&["--max-line", "4096"]);
    let mut client = WsClient::connect(node.http, "", "long").expect("connect");
    let prefix = r#"{"type":"ping","id":""#;
    let filler = "y".repeat(4096 - prefix.len() - 2);
    client.send_message(Message::text(format!("{prefix}{filler}\"}}")));
    client.expect_error("line_too_long");
    client.expect_close(1008);
}

/// RFC 6455's control frames: a ping is answered with a pong carrying its payload, and it is
/// not activity: a client that only pings is still closed by the idle timeout (`idle_timeout`,
/// then 1008), and leaves its room.
#[test]
fn pings_are_answered_but_are_not_activity() {
    let node = Node::memory(&["--idle-timeout", "2"]);
    let mut client = WsClient::join(node.http, "pinger", "hall");
    let started = Instant::now();
    let mut pongs = 0;
    while started.elapsed() < Duration::from_secs(4) {
        client.send_message(Message::Ping(Bytes::from_static(b"beat")));
        match client.ws.read() {
            Ok(Message::Pong(payload)) => {
                assert_eq!(&payload[..], b"beat");
                pongs += 1;
            }
            Ok(Message::Text(text)) => {
                assert!(text.contains("idle_timeout"), "{text}");
                assert!(started.elapsed() >= Duration::from_millis(1900));
                assert!(pongs > 0, "no pong before the idle timeout");
                client.expect_close(1008);
                let mut check = TestClient::join(node.addr, "check", "hall");
                check.send(&json!({"type": "list_users"}));
                assert_eq!(check.expect("users")["users"], json!(["check"]));
                return;
            }
            other => panic!("pinger: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("a client sending only WebSocket pings was not closed by --idle-timeout 2");
}

/// The closing handshake started by the client: the server answers with the same code, and
/// the room gets `left`.
#[test]
fn the_client_closes() {
    let node = Node::memory(&[]);
    let mut watcher = WsClient::join(node.http, "watcher", "attic");
    let mut leaver = WsClient::join(node.http, "leaver", "attic");
    watcher.expect("joined");
    let reply = leaver.close(CloseCode::Away).expect("a close reply");
    assert_eq!(reply.code, CloseCode::Away);
    let left = watcher.expect("left");
    assert_eq!(left["nickname"], "leaver");
}

/// `quit` closes with 1000 after `bye`; SIGTERM closes every WebSocket client with
/// `shutting_down` and 1001, and the process exits 0.
#[test]
fn quit_and_shutdown_close_codes() {
    let mut node = Node::memory(&[]);
    let mut quitter = WsClient::connect(node.http, "", "quitter").expect("connect");
    quitter.send(&json!({"type": "quit"}));
    quitter.expect("bye");
    quitter.expect_close(1000);

    let mut stayers: Vec<WsClient> = (0..5)
        .map(|i| WsClient::join(node.http, &format!("stayer{i}"), &format!("room{i}")))
        .collect();
    let status = node
        .terminate(Duration::from_millis(2500))
        .expect("exits within 2.5 s of SIGTERM");
    assert!(status.success(), "{status}");
    for client in &mut stayers {
        client.expect_error("shutting_down");
        client.expect_close(1001);
    }
}

/// `--max-conns` and `--max-conns-per-ip` count TCP and WebSocket connections together, per
/// process; a WebSocket connection past a limit gets `server_full` and a close with 1013.
#[test]
fn limits_count_both_transports() {
    let node = Node::memory(&["--max-conns", "3", "--max-conns-per-ip", "2"]);
    // Two from 127.0.0.1: one TCP, one WebSocket. The third from it is refused.
    let mut tcp = TestClient::connect(node.addr);
    tcp.send(&json!({"type": "ping"}));
    tcp.expect("pong");
    let mut web = WsClient::connect(node.http, "", "web").expect("connect");
    web.send(&json!({"type": "ping"}));
    web.expect("pong");
    let mut refused = WsClient::connect(node.http, "", "refused").expect("connect");
    refused.expect_error("server_full");
    refused.expect_close(1013);

    // From 127.0.0.2, one more fits under --max-conns 3; then the server is full for everyone.
    let other = [127, 0, 0, 2].into();
    let mut third = WsClient::connect_from(other, node.http, "", "third").expect("connect");
    third.send(&json!({"type": "ping"}));
    third.expect("pong");
    let mut full = WsClient::connect_from(other, node.http, "", "full").expect("connect");
    let error = full.expect_error("server_full");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or("")
            .contains("3 connections"),
        "{error}"
    );
    full.expect_close(1013);

    // One leaves: its address may connect again.
    web.close(CloseCode::Normal);
    let deadline = Instant::now() + WAIT;
    loop {
        let mut again = WsClient::connect(node.http, "", "again").expect("connect");
        again.send(&json!({"type": "ping"}));
        match again.next(WAIT) {
            Next::Frame(v) if v["type"] == "pong" => break,
            other => assert!(Instant::now() < deadline, "still refused: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A client that breaks RFC 6455 (an unmasked frame) is closed with 1002, protocol error.
#[test]
fn an_unmasked_frame_closes_with_1002() {
    let node = Node::memory(&[]);
    let mut client = WsClient::connect(node.http, "", "unmasked").expect("connect");
    let ping = br#"{"type":"ping"}"#;
    let mut frame = vec![0x81, ping.len() as u8];
    frame.extend_from_slice(ping);
    client.send_raw(&frame);
    client.expect_close(1002);
}

/// A WebSocket member that stops reading is cut off once its socket has refused more than
/// `--max-backlog` bytes; the sender and a member that keeps reading lose nothing
/// (PROTOCOL.md, guarantee 4, judged as over TCP).
#[test]
fn a_stalled_websocket_reader_is_cut_off_alone() {
    let node = Node::memory(&["--max-backlog", "65536", "--idle-timeout", "0"]);
    let mut reader = WsClient::join(node.http, "reader", "flood");
    let mut stalled = WsClient::join(node.http, "stalled", "flood");
    reader.expect("joined");
    let mut sender = TestClient::join(node.addr, "sender", "flood");
    reader.expect("joined");
    stalled.expect("joined"); // then it stops reading
    let content = "z".repeat(4000);
    let count = 3000; // 12 MB for each member: far more than socket buffers and the backlog
    for i in 0..count {
        sender.send(&json!({"type": "message", "content": content, "id": i}));
        sender.expect("broadcast");
        if i % 50 == 0 {
            // The reader keeps up, a little behind.
            while let Next::Frame(_) = reader.next(Duration::from_millis(1)) {}
        }
    }
    let mut last = None;
    loop {
        match reader.next(WAIT) {
            Next::Frame(v) if v["type"] == "broadcast" => last = Some(v["id"].clone()),
            Next::Frame(v) if v["type"] == "left" => assert_eq!(v["nickname"], "stalled"),
            Next::Frame(v) => panic!("reader: {v}"),
            Next::Closed(c) => panic!("the reader was closed: {c:?}"),
            Next::Timeout => break,
        }
        if last == Some(json!(count - 1)) {
            break;
        }
    }
    assert_eq!(
        last,
        Some(json!(count - 1)),
        "the reader lost the end of the flood"
    );
    // The stalled member was closed: reading its buffered frames ends in a closed stream.
    let started = Instant::now();
    loop {
        match stalled.next(WAIT) {
            Next::Frame(_) => {}
            Next::Closed(_) => break,
            Next::Timeout => panic!("the stalled reader was not cut off"),
        }
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}

/// The handshake: a request that is not a WebSocket upgrade, or a malformed session key, gets
/// 400 and a reason; a good one gets 101 and the accept key of RFC 6455's example.
#[test]
fn the_upgrade_handshake() {
    let node = Node::memory(&[]);
    let (status, body) = http_get(node.http, "/ws");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("WebSocket handshake"), "{body}");

    let upgrade = |path: &str| {
        let mut stream = TcpStream::connect(node.http).expect("connect");
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        .expect("send");
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        let mut head = vec![0; 1024];
        let n = stream.read(&mut head).expect("read");
        String::from_utf8_lossy(&head[..n]).to_string()
    };
    let ok = upgrade("/ws?session=abcdefgh");
    assert!(ok.starts_with("HTTP/1.1 101 Switching Protocols"), "{ok}");
    assert!(ok.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{ok}");
    let bad = upgrade("/ws?session=no");
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
}

/// The browser client is served at `/`, with its script and style.
#[test]
fn serves_the_browser_client() {
    let node = Node::memory(&[]);
    let (status, page) = http_get(node.http, "/");
    assert_eq!(status, 200);
    assert!(page.contains("<script src=\"/app.js\""), "{page}");
    for path in ["/app.js", "/app.css"] {
        let (status, body) = http_get(node.http, path);
        assert_eq!(status, 200, "{path}");
        assert!(body.len() > 500, "{path}: {body}");
    }
}

/// A reconnecting client takes its nickname back from its own earlier connection when it
/// gives the same session key: the earlier connection is told and closed (1008), the room
/// sees it leave and come back. Without the key, or with another one, the name is taken.
#[test]
fn a_session_key_takes_the_nickname_back() {
    let node = Node::memory(&[]);
    let mut watcher = WsClient::join(node.http, "watcher", "den");
    let mut first = WsClient::connect(node.http, "session=tab-one-1234", "first").expect("c");
    first.send(&json!({"type": "join", "nickname": "Ada", "room": "den"}));
    first.expect("welcome");
    watcher.expect("joined");

    for query in ["", "session=another-tab-99"] {
        let mut stranger = WsClient::connect(node.http, query, "stranger").expect("connect");
        stranger.send(&json!({"type": "join", "nickname": "ada", "room": "den"}));
        stranger.expect_error("nickname_taken");
    }

    let mut second = WsClient::connect(node.http, "session=tab-one-1234", "second").expect("c");
    second.send(&json!({"type": "join", "nickname": "ada", "room": "den"}));
    let welcome = second.expect("welcome");
    assert_eq!(welcome["users"], json!(["ada", "watcher"]), "{welcome}");
    first.expect_error("nickname_taken");
    first.expect_close(1008);
    assert_eq!(watcher.expect("left")["nickname"], "Ada");
    assert_eq!(watcher.expect("joined")["nickname"], "ada");
    second.send(&json!({"type": "message", "content": "back"}));
    second.expect("broadcast");
    assert_eq!(watcher.expect("broadcast")["from"], "ada");
}

//! select(2)'s FD_SETSIZE limit, shown with 1,100 connections.

use loadgen::server_process::ServerProcess;
use loadgen::testkit::TestClient;
use serde_json::json;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::net::TcpStream;

const CONNECTIONS: usize = 1100;

/// `--backend select` with 1,100 connections: the ones whose descriptor would be 1024 or more
/// get `server_full` and are closed (the server does not crash by overflowing an `fd_set`),
/// and the ones it kept still chat afterwards: each answers a ping, and a message reaches
/// its room.
#[test]
fn select_refuses_descriptors_past_fd_setsize_and_keeps_the_rest() {
    let server = ServerProcess::spawn(env!("CARGO_BIN_EXE_chat-poll"), ["--backend", "select"])
        .expect("start chat-poll");
    let addr = server.addr();
    let streams: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|i| TcpStream::connect(addr).unwrap_or_else(|e| panic!("connection {i}: {e}")))
        .collect();

    // The server accepts in connect order, so the last connection is surely beyond the limit;
    // once it has its answer, every earlier connection has been accepted and sorted.
    let last = streams.last().unwrap().try_clone().unwrap();
    last.set_read_timeout(Some(TestClient::FRAME_TIMEOUT))
        .unwrap();
    let mut line = String::new();
    BufReader::new(last).read_line(&mut line).unwrap();
    assert!(
        line.contains("server_full"),
        "the last connection got {line:?}"
    );

    // Sort them: a refused connection has its `server_full` waiting, a kept one has nothing.
    // (The last one was read above: it counts as refused.)
    let (mut kept, mut refused) = (Vec::new(), 1);
    for (i, stream) in streams.into_iter().enumerate().take(CONNECTIONS - 1) {
        stream.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        match (&stream).read(&mut byte) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => kept.push(stream),
            Ok(1) => {
                stream.set_nonblocking(false).unwrap();
                stream
                    .set_read_timeout(Some(TestClient::FRAME_TIMEOUT))
                    .unwrap();
                let mut rest = String::new();
                BufReader::new(&stream).read_to_string(&mut rest).unwrap();
                assert!(
                    rest.contains("\"code\":\"server_full\""),
                    "connection {i}: {rest:?}"
                );
                refused += 1;
            }
            other => panic!("connection {i}: unexpected {other:?}"),
        }
    }
    eprintln!("select: kept {} connections, refused {refused}", kept.len());
    // Descriptors 0..1024 include stdin/out/err, the listener, pipes...: at most ~1020 peers.
    assert!(refused >= CONNECTIONS - 1024, "only {refused} refused");
    assert!(kept.len() >= 1000, "only {} kept", kept.len());

    // The kept connections still work: every one answers a ping...
    let mut kept: Vec<TestClient> = kept
        .into_iter()
        .map(|stream| {
            stream.set_nonblocking(false).unwrap();
            TestClient::from_stream(stream)
        })
        .collect();
    for client in &mut kept {
        client.send(&json!({"type": "ping", "id": 7}));
    }
    for client in &mut kept {
        assert_eq!(client.expect("pong")["id"], 7);
    }
    // ...and the first and the last of them chat in a room.
    let mut first = kept.swap_remove(0);
    let mut last = kept.pop().unwrap();
    first.send(&json!({"type": "join", "nickname": "first", "room": "r"}));
    first.expect("welcome");
    last.send(&json!({"type": "join", "nickname": "last", "room": "r"}));
    last.expect("welcome");
    last.send(&json!({"type": "message", "content": "still here"}));
    for client in [&mut first, &mut last] {
        let frame = client.expect("broadcast");
        assert_eq!(frame["content"], "still here");
        assert_eq!(frame["from"], "last");
    }
    drop(server);
}

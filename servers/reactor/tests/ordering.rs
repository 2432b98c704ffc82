//! The ordering guarantees across threads, the reactor's own risk: with several workers, two
//! batches of one connection must never be handled at once, and every room must keep one order
//! although its members live on different event loops.

use loadgen::server_process::ServerProcess;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

/// Requests the pipelining client sends in one write: about 150 KB, more than the reactor
/// buffers per connection while a batch is on a worker (64 KiB), so the read pause and resume
/// path is exercised too.
const PIPELINED: usize = 3000;
/// Messages each of the two other members sends meanwhile.
const CHATTER: usize = 300;

/// One client joined to room `r`, with a reader thread collecting every `pong` and `broadcast`
/// it receives until it has `expected` of them (or 60 s pass).
struct Member {
    writer: TcpStream,
    collected: thread::JoinHandle<Vec<Value>>,
}

fn join(addr: SocketAddr, nickname: &str, expected: usize) -> Member {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("read timeout");
    let mut writer = stream.try_clone().expect("clone");
    let line = json!({"type": "join", "nickname": nickname, "room": "r"});
    writer
        .write_all(format!("{line}\n").as_bytes())
        .expect("send join");
    let mut reader = BufReader::new(stream);
    let mut welcome = String::new();
    reader.read_line(&mut welcome).expect("welcome");
    assert!(welcome.contains("\"welcome\""), "{nickname}: got {welcome}");
    let collected = thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut got = Vec::new();
        let mut line = String::new();
        while got.len() < expected && Instant::now() < deadline {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let event: Value = serde_json::from_str(&line).expect("a JSON line");
            if matches!(event["type"].as_str(), Some("pong" | "broadcast")) {
                got.push(event);
            }
        }
        got
    });
    Member { writer, collected }
}

/// A label per event: `pong:<id>` or `<from>:<id>` for a broadcast.
fn label(event: &Value) -> String {
    match event["type"].as_str() {
        Some("pong") => format!("pong:{}", event["id"]),
        _ => format!("{}:{}", event["from"].as_str().unwrap_or("?"), event["id"]),
    }
}

/// Replies in request order per connection (guarantee 1) and one order per room (guarantee 2),
/// with 2 event loops and 4 workers, every turn's input handed off: client `a` pipelines 3,000 requests (pings and messages,
/// alternating) in one write while `b` and `c` chat in the same room. `a` receives its pongs and
/// its own broadcasts exactly in request order, and all three members receive the room's 3,600
/// broadcasts in one identical order.
#[test]
fn pipelined_replies_stay_in_order_while_others_broadcast() {
    let server = ServerProcess::spawn(
        env!("CARGO_BIN_EXE_chat-reactor"),
        [
            "--io-threads",
            "2",
            "--workers",
            "4",
            "--offload-min-bytes",
            "0",
            "--idle-timeout",
            "0",
        ],
    )
    .expect("chat-reactor starts");
    let addr = server.addr();
    let messages_from_a = PIPELINED / 2;
    let broadcasts = messages_from_a + 2 * CHATTER;
    let mut a = join(addr, "a", (PIPELINED - messages_from_a) + broadcasts);
    let b = join(addr, "b", broadcasts);
    let c = join(addr, "c", broadcasts);

    // `b` and `c` chat from their own threads, in small writes.
    let chatters: Vec<_> = [("b", b.writer.try_clone()), ("c", c.writer.try_clone())]
        .into_iter()
        .map(|(name, writer)| {
            let mut writer = writer.expect("clone");
            thread::spawn(move || {
                for i in 0..CHATTER {
                    let line = json!({"type": "message", "content": "chatter", "id": i});
                    writer
                        .write_all(format!("{line}\n").as_bytes())
                        .unwrap_or_else(|e| panic!("{name} send: {e}"));
                }
            })
        })
        .collect();

    // `a` pipelines everything in one write.
    let mut sent = Vec::new();
    let mut burst = Vec::new();
    for i in 0..PIPELINED {
        let line = if i % 2 == 0 {
            sent.push(format!("pong:{i}"));
            json!({"type": "ping", "id": i})
        } else {
            sent.push(format!("a:{i}"));
            json!({"type": "message", "content": "pipelined", "id": i})
        };
        burst.extend_from_slice(format!("{line}\n").as_bytes());
    }
    a.writer.write_all(&burst).expect("a sends its burst");
    for chatter in chatters {
        chatter.join().expect("chatter thread");
    }

    let got_a: Vec<String> = a
        .collected
        .join()
        .expect("a reader")
        .iter()
        .map(label)
        .collect();
    let got_b: Vec<String> = b
        .collected
        .join()
        .expect("b reader")
        .iter()
        .map(label)
        .collect();
    let got_c: Vec<String> = c
        .collected
        .join()
        .expect("c reader")
        .iter()
        .map(label)
        .collect();

    // Guarantee 1: `a`'s replies (pongs and its own broadcasts) in request order.
    let replies_to_a: Vec<&String> = got_a
        .iter()
        .filter(|l| l.starts_with("pong:") || l.starts_with("a:"))
        .collect();
    assert_eq!(replies_to_a.len(), PIPELINED, "a lost replies");
    for (i, (got, want)) in replies_to_a.iter().zip(&sent).enumerate() {
        assert_eq!(*got, want, "a's reply #{i} out of order");
    }

    // Guarantee 2: one order per room, the same for every member.
    let room_order_a: Vec<&String> = got_a.iter().filter(|l| !l.starts_with("pong:")).collect();
    let room_order_b: Vec<&String> = got_b.iter().collect();
    let room_order_c: Vec<&String> = got_c.iter().collect();
    assert_eq!(room_order_b.len(), broadcasts, "b lost broadcasts");
    assert_eq!(
        room_order_a, room_order_b,
        "a and b saw different room orders"
    );
    assert_eq!(
        room_order_b, room_order_c,
        "b and c saw different room orders"
    );

    // And each sender's messages in the order it sent them.
    for sender in ["b", "c"] {
        let ids: Vec<&String> = got_b
            .iter()
            .filter(|l| l.starts_with(&format!("{sender}:")))
            .collect();
        let want: Vec<String> = (0..CHATTER).map(|i| format!("{sender}:{i}")).collect();
        assert_eq!(ids.len(), CHATTER, "{sender}'s messages lost");
        assert!(
            ids.iter().zip(&want).all(|(g, w)| *g == w),
            "{sender} out of order"
        );
    }
}

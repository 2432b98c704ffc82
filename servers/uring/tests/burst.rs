//! Bursts: far more input at once than the buffer pool holds, and far more output than one
//! write takes.

mod support;

use loadgen::server_process::ServerProcess;
use loadgen::testkit::TestClient;
use serde_json::json;
use std::io::Write;
use std::thread;
use support::{io_uring_usable, program};

/// Frames in a burst, and the bytes of each one's padding (a frame stays under the default
/// `--max-line` of 64 KiB).
const FRAMES: usize = 200;
const PAD_BYTES: usize = 60_000;
/// Room members besides the sender; each, and the sender, receives every broadcast.
const LISTENERS: usize = 3;
/// A pool far smaller than one burst: 8 buffers of 4 KiB hold 32 KiB of the 12 MB.
const SMALL_POOL: [&str; 4] = ["--buffers", "8", "--buffer-size", "4096"];

/// Text `i` of a burst: recognisable, and `PAD_BYTES` long.
fn padding(i: usize) -> String {
    let letter = char::from(b'a' + (i % 26) as u8);
    let mut text = format!("{i:05}:");
    text.extend(std::iter::repeat_n(letter, PAD_BYTES - text.len()));
    text
}

/// `FRAMES` requests of `kind`, each with its padding in `field`, as one block of bytes.
fn burst(kind: &str, field: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(FRAMES * (PAD_BYTES + 64));
    for i in 0..FRAMES {
        let frame = json!({"type": kind, "id": i, field: padding(i)});
        serde_json::to_writer(&mut bytes, &frame).expect("encode a request");
        bytes.push(b'\n');
    }
    bytes
}

/// One client writes 200 messages of 60 KB in a single burst (12 MB in one `write_all`) into a
/// room of four. The multishot receive takes it in buffer-sized pieces, running the pool dry
/// again and again (`-ENOBUFS`: armed again next turn); each message is fanned out to four
/// members, whose writes of many 60 KB frames the kernel completes short. Every member
/// receives all 200 broadcasts, in order and intact.
fn room_gets_a_burst_of_large_messages(args: &[&str]) {
    // A generous backlog: this test is about moving bytes, not about slow readers.
    let args: Vec<&str> = args
        .iter()
        .copied()
        .chain(["--max-backlog", "67108864"])
        .collect();
    let server = ServerProcess::spawn(program(), &args).expect("start chat-uring");
    let addr = server.addr();
    let mut members: Vec<TestClient> = (0..LISTENERS)
        .map(|i| TestClient::join(addr, &format!("listener{i}"), "burst"))
        .collect();
    let sender = TestClient::join(addr, "sender", "burst");
    let mut sender_writer = sender.writer();
    members.push(sender);
    let readers: Vec<_> = members
        .into_iter()
        .enumerate()
        .map(|(m, mut member)| {
            thread::spawn(move || {
                for i in 0..FRAMES {
                    let frame = member.expect("broadcast");
                    assert_eq!(frame["id"], i, "member {m}: broadcasts out of order");
                    let text = frame["content"].as_str().unwrap_or_default();
                    assert!(text == padding(i), "member {m}: broadcast {i} was damaged");
                }
            })
        })
        .collect();
    sender_writer
        .write_all(&burst("message", "content"))
        .expect("write the burst");
    for reader in readers {
        if let Err(panic) = reader.join() {
            std::panic::resume_unwind(panic);
        }
    }
}

/// 200 pings of 60 KB each (padded with a field the server ignores), written at once: 200
/// pongs, in order. Input far larger than the pool, tiny replies.
fn client_gets_a_pong_for_each_padded_ping(args: &[&str]) {
    let server = ServerProcess::spawn(program(), args).expect("start chat-uring");
    let mut client = TestClient::connect(server.addr());
    let mut writer = client.writer();
    let pings = burst("ping", "pad");
    let sending = thread::spawn(move || writer.write_all(&pings).expect("write the burst"));
    for i in 0..FRAMES {
        assert_eq!(client.expect("pong")["id"], i, "pongs out of order");
    }
    sending.join().expect("the writer thread");
}

/// See [`room_gets_a_burst_of_large_messages`]: the default pool.
#[test]
fn delivers_a_burst_of_large_messages() {
    if io_uring_usable("delivers_a_burst_of_large_messages") {
        room_gets_a_burst_of_large_messages(&[]);
    }
}

/// See [`room_gets_a_burst_of_large_messages`]: a pool of 8 small buffers.
#[test]
fn delivers_a_burst_of_large_messages_through_a_small_pool() {
    if io_uring_usable("delivers_a_burst_of_large_messages_through_a_small_pool") {
        room_gets_a_burst_of_large_messages(&SMALL_POOL);
    }
}

/// See [`client_gets_a_pong_for_each_padded_ping`]: the default pool.
#[test]
fn answers_a_burst_of_padded_pings() {
    if io_uring_usable("answers_a_burst_of_padded_pings") {
        client_gets_a_pong_for_each_padded_ping(&[]);
    }
}

/// See [`client_gets_a_pong_for_each_padded_ping`]: a pool of 8 small buffers.
#[test]
fn answers_a_burst_of_padded_pings_through_a_small_pool() {
    if io_uring_usable("answers_a_burst_of_padded_pings_through_a_small_pool") {
        client_gets_a_pong_for_each_padded_ping(&SMALL_POOL);
    }
}

//! # Bursts: far more input at once than one read takes
//!
//! The servers that read in pieces (chat-epoll edge-triggered, which must read until `EAGAIN`;
//! chat-uring, whose receive takes one buffer of its pool at a time) are tested with the same
//! two bursts, written in a single `write_all`:
//!
//! - [`room_gets_every_frame`]: [`FRAMES`] messages of [`PAD_BYTES`] each into a room of four,
//!   so that every member's output is far larger than one write takes, too;
//! - [`pong_for_every_ping`]: [`FRAMES`] padded pings, whose replies are tiny, so that the
//!   sender's output never backs up.
//!
//! Each server's test file says what the burst exercises in its model, and starts the server.

use super::TestClient;
use serde_json::json;
use std::io::Write;
use std::net::SocketAddr;
use std::thread;

/// Frames in a burst, and the bytes of each one's padding (a frame stays under the default
/// `--max-line` of 64 KiB): 12 MB in all.
pub const FRAMES: usize = 200;
pub const PAD_BYTES: usize = 60_000;
/// Room members besides the sender; each, and the sender, receives every broadcast.
pub const LISTENERS: usize = 3;

/// Text `i` of a burst: recognisable (it starts with `i`), and `PAD_BYTES` long.
pub fn padding(i: usize) -> String {
    let letter = char::from(b'a' + (i % 26) as u8);
    let mut text = format!("{i:05}:");
    text.extend(std::iter::repeat_n(letter, PAD_BYTES - text.len()));
    text
}

/// `FRAMES` requests of type `kind` with ids 0, 1, …, each with its padding in `field`, as one
/// block of bytes.
pub fn burst(kind: &str, field: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(FRAMES * (PAD_BYTES + 64));
    for i in 0..FRAMES {
        let frame = json!({"type": kind, "id": i, field: padding(i)});
        serde_json::to_writer(&mut bytes, &frame).expect("encode a request");
        bytes.push(b'\n');
    }
    bytes
}

/// A sender and [`LISTENERS`] listeners join one room on `addr`; the sender writes
/// [`FRAMES`] messages of [`PAD_BYTES`] in a single burst (12 MB in one `write_all`) while every
/// member reads on its own thread. Every member, the sender included, receives all the
/// broadcasts, from the sender, in order and intact (panics otherwise).
///
/// The server needs a `--max-backlog` of at least the whole burst (64 MiB is plenty): this is
/// about reading and writing in pieces, not about slow readers (PROTOCOL.md, guarantee 4).
pub fn room_gets_every_frame(addr: SocketAddr) {
    let mut members: Vec<TestClient> = (0..LISTENERS)
        .map(|i| TestClient::join(addr, &format!("listener{i}"), "burst"))
        .collect();
    let sender = TestClient::join(addr, "sender", "burst");
    let mut sender_writer = sender.writer();
    members.push(sender);

    // Every member reads on its own thread while the burst is being written.
    let readers: Vec<_> = members
        .into_iter()
        .enumerate()
        .map(|(m, mut member)| {
            thread::spawn(move || {
                for i in 0..FRAMES {
                    let frame = member.expect("broadcast");
                    assert_eq!(frame["id"], i, "member {m}: broadcasts out of order");
                    assert_eq!(frame["from"], "sender");
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

/// [`FRAMES`] pings of [`PAD_BYTES`] each (padded with a field the server ignores), written at
/// once on one connection to `addr` while it reads: [`FRAMES`] pongs, in order (panics
/// otherwise). The input is far larger than one read, the replies tiny.
pub fn pong_for_every_ping(addr: SocketAddr) {
    let mut client = TestClient::connect(addr);
    let mut writer = client.writer();
    let pings = burst("ping", "pad");
    let sending = thread::spawn(move || writer.write_all(&pings).expect("write the burst"));
    for i in 0..FRAMES {
        assert_eq!(client.expect("pong")["id"], i, "pongs out of order");
    }
    sending.join().expect("the writer thread");
}

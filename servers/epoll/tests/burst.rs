//! Level- vs edge-triggered under a burst of large frames.

use loadgen::server_process::ServerProcess;
use loadgen::testkit::TestClient;
use serde_json::json;
use std::io::Write;
use std::thread;

/// Frames in the burst, and the size of each one's content (a frame stays under the default
/// `--max-line` of 64 KiB).
const FRAMES: usize = 200;
const CONTENT_BYTES: usize = 60_000;
/// Room members besides the sender; each, and the sender, receives every broadcast.
const LISTENERS: usize = 3;

/// The content of message `i`: recognisable, and `CONTENT_BYTES` long.
fn content(i: usize) -> String {
    let letter = char::from(b'a' + (i % 26) as u8);
    let mut text = format!("{i:05}:");
    text.extend(std::iter::repeat_n(letter, CONTENT_BYTES - text.len()));
    text
}

/// One client writes 200 frames of 60 KB in a single burst (12 MB in one `write_all`) into a
/// room of four: the server reads them in many chunks and fans each out to four members. Every
/// member receives all 200 broadcasts, in order and intact.
///
/// Edge-triggered, the kernel reports the sender's socket once per arrival of data, not once
/// per 64 KiB we read: a loop that stops reading before EAGAIN leaves frames in the socket with
/// no event to come back for them, and this test hangs and fails.
fn burst_of_large_frames(trigger: &str) {
    // A generous backlog: this test is about reading, not about slow readers (guarantee 4).
    let server = ServerProcess::spawn(
        env!("CARGO_BIN_EXE_chat-epoll"),
        ["--trigger", trigger, "--max-backlog", "67108864"],
    )
    .expect("start chat-epoll");
    let addr = server.addr();
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
                    assert!(text == content(i), "member {m}: broadcast {i} was damaged");
                }
            })
        })
        .collect();

    let mut burst = Vec::with_capacity(FRAMES * (CONTENT_BYTES + 64));
    for i in 0..FRAMES {
        let frame = json!({"type": "message", "id": i, "content": content(i)});
        serde_json::to_writer(&mut burst, &frame).unwrap();
        burst.push(b'\n');
    }
    sender_writer.write_all(&burst).expect("write the burst");

    for reader in readers {
        if let Err(panic) = reader.join() {
            std::panic::resume_unwind(panic);
        }
    }
}

/// A burst whose replies are tiny: 200 pings of 60 KB each (padded with a field the server
/// ignores), written at once, must get 200 pongs. The sender's output never backs up, so
/// nothing re-arms its socket (an `epoll_ctl(MOD)` for write interest would report pending
/// input again and hide the bug): edge-triggered, once the last bytes have arrived there is
/// exactly one event left, and a loop that stops reading before EAGAIN never answers the rest.
fn burst_of_padded_pings(trigger: &str) {
    let server = ServerProcess::spawn(env!("CARGO_BIN_EXE_chat-epoll"), ["--trigger", trigger])
        .expect("start chat-epoll");
    let mut client = TestClient::connect(server.addr());
    let mut burst = Vec::with_capacity(FRAMES * (CONTENT_BYTES + 64));
    for i in 0..FRAMES {
        let frame = json!({"type": "ping", "id": i, "pad": content(i)});
        serde_json::to_writer(&mut burst, &frame).unwrap();
        burst.push(b'\n');
    }
    let mut writer = client.writer();
    let sending = thread::spawn(move || writer.write_all(&burst).expect("write the burst"));
    for i in 0..FRAMES {
        assert_eq!(client.expect("pong")["id"], i, "pongs out of order");
    }
    sending.join().unwrap();
}

/// See [`burst_of_padded_pings`]: level-triggered.
#[test]
fn level_triggered_answers_a_burst_of_padded_pings() {
    burst_of_padded_pings("level");
}

/// See [`burst_of_padded_pings`]: edge-triggered, which must read until EAGAIN.
#[test]
fn edge_triggered_answers_a_burst_of_padded_pings() {
    burst_of_padded_pings("edge");
}

/// See [`burst_of_large_frames`]: level-triggered.
#[test]
fn level_triggered_delivers_a_burst_of_large_frames() {
    burst_of_large_frames("level");
}

/// See [`burst_of_large_frames`]: edge-triggered, which reads until EAGAIN.
#[test]
fn edge_triggered_delivers_a_burst_of_large_frames() {
    burst_of_large_frames("edge");
}

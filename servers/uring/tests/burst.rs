//! Bursts: far more input at once than the buffer pool holds, and far more output than one
//! write takes.

mod support;

use loadgen::server_process::ServerProcess;
use loadgen::testkit::burst::{self, padding};
use loadgen::testkit::TestClient;
use serde_json::json;
use std::io::Write;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};
use support::{io_uring_usable, program};

/// A pool far smaller than one burst: 8 buffers of 4 KiB hold 32 KiB of the 12 MB.
const SMALL_POOL: [&str; 4] = ["--buffers", "8", "--buffer-size", "4096"];

/// One client writes 200 messages of 60 KB in a single burst (12 MB in one `write_all`) into a
/// room of four (`burst::room_gets_every_frame`). The multishot receive takes it in
/// buffer-sized pieces, running the pool dry again and again (`-ENOBUFS`: armed again next
/// turn); each message is fanned out to four members, whose writes of many 60 KB frames the
/// kernel completes short. Every member receives all 200 broadcasts, in order and intact.
fn room_gets_a_burst_of_large_messages(args: &[&str]) {
    // A generous backlog: this test is about moving bytes, not about slow readers.
    let args: Vec<&str> = args
        .iter()
        .copied()
        .chain(["--max-backlog", "67108864"])
        .collect();
    let server = ServerProcess::spawn(program(), &args).expect("start chat-uring");
    burst::room_gets_every_frame(server.addr());
}

/// 200 pings of 60 KB each (padded with a field the server ignores), written at once: 200
/// pongs, in order (`burst::pong_for_every_ping`). Input far larger than the pool, tiny
/// replies.
fn client_gets_a_pong_for_each_padded_ping(args: &[&str]) {
    let server = ServerProcess::spawn(program(), args).expect("start chat-uring");
    burst::pong_for_every_ping(server.addr());
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

/// How long each stream of [`a_stream_through_a_small_pool_does_not_starve_a_quiet_client`]
/// goes on (twice the idle timeout it runs under), at most how many frames it sends, and how
/// many streams there are.
const STREAM_FOR: Duration = Duration::from_secs(4);
const STREAM_MAX_FRAMES: usize = 20_000;
const STREAMS: usize = 3;
/// The idle timeout of that test, in seconds, and how often its quiet client pings.
const IDLE_SECS: u64 = 2;
const QUIET_EVERY: Duration = Duration::from_millis(250);

/// A client that streams padded pings to `addr` until `STREAM_FOR` after `started`, then a
/// short one whose id is "end", and reads their pongs, in order: the two threads, to join.
fn stream_pings(addr: SocketAddr, started: Instant) -> [thread::JoinHandle<()>; 2] {
    let mut client = TestClient::connect(addr);
    let mut writer = client.writer();
    // The padding is made once: the stream must outpace the server, or its socket would run
    // dry between frames and leave the pool's buffers to the others anyway.
    let sending = thread::spawn(move || {
        let pad = padding(0);
        let mut i = 0;
        while started.elapsed() < STREAM_FOR && i < STREAM_MAX_FRAMES {
            writeln!(writer, r#"{{"type":"ping","id":{i},"pad":"{pad}"}}"#)
                .expect("write the stream");
            i += 1;
        }
        writeln!(writer, "{}", json!({"type": "ping", "id": "end"})).expect("end the stream");
    });
    let reading = thread::spawn(move || {
        for i in 0.. {
            let pong = client.expect("pong");
            if pong["id"] == "end" {
                break;
            }
            assert_eq!(pong["id"], i, "a stream's pongs out of order");
        }
    });
    [sending, reading]
}

/// Three clients stream padded pings for 4 s through a pool of 8 small buffers, which they
/// empty on every turn; meanwhile a quiet client pings every 250 ms under `--idle-timeout 2`.
/// Each of its pings is answered, and it is never closed as idle (PROTOCOL.md, guarantee 6):
/// its receive, starved of buffers by the streams, is armed again before theirs
/// (`Peers::rearm_receives`). Armed in the order the receives ended, it would often come after
/// them, find the pool empty again, and wait in its socket until the streams end: the idle
/// timeout would close it first.
#[test]
fn a_stream_through_a_small_pool_does_not_starve_a_quiet_client() {
    if !io_uring_usable("a_stream_through_a_small_pool_does_not_starve_a_quiet_client") {
        return;
    }
    let idle = IDLE_SECS.to_string();
    let args: Vec<&str> = SMALL_POOL
        .iter()
        .copied()
        .chain(["--idle-timeout", &idle])
        .collect();
    let server = ServerProcess::spawn(program(), &args).expect("start chat-uring");
    let mut quiet = TestClient::connect(server.addr());
    let started = Instant::now();
    let streams: Vec<_> = (0..STREAMS)
        .flat_map(|_| stream_pings(server.addr(), started))
        .collect();
    let mut asked = 0;
    while streams.iter().any(|thread| !thread.is_finished()) {
        quiet.send(&json!({"type": "ping", "id": asked}));
        let reply = quiet.recv();
        let waited = started.elapsed();
        assert_eq!(
            reply,
            json!({"type": "pong", "id": asked}),
            "the quiet client's ping {asked}, {waited:?} into the streams"
        );
        asked += 1;
        thread::sleep(QUIET_EVERY);
    }
    for thread in streams {
        if let Err(panic) = thread.join() {
            std::panic::resume_unwind(panic);
        }
    }
    assert!(
        started.elapsed() > Duration::from_secs(IDLE_SECS),
        "the streams did not outlast the idle timeout: the quiet client was never at risk"
    );
}

//! Level- vs edge-triggered under a burst of large frames.

use loadgen::server_process::ServerProcess;
use loadgen::testkit::burst;

/// One client writes 200 frames of 60 KB in a single burst (12 MB in one `write_all`) into a
/// room of four: the server reads them in many chunks and fans each out to four members. Every
/// member receives all 200 broadcasts, in order and intact (`burst::room_gets_every_frame`).
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
    burst::room_gets_every_frame(server.addr());
}

/// A burst whose replies are tiny: 200 pings of 60 KB each (padded with a field the server
/// ignores), written at once, must get 200 pongs (`burst::pong_for_every_ping`). The sender's
/// output never backs up, so nothing re-arms its socket (an `epoll_ctl(MOD)` for write interest
/// would report pending input again and hide the bug): edge-triggered, once the last bytes have
/// arrived there is exactly one event left, and a loop that stops reading before EAGAIN never
/// answers the rest.
fn burst_of_padded_pings(trigger: &str) {
    let server = ServerProcess::spawn(env!("CARGO_BIN_EXE_chat-epoll"), ["--trigger", trigger])
        .expect("start chat-epoll");
    burst::pong_for_every_ping(server.addr());
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

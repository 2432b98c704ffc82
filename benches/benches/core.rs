//! # Micro-benchmarks of the sans-I/O core
//!
//! What one server spends per message *before* any system call: framing and parsing a line,
//! encoding an event, and fanning a broadcast out to a room. Every server model shares this
//! code, so these numbers are a floor under all of them: the `c10k` bench shows how much each
//! I/O model adds on top.
//!
//! One group per hot step of a request, in the order a request takes them (parse, Hub, encode,
//! queue write), then two that explain a design choice:
//!
//! | group | question it answers |
//! |---|---|
//! | `decode` | how many bytes/s `LineDecoder::feed` turns into requests (typical ~100 B lines, many per read; one ~60 KB line; both also split across reads) |
//! | `parse` | one typical `message` line into a request: with strings of its own (`parse_request`) or borrowed from the line (`parse_request_ref`, what the servers use) |
//! | `hub_fanout` | deliveries/s when a member of a room of 10, 100, 1,000 sends a message (`Hub::handle_ref` plus draining the Outbox) |
//! | `encode` | how many bytes/s a `broadcast` frame is produced at, typical and large: from an `Event` (`chat_core::encode`) and from borrowed parts (`broadcast_frame`, what the Hub does) |
//! | `queue_write` | frames/s through a connection's `SendQueue`: 1, 10 or 100 frames pushed, then one flush (the `IoSlice` gathering, into `io::sink`) |
//! | `broadcast_encoding` | encode once and share the `Bytes` (what the Hub does) versus encode per recipient |
//!
//! Guarding the gains: save a baseline before a change and compare after it (criterion prints
//! "regressed" / "improved" per bench, beyond its noise threshold):
//!
//! ```text
//! cargo bench -p c10k-benches --bench core -- --save-baseline before
//! # ... the change ...
//! cargo bench -p c10k-benches --bench core -- --baseline before
//! ```
//!
//! Run: `cargo bench -p c10k-benches --bench core` (about 1.5 minutes). Add
//! `C10K_BENCH_PLOTS=1` for criterion's HTML report in `target/criterion/report/index.html` (a
//! few minutes more). Smoke run: `C10K_BENCH_QUICK=1 cargo bench -p c10k-benches --bench core`
//! (seconds). One group: `cargo bench -p c10k-benches --bench core -- hub_fanout`.

use c10k_benches::fixtures::{
    self, broadcast_event, broadcast_frame_of, decode_all, large_content, large_line, message_line,
    parse_line, queue_and_write, typical_chunk, Parse, Room, TYPICAL_CONTENT,
};
use c10k_benches::quick_mode;
use chat_core::decoder::DEFAULT_MAX_LINE;
use chat_core::{encode, ConnId, Event, LineDecoder, Outbox, SendQueue};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;

/// The room sizes of the fan-out benches.
const ROOM_SIZES: [usize; 3] = [10, 100, 1_000];

/// A typical TCP segment's payload: how a line may be cut between two reads.
const SEGMENT_BYTES: usize = 1460;

/// A common read-buffer size: how a large line arrives.
const READ_BUFFER_BYTES: usize = 4096;

/// Framing and parsing: bytes in, requests out. Throughput is in input bytes per second.
fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    let typical = typical_chunk();
    let large = large_line();
    // (name, the input, how big each read is)
    let cases: [(&str, &[u8], usize); 4] = [
        ("typical/one_read", &typical, typical.len()),
        ("typical/split_1460", &typical, SEGMENT_BYTES),
        ("large/one_read", &large, large.len()),
        ("large/split_4096", &large, READ_BUFFER_BYTES),
    ];
    for (name, input, read_size) in cases {
        group.throughput(Throughput::Bytes(input.len() as u64));
        // One decoder for the whole run, as one connection keeps one: each iteration feeds
        // whole lines, so it ends with nothing buffered.
        let mut decoder = LineDecoder::new(DEFAULT_MAX_LINE);
        group.bench_function(name, |b| {
            b.iter(|| decode_all(&mut decoder, black_box(input).chunks(read_size)))
        });
    }
    group.finish();
}

/// Parsing one typical line into a request, owned and borrowed. Throughput is in input bytes.
fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    let line = message_line(TYPICAL_CONTENT, 1);
    let line = &line[..line.len() - 1]; // the decoder hands the parser a line without `\n`
    group.throughput(Throughput::Bytes(line.len() as u64));
    for (name, how) in [("owned", Parse::Owned), ("borrowed", Parse::Borrowed)] {
        group.bench_function(name, |b| b.iter(|| parse_line(black_box(line), how)));
    }
    group.finish();
}

/// Serializing the event every member of a room receives, from an `Event` and from borrowed
/// parts (the same bytes). Throughput is in output bytes.
fn encode_broadcast(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    let large = large_content();
    for (name, content) in [("typical", TYPICAL_CONTENT), ("large", large.as_str())] {
        let event = broadcast_event(content);
        group.throughput(Throughput::Bytes(encode(&event).len() as u64));
        group.bench_function(name, |b| b.iter(|| encode(black_box(&event))));
        group.bench_function(format!("{name}/borrowed"), |b| {
            b.iter(|| broadcast_frame_of(black_box(content)))
        });
    }
    group.finish();
}

/// Frames through one connection's queue: pushed, gathered into `IoSlice`s, written. Throughput
/// is in frames per second.
fn queue_write(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue_write");
    let frame = encode(&broadcast_event(TYPICAL_CONTENT));
    // One queue for the whole run, as one connection keeps one; each iteration empties it.
    let mut queue = SendQueue::new(1 << 20);
    for count in [1, 10, 100] {
        group.throughput(Throughput::Elements(count as u64));
        group.bench_with_input(BenchmarkId::from_parameter(count), &count, |b, &count| {
            b.iter(|| queue_and_write(&mut queue, black_box(&frame), count))
        });
    }
    group.finish();
}

/// One message into a room of N: the Hub's whole path, from the parsed request to N queued
/// frames. Throughput is in deliveries (frames handed to the I/O layer) per second.
fn hub_fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("hub_fanout");
    for size in ROOM_SIZES {
        let mut room = Room::new(size);
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter(|| room.send_message(black_box(TYPICAL_CONTENT)))
        });
    }
    group.finish();
}

/// One way of queueing a broadcast `event` for every member of a room.
type QueueBroadcast = fn(event: &Event, members: &[ConnId], out: &mut Outbox);

/// The lesson of `Frame = Bytes`: encoding a broadcast once and sharing it, against encoding
/// it again for every recipient. Same deliveries, same bytes on the wire; throughput is in
/// deliveries per second, so the two lines of the report compare directly.
fn broadcast_encoding(c: &mut Criterion) {
    let mut group = c.benchmark_group("broadcast_encoding");
    let event = broadcast_event(TYPICAL_CONTENT);
    let mut out = Outbox::new();
    // The two ways to queue one broadcast, measured alike: only how the frames are made differs.
    let strategies: [(&str, QueueBroadcast); 2] = [
        ("encode_once_share_bytes", fixtures::queue_shared),
        ("encode_per_recipient", fixtures::queue_per_recipient),
    ];
    for size in ROOM_SIZES {
        let members: Vec<ConnId> = (1..=size as u64).map(ConnId).collect();
        group.throughput(Throughput::Elements(size as u64));
        for (name, queue) in strategies {
            group.bench_with_input(BenchmarkId::new(name, size), &members, |b, members| {
                b.iter(|| {
                    queue(black_box(&event), members, &mut out);
                    fixtures::drain(&mut out)
                })
            });
        }
    }
    group.finish();
}

/// Criterion's settings. A real run warms up for 1 s and measures for 3 s per bench (instead of
/// criterion's 3 s + 5 s: these benches are stable, and `cargo bench` also has the long `c10k`
/// comparison to run), and draws criterion's HTML report only when `C10K_BENCH_PLOTS=1` (on
/// two cores its plots take longer than the measurements). In quick mode
/// (`C10K_BENCH_QUICK=1`) the least criterion accepts, and no plots. Command-line flags
/// (`--sample-size`, `--measurement-time`, ...) still override both, because
/// `criterion_group!` applies them after this.
fn config() -> Criterion {
    let criterion = Criterion::default();
    if quick_mode() {
        return criterion
            .warm_up_time(Duration::from_millis(100))
            .measurement_time(Duration::from_millis(300))
            .sample_size(10)
            .without_plots();
    }
    let criterion = criterion
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    if plots_wanted() {
        criterion
    } else {
        criterion.without_plots()
    }
}

/// Whether `C10K_BENCH_PLOTS` asks for criterion's HTML report.
fn plots_wanted() -> bool {
    std::env::var(PLOTS_ENV).is_ok_and(|v| v.trim() == "1")
}

/// The environment variable that turns criterion's HTML report on.
const PLOTS_ENV: &str = "C10K_BENCH_PLOTS";

criterion_group! {
    name = core;
    config = config();
    targets = decode, parse, hub_fanout, encode_broadcast, queue_write, broadcast_encoding
}
criterion_main!(core);

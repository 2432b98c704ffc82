//! The inputs of the core benches, and the exact operations they time.
//!
//! Each measured operation is a plain function here ([`decode_all`], [`parse_line`],
//! [`Room::send_message`], [`queue_shared`] / [`queue_per_recipient`] then [`drain`],
//! [`queue_and_write`]) rather than a closure in the bench file, so the tests below can check it
//! does what the bench claims: every line decodes to a request, every member receives the
//! broadcast, both encoding strategies deliver the same bytes, every queued byte is written.

use chat_core::{
    broadcast_frame, encode, parse_request, parse_request_ref, Action, ConnId, Event, Frame, Hub,
    HubConfig, Id, IdRef, LineDecoder, Outbox, Request, RequestRef, SendQueue,
};
use std::borrow::Cow;
use std::hint::black_box;
use std::io;
use std::time::Instant;

/// A chat message of ordinary length: its `message` request line is about 100 bytes.
pub const TYPICAL_CONTENT: &str = "Build is green again, merging the fix now. See you at standup!";

/// A large message: its request line (about 60 KB) is close to the default `--max-line` of
/// 65,536 bytes, the biggest frame a server accepts.
pub const LARGE_CONTENT_BYTES: usize = 60_000;

/// How much one `read` of a busy connection typically returns: many typical lines at once.
pub const CHUNK_BYTES: usize = 16 * 1024;

/// The sender's nickname in the fan-out fixtures.
const SENDER: &str = "alice";

/// The room the fan-out fixtures use.
const ROOM: &str = "bench";

/// `LARGE_CONTENT_BYTES` of text made of words, as a long paste would be.
pub fn large_content() -> String {
    let words = "the quick brown fox jumps over the lazy dog ";
    words.repeat(LARGE_CONTENT_BYTES / words.len() + 1)[..LARGE_CONTENT_BYTES].to_string()
}

/// One `message` request line (JSON plus `\n`), with an `id` like the load generator's.
pub fn message_line(content: &str, seq: u64) -> Vec<u8> {
    Request::Message {
        content: content.to_string(),
        id: Some(Id::Str(format!("{SENDER}:{seq}"))),
    }
    .to_line()
}

/// Whole typical lines back to back, at least `CHUNK_BYTES` long: one read's worth.
pub fn typical_chunk() -> Vec<u8> {
    let mut chunk = Vec::with_capacity(CHUNK_BYTES + 128);
    let mut seq = 0;
    while chunk.len() < CHUNK_BYTES {
        chunk.extend_from_slice(&message_line(TYPICAL_CONTENT, seq));
        seq += 1;
    }
    chunk
}

/// One large `message` line.
pub fn large_line() -> Vec<u8> {
    message_line(&large_content(), 1)
}

/// The measured decode: feeds `chunks` in order, as successive reads of one connection, and
/// returns how many lines became requests. Every yielded request is passed through
/// `black_box` so the compiler cannot skip building it.
pub fn decode_all<'a>(decoder: &mut LineDecoder, chunks: impl Iterator<Item = &'a [u8]>) -> usize {
    let mut requests = 0;
    for chunk in chunks {
        for inbound in decoder.feed(chunk) {
            if black_box(inbound).is_ok() {
                requests += 1;
            }
        }
    }
    requests
}

/// How a line becomes a request: with strings of its own (`parse_request`), or borrowing them
/// from the line (`parse_request_ref`, what the servers hand the Hub).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse {
    Owned,
    Borrowed,
}

/// The measured parse: one line (without its `\n`) into one request; `true` if it is one.
pub fn parse_line(line: &[u8], how: Parse) -> bool {
    match how {
        Parse::Owned => black_box(parse_request(line)).is_ok(),
        Parse::Borrowed => black_box(parse_request_ref(line)).is_ok(),
    }
}

/// The frame of a `broadcast` encoded from borrowed parts (`chat_core::broadcast_frame`, what
/// the Hub does for a `message`), with the same fields as [`broadcast_event`].
pub fn broadcast_frame_of(content: &str) -> Frame {
    let id = IdRef::Str(Cow::Owned(format!("{SENDER}:1")));
    broadcast_frame(SENDER, ROOM, content, 1_700_000_000_000, Some(&id))
}

/// The measured queue write: `count` frames pushed into a connection's `SendQueue`, then one
/// flush into a writer that takes everything (`io::sink`: the bench times the queue, its
/// `IoSlice` gathering and bookkeeping, not the kernel). Returns the bytes written.
pub fn queue_and_write(queue: &mut SendQueue, frame: &Frame, count: usize) -> usize {
    for _ in 0..count {
        // A push is refused only while the writer refuses bytes; `io::sink` never does.
        let _ = queue.push(frame.clone());
    }
    let before = queue.len_bytes();
    match queue.write_to(&mut io::sink()) {
        Ok(_) => before - queue.len_bytes(),
        Err(_) => 0,
    }
}

/// The event a `message` request turns into.
pub fn broadcast_event(content: &str) -> Event {
    Event::Broadcast {
        from: SENDER.to_string(),
        room: ROOM.to_string(),
        content: content.to_string(),
        ts: 1_700_000_000_000,
        id: Some(Id::Str(format!("{SENDER}:1"))),
    }
}

/// A Hub with one room of `members` joined connections, ready to broadcast.
pub struct Room {
    pub hub: Hub,
    /// The members' connection ids; the first one is the sender.
    pub members: Vec<ConnId>,
    /// Reused between calls, as a server reuses its Outbox.
    pub outbox: Outbox,
    /// The clock passed to the Hub (fixed: the benches measure the rules, not the clock).
    now: Instant,
    /// Sequence number for message ids.
    seq: i64,
}

impl Room {
    /// Connects and joins `members` connections (at least one) to the same room.
    pub fn new(members: usize) -> Room {
        let now = Instant::now();
        // No idle timeout and no rate limit: neither is part of what fan-out costs.
        let mut hub = Hub::new(HubConfig {
            idle_timeout: None,
            rate_limit: 0,
            ..HubConfig::default()
        });
        let mut outbox = Outbox::new();
        let mut ids = Vec::with_capacity(members.max(1));
        for i in 0..members.max(1) {
            let id = hub.connect(now, &mut outbox);
            let nickname = if i == 0 {
                SENDER.to_string()
            } else {
                format!("user{i}")
            };
            let join = Request::Join {
                nickname,
                room: Some(ROOM.to_string()),
            };
            hub.handle(id, Ok(join), now, &mut outbox);
            // Joining tells every member already there: drain as we go so the setup stays
            // small (1,000 joins produce half a million `joined` frames in total).
            outbox.drain().for_each(drop);
            ids.push(id);
        }
        Room {
            hub,
            members: ids,
            outbox,
            now,
            seq: 0,
        }
    }

    /// The measured fan-out: the first member sends `content`; the Hub handles it (borrowed,
    /// as the servers hand it over: `Hub::handle_ref`), and the Outbox is drained as a server
    /// would carry it out (here every frame is only looked at). Returns the number of
    /// deliveries (one per member, the sender included).
    pub fn send_message(&mut self, content: &str) -> usize {
        self.seq += 1;
        let request = RequestRef::Message {
            content: Cow::Borrowed(content),
            id: Some(IdRef::Int(self.seq)),
        };
        self.hub
            .handle_ref(self.members[0], Ok(request), self.now, &mut self.outbox);
        drain(&mut self.outbox)
    }
}

/// What the Hub does: encode the event once, queue a clone of the same `Bytes` for every
/// member (a reference-count increment, no copy of the message).
pub fn queue_shared(event: &Event, members: &[ConnId], out: &mut Outbox) {
    let frame = encode(event);
    for &member in members {
        out.send(member, frame.clone());
    }
}

/// The naive alternative: serialize the event again for every member, one JSON encoding and
/// one allocation each.
pub fn queue_per_recipient(event: &Event, members: &[ConnId], out: &mut Outbox) {
    for &member in members {
        out.send(member, encode(event));
    }
}

/// Empties the Outbox as a server would carry it out, only touching each frame; returns how
/// many frames were sent.
pub fn drain(out: &mut Outbox) -> usize {
    let mut frames = 0;
    for action in out.drain() {
        if let Action::Send { frame, .. } = action {
            black_box(&frame);
            frames += 1;
        }
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::decoder::DEFAULT_MAX_LINE;

    /// A typical line is about 100 bytes, and the chunk is made of whole lines only.
    #[test]
    fn typical_chunk_is_whole_lines_of_about_100_bytes() {
        let line = message_line(TYPICAL_CONTENT, 42);
        assert!((90..=120).contains(&line.len()), "{} bytes", line.len());
        let chunk = typical_chunk();
        assert!(chunk.len() >= CHUNK_BYTES);
        assert_eq!(chunk.last(), Some(&b'\n'));
    }

    /// Every line of the typical chunk decodes to a request, fed whole or in 1,460-byte pieces
    /// (a TCP segment), so the decode bench never measures the rejection path.
    #[test]
    fn typical_chunk_decodes_fully_whole_and_split() {
        let chunk = typical_chunk();
        let lines = chunk.iter().filter(|&&b| b == b'\n').count();
        let mut decoder = LineDecoder::new(DEFAULT_MAX_LINE);
        assert_eq!(decode_all(&mut decoder, std::iter::once(&chunk[..])), lines);
        assert_eq!(decode_all(&mut decoder, chunk.chunks(1460)), lines);
        assert_eq!(decoder.buffered(), 0);
    }

    /// The large line fits the default `--max-line` and decodes, also split into 4 KiB reads.
    #[test]
    fn large_line_fits_max_line_and_decodes() {
        let line = large_line();
        assert!(line.len() > 59_000 && line.len() < DEFAULT_MAX_LINE);
        let mut decoder = LineDecoder::new(DEFAULT_MAX_LINE);
        assert_eq!(decode_all(&mut decoder, std::iter::once(&line[..])), 1);
        assert_eq!(decode_all(&mut decoder, line.chunks(4096)), 1);
        assert!(!decoder.has_failed());
    }

    /// Both parsers accept the typical line, and agree on what it says.
    #[test]
    fn the_typical_line_parses_both_ways() {
        let line = message_line(TYPICAL_CONTENT, 7);
        let line = &line[..line.len() - 1];
        assert!(parse_line(line, Parse::Owned));
        assert!(parse_line(line, Parse::Borrowed));
        let borrowed = parse_request_ref(line).map(RequestRef::into_owned);
        assert_eq!(borrowed, parse_request(line));
    }

    /// The borrowed encoder writes the bytes `encode` writes for the same event.
    #[test]
    fn broadcast_frame_matches_encode() {
        for content in [TYPICAL_CONTENT.to_string(), large_content()] {
            assert_eq!(
                broadcast_frame_of(&content),
                encode(&broadcast_event(&content))
            );
        }
    }

    /// Every queued byte is written, more frames than one `writev` takes included, and the
    /// queue ends empty.
    #[test]
    fn queue_and_write_writes_everything() {
        let frame = encode(&broadcast_event(TYPICAL_CONTENT));
        let mut queue = SendQueue::new(1 << 20);
        for count in [1, 10, 100] {
            assert_eq!(
                queue_and_write(&mut queue, &frame, count),
                count * frame.len()
            );
            assert!(queue.is_empty());
        }
    }

    /// A message in a room of N reaches all N members (the sender included), every time.
    #[test]
    fn room_broadcast_reaches_every_member() {
        for size in [1, 10, 100] {
            let mut room = Room::new(size);
            assert_eq!(room.hub.len(), size);
            assert_eq!(room.send_message(TYPICAL_CONTENT), size);
            assert_eq!(room.send_message(TYPICAL_CONTENT), size);
        }
    }

    /// Both encoding strategies give each member the same bytes; only the shared one gives
    /// them the *same buffer*.
    #[test]
    fn shared_and_per_recipient_frames_are_identical() {
        let event = broadcast_event(TYPICAL_CONTENT);
        let expected = encode(&event);
        let members: Vec<ConnId> = (1..=5).map(ConnId).collect();
        let frames = |out: &Outbox| -> Vec<chat_core::Frame> {
            out.actions()
                .iter()
                .filter_map(|action| match action {
                    Action::Send { frame, .. } => Some(frame.clone()),
                    Action::Close { .. } => None,
                })
                .collect()
        };
        let mut out = Outbox::new();

        queue_shared(&event, &members, &mut out);
        let shared = frames(&out);
        assert_eq!(drain(&mut out), members.len());
        queue_per_recipient(&event, &members, &mut out);
        let separate = frames(&out);
        assert_eq!(drain(&mut out), members.len());

        assert!(shared.iter().chain(&separate).all(|f| *f == expected));
        assert!(shared.iter().all(|f| f.as_ptr() == shared[0].as_ptr()));
        assert_ne!(separate[0].as_ptr(), separate[1].as_ptr());
    }
}

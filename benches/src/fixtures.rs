//! The inputs of the core benches, and the exact operations they time.
//!
//! Each measured operation is a plain function here ([`decode_all`], [`Room::send_message`],
//! [`queue_shared`] / [`queue_per_recipient`] then [`drain`]) rather than a closure in the bench
//! file, so the tests below can check it does what the bench claims: every line decodes to a
//! request, every member receives the broadcast, both encoding strategies deliver the same
//! bytes.

use chat_core::{encode, Action, ConnId, Event, Hub, HubConfig, Id, LineDecoder, Outbox, Request};
use std::hint::black_box;
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

    /// The measured fan-out: the first member sends `content`; the Hub handles it, and the
    /// Outbox is drained as a server would carry it out (here every frame is only looked at).
    /// Returns the number of deliveries (one per member, the sender included).
    pub fn send_message(&mut self, content: &str) -> usize {
        self.seq += 1;
        let request = Request::Message {
            content: content.to_string(),
            id: Some(Id::Int(self.seq)),
        };
        self.hub
            .handle(self.members[0], Ok(request), self.now, &mut self.outbox);
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

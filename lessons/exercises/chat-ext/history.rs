//! Each room's last messages, bounded twice: at most `messages` of them, and at most `bytes` of
//! frames. The oldest go first. A room that empties is forgotten, history and all (PROTOCOL.md:
//! a room exists while it has members), so the memory kept is bounded by the rooms that exist,
//! which are bounded by the connections: the same reasoning as `--max-backlog`.

use chat_core::Frame;
use std::collections::{HashMap, VecDeque};

/// The bounds of one room's history (exercise 13's defaults: 20 messages, 64 KiB).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Messages kept per room.
    pub messages: usize,
    /// Bytes of frames kept per room (each frame as sent, newline included).
    pub bytes: usize,
}

/// The history of every room that has members.
#[derive(Debug)]
pub struct Histories {
    limits: Limits,
    /// By room name: the room's members (to forget it when it empties) and its messages.
    rooms: HashMap<String, Room>,
}

#[derive(Debug, Default)]
struct Room {
    /// Members now in the room, as the Hub's replies told us.
    members: usize,
    /// The `broadcast` frames, oldest first, exactly as the members received them.
    messages: VecDeque<Frame>,
    /// Their total size in bytes.
    bytes: usize,
}

impl Histories {
    pub fn new(limits: Limits) -> Self {
        Histories {
            limits,
            rooms: HashMap::new(),
        }
    }

    /// A member entered `room`.
    pub fn enter(&mut self, room: &str) {
        self.rooms.entry(room.to_string()).or_default().members += 1;
    }

    /// A member left `room`; the last one to leave takes the history with it.
    pub fn leave(&mut self, room: &str) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.members = r.members.saturating_sub(1);
            if r.members == 0 {
                self.rooms.remove(room);
            }
        }
    }

    /// A message was broadcast in `room`: keep its frame, dropping the oldest past the bounds.
    pub fn record(&mut self, room: &str, frame: Frame) {
        let limits = self.limits;
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        r.bytes += frame.len();
        r.messages.push_back(frame);
        while r.messages.len() > limits.messages || r.bytes > limits.bytes {
            match r.messages.pop_front() {
                Some(old) => r.bytes -= old.len(),
                None => break,
            }
        }
    }

    /// The last `limit` messages of `room` (all that are kept when `None`), oldest first.
    pub fn last(&self, room: &str, limit: Option<usize>) -> Vec<Frame> {
        let Some(r) = self.rooms.get(room) else {
            return Vec::new();
        };
        let skip = r.messages.len() - limit.unwrap_or(usize::MAX).min(r.messages.len());
        r.messages.iter().skip(skip).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize, size: usize) -> Frame {
        let mut text = format!("{n:>size$}");
        text.push('\n');
        Frame::from(text)
    }

    /// The newest messages are kept, within both bounds; an emptied room is forgotten.
    #[test]
    fn keeps_the_newest_within_both_bounds() {
        let mut h = Histories::new(Limits {
            messages: 3,
            bytes: 100,
        });
        h.enter("r");
        for n in 0..5 {
            h.record("r", frame(n, 9)); // 10 bytes each
        }
        let kept: Vec<Frame> = h.last("r", None);
        assert_eq!(kept, [frame(2, 9), frame(3, 9), frame(4, 9)]);
        assert_eq!(h.last("r", Some(1)), [frame(4, 9)]);
        assert!(h.last("r", Some(0)).is_empty());
        // 90 bytes: four messages are one too many (2 goes), and 10 + 10 + 90 is over 100 bytes
        // (3 goes too).
        h.record("r", frame(5, 89));
        assert_eq!(h.last("r", None), [frame(4, 9), frame(5, 89)]);
        h.enter("r");
        h.leave("r");
        assert_eq!(h.last("r", None).len(), 2, "one member is still there");
        h.leave("r");
        assert!(h.last("r", None).is_empty(), "the room is gone");
        h.record("nowhere", frame(1, 9));
        assert!(h.last("nowhere", None).is_empty());
    }
}

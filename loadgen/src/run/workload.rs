//! Who is in which room, who talks to whom, and what a message's `id` says.
//!
//! Every message the generator sends carries an `id` of the form
//! `"<conn>:<seq>:<intended_us>:<sent_us>"`: the sending connection's index, its sequence number
//! (0, 1, 2… per connection), and two times in microseconds since the run's clock base — when the
//! schedule *meant* to send it and when it was really handed to the socket. The server echoes
//! the `id` verbatim, so any receiver can tell, without a shared table or a lock, who sent a
//! delivery, whether it arrived in order, and how long it took (sender and receivers live in
//! this one process and read the same monotonic clock).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The run's time base: every timestamp is microseconds since `base`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    base: Instant,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock {
            base: Instant::now(),
        }
    }

    /// Microseconds since the base.
    pub(crate) fn now_us(&self) -> u64 {
        self.base.elapsed().as_micros() as u64
    }

    /// The instant `us` microseconds after the base (to sleep until it).
    pub(crate) fn instant(&self, us: u64) -> Instant {
        self.base + Duration::from_micros(us)
    }
}

/// A parsed message `id`: see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MsgId {
    /// Index of the connection that sent it.
    pub sender: u32,
    /// Its sequence number on that connection, from 0.
    pub seq: u64,
    /// When the schedule meant to send it (open loop), or when it was sent (closed loop).
    pub intended_us: u64,
    /// When it was handed to the socket.
    pub sent_us: u64,
}

impl MsgId {
    /// Appends the `id` text (digits and colons only: it never needs JSON escaping).
    pub(crate) fn write_to(&self, out: &mut String) {
        let _ = write!(
            out,
            "{}:{}:{}:{}",
            self.sender, self.seq, self.intended_us, self.sent_us
        );
    }

    /// Parses an `id` the generator wrote; `None` for anything else (another client's id).
    pub(crate) fn parse(text: &str) -> Option<MsgId> {
        let mut parts = text.split(':');
        let id = MsgId {
            sender: parts.next()?.parse().ok()?,
            seq: parts.next()?.parse().ok()?,
            intended_us: parts.next()?.parse().ok()?,
            sent_us: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(id)
    }
}

/// How the connections are grouped into rooms, and the names they use.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub conns: usize,
    pub room_size: usize,
    /// A short prefix unique to this run, so two runs against one server never collide on a
    /// nickname (`nickname_taken`) nor share a room.
    token: String,
}

impl Layout {
    pub(crate) fn new(conns: usize, room_size: usize) -> Layout {
        // Four base-36 digits from the pid, the clock and a per-process counter: unique enough
        // between concurrent runs.
        static RUNS: AtomicU64 = AtomicU64::new(0);
        let seed = std::process::id() as u64
            ^ RUNS
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
        let mut n = seed % (36 * 36 * 36 * 36);
        let mut token = String::new();
        for _ in 0..4 {
            token.push(char::from_digit((n % 36) as u32, 36).unwrap_or('0'));
            n /= 36;
        }
        Layout {
            conns,
            room_size: room_size.max(1),
            token,
        }
    }

    pub(crate) fn rooms(&self) -> usize {
        self.conns.div_ceil(self.room_size)
    }

    pub(crate) fn room_of(&self, conn: usize) -> usize {
        conn / self.room_size
    }

    /// `g<token>u<conn>`: at most 4 + 2 + 10 characters, well inside the 32-character limit.
    pub(crate) fn nickname(&self, conn: usize) -> String {
        format!("g{}u{conn}", self.token)
    }

    pub(crate) fn room_name(&self, room: usize) -> String {
        format!("g{}r{room}", self.token)
    }
}

/// Who actually joined, known once the connect phase is over; the senders and receivers are
/// planned from it (a connection that failed to join sends nothing and is expected by no one).
#[derive(Debug, Clone)]
pub(crate) struct Membership {
    /// The joined connections of each room, in index order.
    pub members: Vec<Vec<u32>>,
}

impl Membership {
    pub(crate) fn new(layout: &Layout, joined: &[bool]) -> Membership {
        let mut members = vec![Vec::new(); layout.rooms()];
        for (conn, ok) in joined.iter().enumerate() {
            if *ok {
                members[layout.room_of(conn)].push(conn as u32);
            }
        }
        Membership { members }
    }

    /// The private-message partner of `conn`: the next joined member of its room, in a ring.
    pub(crate) fn partner(&self, layout: &Layout, conn: u32) -> Option<u32> {
        let room = &self.members[layout.room_of(conn as usize)];
        let pos = room.iter().position(|&m| m == conn)?;
        let next = room[(pos + 1) % room.len()];
        (next != conn).then_some(next)
    }

    /// The connection whose partner is `conn` (it receives that one's private messages).
    pub(crate) fn partner_of(&self, layout: &Layout, conn: u32) -> Option<u32> {
        let room = &self.members[layout.room_of(conn as usize)];
        let pos = room.iter().position(|&m| m == conn)?;
        let prev = room[(pos + room.len() - 1) % room.len()];
        (prev != conn).then_some(prev)
    }

    pub(crate) fn room_members(&self, layout: &Layout, conn: u32) -> &[u32] {
        &self.members[layout.room_of(conn as usize)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An id survives the round trip through its text, and foreign ids are rejected.
    #[test]
    fn msg_id_round_trip() {
        let id = MsgId {
            sender: 9999,
            seq: 123_456,
            intended_us: 3_600_000_000,
            sent_us: 3_600_000_123,
        };
        let mut text = String::new();
        id.write_to(&mut text);
        assert!(text.len() <= chat_core::protocol::MAX_ID_BYTES);
        assert_eq!(MsgId::parse(&text), Some(id));
        assert_eq!(MsgId::parse("1:2:3"), None);
        assert_eq!(MsgId::parse("1:2:3:4:5"), None);
        assert_eq!(MsgId::parse("hello"), None);
    }

    /// Rooms are filled in index order and partners form a ring over the joined members only.
    #[test]
    fn rooms_and_partners() {
        let layout = Layout::new(7, 3);
        assert_eq!(layout.rooms(), 3);
        let joined = [true, false, true, true, true, true, true];
        let m = Membership::new(&layout, &joined);
        assert_eq!(m.members, vec![vec![0, 2], vec![3, 4, 5], vec![6]]);
        assert_eq!(m.partner(&layout, 0), Some(2));
        assert_eq!(m.partner(&layout, 2), Some(0));
        assert_eq!(m.partner(&layout, 5), Some(3));
        assert_eq!(m.partner_of(&layout, 3), Some(5));
        assert_eq!(m.partner(&layout, 6), None);
        assert_eq!(m.partner(&layout, 1), None);
        assert!(layout.nickname(9999).chars().count() <= 32);
    }
}

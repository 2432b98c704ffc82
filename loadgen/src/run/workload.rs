//! Who is in which room, which server each connection talks to, who talks to whom, and what a
//! message's `id` says.
//!
//! Every message the generator sends carries an `id` of the form
//! `"<conn>:<seq>:<intended_us>:<sent_us>"`: the sending connection's index, its sequence number
//! (0, 1, 2… per connection), and two times in microseconds since the run's clock base — when the
//! schedule *meant* to send it and when it was really handed to the socket. The server echoes
//! the `id` verbatim, so any receiver can tell, without a shared table or a lock, who sent a
//! delivery, whether it arrived in order, and how long it took.
//!
//! The clock is `CLOCK_MONOTONIC`, which is one clock for the whole machine: the parent picks the
//! base and hands it to its worker processes, so every process reads the same timeline and the
//! schedule they share means the same instants in all of them.

use super::Spread;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

/// Reads one of the kernel's clocks, in nanoseconds: `CLOCK_MONOTONIC` (what
/// `std::time::Instant` reads on Linux, but as a number that can be sent to another process),
/// or `CLOCK_THREAD_CPUTIME_ID` (the CPU time of the calling thread).
pub(crate) fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the struct we pass; both clocks always exist.
    unsafe {
        libc::clock_gettime(clock, &mut ts);
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// The run's time base: every timestamp is microseconds since `base_ns`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Clock {
    /// `CLOCK_MONOTONIC` at the start of the run, in nanoseconds; shared by every process.
    base_ns: u64,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock {
            base_ns: monotonic_ns(),
        }
    }

    /// Microseconds since the base.
    pub(crate) fn now_us(&self) -> u64 {
        monotonic_ns().saturating_sub(self.base_ns) / 1000
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
    /// Appends the `id` text (digits and colons only: it never needs JSON escaping). Written
    /// by hand rather than with `write!`: it is on the path of every message.
    pub(crate) fn write_to(&self, out: &mut Vec<u8>) {
        push_decimal(out, self.sender as u64);
        out.push(b':');
        push_decimal(out, self.seq);
        out.push(b':');
        push_decimal(out, self.intended_us);
        out.push(b':');
        push_decimal(out, self.sent_us);
    }

    /// Parses an `id` the generator wrote; `None` for anything else (another client's id).
    /// One pass over the bytes: it runs for every copy received.
    pub(crate) fn parse(text: &[u8]) -> Option<MsgId> {
        // At most 19 digits per number: no u64 of that length overflows, so no checks inside.
        const MAX_DIGITS: usize = 19;
        let mut fields = [0u64; 4];
        let (mut field, mut digits) = (0, 0);
        for &b in text {
            let digit = b.wrapping_sub(b'0');
            if digit < 10 {
                if digits == MAX_DIGITS {
                    return None;
                }
                fields[field] = fields[field] * 10 + digit as u64;
                digits += 1;
            } else if b == b':' && field < 3 && digits > 0 {
                field += 1;
                digits = 0;
            } else {
                return None;
            }
        }
        if field != 3 || digits == 0 {
            return None;
        }
        Some(MsgId {
            sender: u32::try_from(fields[0]).ok()?,
            seq: fields[1],
            intended_us: fields[2],
            sent_us: fields[3],
        })
    }
}

pub(crate) fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// How the connections are grouped into rooms, and the names they use.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Layout {
    pub conns: usize,
    pub room_size: usize,
    /// A short prefix unique to this run, so two runs against one server never collide on a
    /// nickname (`nickname_taken`) nor share a room. Chosen by the parent, shared by its workers.
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

    /// The connections of `rooms` (a range of whole rooms), as a range of connection indices.
    pub(crate) fn conns_of(&self, rooms: &Range<usize>) -> Range<usize> {
        (rooms.start * self.room_size).min(self.conns)..(rooms.end * self.room_size).min(self.conns)
    }

    /// Which of `addrs` servers connection `conn` talks to. `Spread::Members` deals each room's
    /// members out over the servers (member 0 of room r to server r mod n, member 1 to the next…),
    /// so every room of two or more has members on several servers and each message must cross
    /// between them; `Spread::Rooms` keeps each room on one server (round robin over the rooms).
    pub(crate) fn addr_slot(&self, conn: usize, addrs: usize, spread: Spread) -> usize {
        let room = self.room_of(conn);
        match spread {
            Spread::Members => (room + conn % self.room_size) % addrs.max(1),
            Spread::Rooms => room % addrs.max(1),
        }
    }

    /// `g<token>u<conn>`: at most 4 + 2 + 10 characters, well inside the 32-character limit.
    pub(crate) fn nickname(&self, conn: usize) -> String {
        format!("g{}u{conn}", self.token)
    }

    /// The nickname of `conn`'s `incarnation`-th reconnect (`--churn`): `g<token>u<conn>c<n>`,
    /// a fresh one each time, so a reconnect never waits for the server to forget the last.
    pub(crate) fn nickname_of(&self, conn: usize, incarnation: u32) -> String {
        match incarnation {
            0 => self.nickname(conn),
            n => format!("g{}u{conn}c{n}", self.token),
        }
    }

    /// Whether `conn` churns (`--churn`): the last member of every full room.
    pub(crate) fn is_churner(&self, conn: usize) -> bool {
        self.room_size >= 2 && conn % self.room_size == self.room_size - 1
    }

    /// How many connections churn: one per full room.
    pub(crate) fn churners(&self) -> usize {
        if self.room_size >= 2 {
            self.conns / self.room_size
        } else {
            0
        }
    }

    pub(crate) fn room_name(&self, room: usize) -> String {
        format!("g{}r{room}", self.token)
    }
}

/// Who actually joined, known once the connect phase is over; the senders and receivers are
/// planned from it (a connection that failed to join sends nothing and is expected by no one).
/// One process plans only its own rooms: every room lives whole inside one process.
#[derive(Debug, Clone)]
pub(crate) struct Membership {
    /// The first room this membership covers.
    first_room: usize,
    /// The joined connections of each room, in index order.
    pub members: Vec<Vec<u32>>,
}

impl Membership {
    /// `joined[i]` says whether connection `conns_of(rooms).start + i` joined.
    pub(crate) fn new(layout: &Layout, rooms: Range<usize>, joined: &[bool]) -> Membership {
        let first_conn = layout.conns_of(&rooms).start;
        let mut members = vec![Vec::new(); rooms.len()];
        for (i, ok) in joined.iter().enumerate() {
            if *ok {
                let conn = first_conn + i;
                members[layout.room_of(conn) - rooms.start].push(conn as u32);
            }
        }
        Membership {
            first_room: rooms.start,
            members,
        }
    }

    /// The private-message partner of `conn`: the next joined member of its room, in a ring.
    pub(crate) fn partner(&self, layout: &Layout, conn: u32) -> Option<u32> {
        let room = self.room_members(layout, conn);
        let pos = room.iter().position(|&m| m == conn)?;
        let next = room[(pos + 1) % room.len()];
        (next != conn).then_some(next)
    }

    /// The connection whose partner is `conn` (it receives that one's private messages).
    pub(crate) fn partner_of(&self, layout: &Layout, conn: u32) -> Option<u32> {
        let room = self.room_members(layout, conn);
        let pos = room.iter().position(|&m| m == conn)?;
        let prev = room[(pos + room.len() - 1) % room.len()];
        (prev != conn).then_some(prev)
    }

    pub(crate) fn room_members(&self, layout: &Layout, conn: u32) -> &[u32] {
        &self.members[layout.room_of(conn as usize) - self.first_room]
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
        let mut text = Vec::new();
        id.write_to(&mut text);
        assert_eq!(text, b"9999:123456:3600000000:3600000123");
        assert!(text.len() <= chat_core::protocol::MAX_ID_BYTES);
        assert_eq!(MsgId::parse(&text), Some(id));
        let zero = MsgId {
            sender: 0,
            seq: 0,
            intended_us: 0,
            sent_us: 0,
        };
        text.clear();
        zero.write_to(&mut text);
        assert_eq!(MsgId::parse(&text), Some(zero));
        for foreign in [
            &b"1:2:3"[..],
            b"1:2:3:4:5",
            b"hello",
            b"1::3:4",
            b"-1:2:3:4",
            b"4294967296:0:0:0",
            b"1:2:3:99999999999999999999999",
        ] {
            assert_eq!(MsgId::parse(foreign), None, "{:?}", foreign);
        }
    }

    /// Rooms are filled in index order and partners form a ring over the joined members only;
    /// a membership of some rooms only indexes them from its first room.
    #[test]
    fn rooms_and_partners() {
        let layout = Layout::new(7, 3);
        assert_eq!(layout.rooms(), 3);
        assert_eq!(layout.conns_of(&(1..3)), 3..7);
        let joined = [true, false, true, true, true, true, true];
        let m = Membership::new(&layout, 0..3, &joined);
        assert_eq!(m.members, vec![vec![0, 2], vec![3, 4, 5], vec![6]]);
        assert_eq!(m.partner(&layout, 0), Some(2));
        assert_eq!(m.partner(&layout, 2), Some(0));
        assert_eq!(m.partner(&layout, 5), Some(3));
        assert_eq!(m.partner_of(&layout, 3), Some(5));
        assert_eq!(m.partner(&layout, 6), None);
        assert_eq!(m.partner(&layout, 1), None);
        assert!(layout.nickname(9999).chars().count() <= 32);
        assert!(layout.nickname_of(99_999, u32::MAX).chars().count() <= 32);
        assert_eq!(layout.nickname_of(5, 0), layout.nickname(5));
        assert_ne!(layout.nickname_of(5, 1), layout.nickname(5));
        // Rooms of 3 over 7 connections: 0-2, 3-5, 6; the full rooms' last members churn.
        let churners: Vec<usize> = (0..7).filter(|&c| layout.is_churner(c)).collect();
        assert_eq!(churners, vec![2, 5]);
        assert_eq!(layout.churners(), 2);
        let tail = Membership::new(&layout, 1..3, &joined[3..]);
        assert_eq!(tail.room_members(&layout, 4), &[3, 4, 5]);
        assert_eq!(tail.room_members(&layout, 6), &[6]);
    }

    /// Spreading members puts every room on every server (rooms of 4 over 2 servers: 2 and 2)
    /// and balances the servers; spreading rooms keeps each room on one server.
    #[test]
    fn address_slots() {
        let layout = Layout::new(40, 4);
        for room in 0..10 {
            let slots: Vec<usize> = (room * 4..room * 4 + 4)
                .map(|c| layout.addr_slot(c, 2, Spread::Members))
                .collect();
            assert_eq!(slots.iter().filter(|&&s| s == 0).count(), 2, "{slots:?}");
            let whole: Vec<usize> = (room * 4..room * 4 + 4)
                .map(|c| layout.addr_slot(c, 2, Spread::Rooms))
                .collect();
            assert!(whole.iter().all(|&s| s == room % 2), "{whole:?}");
        }
        // Odd room sizes still balance over the run: rooms take turns holding the extra one.
        let odd = Layout::new(50, 5);
        let on_first = (0..50)
            .filter(|&c| odd.addr_slot(c, 2, Spread::Members) == 0)
            .count();
        assert_eq!(on_first, 25);
        assert_eq!(odd.addr_slot(7, 1, Spread::Members), 0);
    }
}

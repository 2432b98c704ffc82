//! The token table: what each completion is about.
//!
//! A completion queue entry (CQE) brings back three things: the `user_data` we put into the
//! submission (64 bits, untouched by the kernel), a result (a byte count, a slot number, or
//! `-errno`), and flags. Nothing else: not the socket, not the buffer, not what we were doing.
//! So `user_data` must say, on its own, which operation finished and for whom. tokio-rs/io-uring's
//! `tcp_echo` example keeps a slab of tokens and puts the slab index there; here the table of
//! connections is `Peers` (`peers.rs`, keyed by `ConnId` like chat-epoll's), and `user_data`
//! packs the *operation* in its top 8 bits and the connection's [`ConnId`] in the other 56.
//!
//! Why the `ConnId` and not the connection's slot in the ring's file table: the kernel reuses a
//! slot as soon as it is closed (as it reuses a descriptor number), and a completion for the old
//! connection may still be on its way. A `ConnId` is never reused, so a late completion for a
//! closed connection finds no entry and is only cleaned up after (its buffer goes back).

use chat_core::ConnId;

/// What a completion is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// The multishot accept on the listener: one completion per new connection.
    Accept,
    /// The timeout linked in front of a re-armed accept (the pause after running out of slots):
    /// its completion only says the wait is over.
    AcceptPause,
    /// The loop's timer, set for the earliest deadline (`timer.rs`).
    Timer,
    /// Moving the loop's timer to an earlier deadline. Completes only on failure.
    TimerUpdate,
    /// The read on the eventfd the signal thread writes to (`wake.rs`).
    Wake,
    /// An operation whose completion carries nothing we act on (cancellations, closing a slot no
    /// connection owns): its result is only logged.
    Discard,
    /// Asking the socket in a slot for its peer's address (`peer_name.rs`). By slot: the
    /// connection has no `ConnId` yet, and the slot is not reused before the answer.
    PeerName(u32),
    /// A connection's multishot receive: one completion per chunk of input.
    Recv(ConnId),
    /// A connection's write (at most one in flight per connection).
    Write(ConnId),
    /// A connection's `shutdown(SHUT_WR)`: our FIN.
    Shutdown(ConnId),
    /// Closing a connection's slot in the file table: the end of it.
    Close(ConnId),
}

/// Operations on connections keep the `ConnId` in the low 56 bits.
const ID_BITS: u32 = 56;
const ID_MASK: u64 = (1 << ID_BITS) - 1;

impl Token {
    /// The `user_data` of the submission.
    pub fn encode(self) -> u64 {
        let (op, id) = match self {
            Token::Accept => (1, 0),
            Token::AcceptPause => (2, 0),
            Token::Timer => (3, 0),
            Token::TimerUpdate => (4, 0),
            Token::Wake => (5, 0),
            Token::Discard => (6, 0),
            Token::PeerName(slot) => (7, u64::from(slot)),
            Token::Recv(id) => (16, id.0),
            Token::Write(id) => (17, id.0),
            Token::Shutdown(id) => (18, id.0),
            Token::Close(id) => (19, id.0),
        };
        debug_assert!(id <= ID_MASK, "ConnId {id} does not fit in user_data");
        (op << ID_BITS) | (id & ID_MASK)
    }

    /// Reads back a completion's `user_data`; `None` for a value we never submit.
    pub fn decode(user_data: u64) -> Option<Token> {
        let id = ConnId(user_data & ID_MASK);
        Some(match user_data >> ID_BITS {
            1 => Token::Accept,
            2 => Token::AcceptPause,
            3 => Token::Timer,
            4 => Token::TimerUpdate,
            5 => Token::Wake,
            6 => Token::Discard,
            7 => Token::PeerName(id.0 as u32),
            16 => Token::Recv(id),
            17 => Token::Write(id),
            18 => Token::Shutdown(id),
            19 => Token::Close(id),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_token_survives_the_round_trip() {
        let id = ConnId((1 << 56) - 1);
        for token in [
            Token::Accept,
            Token::AcceptPause,
            Token::Timer,
            Token::TimerUpdate,
            Token::Wake,
            Token::Discard,
            Token::PeerName(u32::MAX),
            Token::Recv(id),
            Token::Write(ConnId(1)),
            Token::Shutdown(id),
            Token::Close(ConnId(42)),
        ] {
            assert_eq!(Token::decode(token.encode()), Some(token));
        }
        assert_eq!(Token::decode(0), None);
    }
}

//! # chat-core: everything the seven servers share
//!
//! The chat protocol of `PROTOCOL.md` (at the root of the repository), implemented once, with no
//! I/O, so that the servers of this workspace differ *only* in how they move bytes. A server's
//! job is:
//!
//! 1. accept a socket and call [`Hub::connect_from`] with the peer's address;
//! 2. feed what it reads to that connection's [`LineDecoder`] and pass each line to
//!    [`Hub::handle`];
//! 3. after each request, carry out the [`Action`]s the Hub put in the [`Outbox`] with
//!    [`carry_out`] (or [`handle_lines`], which does both steps for one read): frames go into
//!    each connection's [`SendQueue`] through the server's [`Sink`], closes are passed on, a
//!    connection over `--max-backlog` is cut off; then write the queues out;
//! 4. call [`Hub::disconnect`] when a peer goes away, [`Hub::tick`] when time passes, and
//!    [`Hub::shutdown`] on SIGINT/SIGTERM, each followed by [`carry_out`].
//!
//! | module | concept |
//! |---|---|
//! | [`protocol`] | requests (owned, and borrowed from the line), events, error codes, and parsing a line into a request |
//! | [`frames`] | encoding events into the lines sent, once per broadcast |
//! | [`names`] | the naming rules for nicknames and rooms |
//! | [`decoder`] | splitting a byte stream into lines, with the `--max-line` limit |
//! | [`hub`] | the chat rules: rooms, nicknames, broadcast, idle timeout, rate limit |
//! | [`outbox`] | what the Hub asks the I/O layer to do |
//! | [`maps`] | the tables that live as long as the server, and why they must not grow under churn |
//! | [`executor`] | doing it: the [`Sink`] trait, [`carry_out`], and the rule (after each request) |
//! | [`send_queue`] | one connection's unsent frames: short writes and the backlog bound |
//! | [`rate`] | the token bucket behind `--rate-limit` |
//! | [`config`] | the flags every server takes |
//! | [`net`], [`shutdown`] | listener setup, socket options, fd limit, accept errors, signals (the OS side) |
//! | [`time`], [`sync`] | small helpers: a loop's next timeout, locks that survive a panic |
//!
//! What is *not* here: waiting for sockets. chat-core never reads or writes a socket of its own
//! accord (a [`SendQueue`] writes only into what its caller hands it), so each I/O model stays in
//! its server, and the single-threaded event loop that chat-poll and chat-epoll share is a crate
//! of its own, `chat-readiness`.

pub mod config;
pub mod decoder;
pub mod executor;
pub mod frames;
pub mod hub;
pub mod maps;
pub mod names;
pub mod net;
pub mod outbox;
pub mod protocol;
pub mod rate;
pub mod send_queue;
pub mod shutdown;
pub mod sync;
pub mod time;

pub use config::{ServerArgs, SocketOptions};
pub use decoder::LineDecoder;
pub use executor::{carry_out, handle_lines, Sink};
pub use frames::{
    bad_name_frame, broadcast_frame, clip, encode, error_frame, pong_frame, private_frame,
    rate_limited_frame, taken_frame,
};
pub use hub::{Hub, HubConfig, DEFAULT_ROOM};
pub use maps::{ConnIdHasher, ConnIdMap, SteadyMap};
pub use outbox::{Action, CloseReason, ConnId, Frame, Outbox};
pub use protocol::{
    parse_request, parse_request_ref, ErrorCode, Event, Id, IdRef, Inbound, InboundRef, Rejection,
    Request, RequestRef, RoomInfo,
};
pub use send_queue::{BacklogFull, Flush, SendQueue};
pub use shutdown::Shutdown;

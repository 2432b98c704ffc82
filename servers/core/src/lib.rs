//! # chat-core: everything the seven servers share
//!
//! The chat protocol of `shared/spec/protocol.md`, implemented once, with no I/O, so that the
//! servers of this workspace differ *only* in how they move bytes. A server's job is:
//!
//! 1. accept a socket and call [`Hub::connect`];
//! 2. feed what it reads to that connection's [`LineDecoder`] and pass each line to
//!    [`Hub::handle`];
//! 3. carry out the [`Action`]s the Hub put in the [`Outbox`]: push frames into each
//!    connection's [`SendQueue`] (bounded by `--max-backlog`) and write them out, close
//!    connections when told;
//! 4. call [`Hub::disconnect`] when a peer goes away, [`Hub::tick`] when time passes, and
//!    [`Hub::shutdown`] on SIGINT/SIGTERM.
//!
//! | module | concept |
//! |---|---|
//! | [`protocol`] | requests, events, error codes, and parsing a line into a request |
//! | [`names`] | the naming rules for nicknames and rooms |
//! | [`decoder`] | splitting a byte stream into lines, with the `--max-line` limit |
//! | [`hub`] | the chat rules: rooms, nicknames, broadcast, idle timeout, rate limit |
//! | [`outbox`] | what the Hub asks the I/O layer to do |
//! | [`send_queue`] | one connection's unsent frames: short writes and the backlog bound |
//! | [`rate`] | the token bucket behind `--rate-limit` |
//! | [`config`] | the flags every server takes |
//! | [`net`], [`shutdown`] | listener setup, socket options, fd limit, signals (the OS side) |

pub mod config;
pub mod decoder;
pub mod hub;
pub mod names;
pub mod net;
pub mod outbox;
pub mod protocol;
pub mod rate;
pub mod send_queue;
pub mod shutdown;

pub use config::{ServerArgs, SocketOptions};
pub use decoder::LineDecoder;
pub use hub::{
    bad_name_frame, clip, encode, error_frame, rate_limited_frame, taken_frame, Hub, HubConfig,
    DEFAULT_ROOM,
};
pub use outbox::{Action, CloseReason, ConnId, Frame, Outbox};
pub use protocol::{parse_request, ErrorCode, Event, Id, Inbound, Rejection, Request, RoomInfo};
pub use send_queue::{BacklogFull, Flush, SendQueue};
pub use shutdown::Shutdown;

//! The wire protocol of `PROTOCOL.md`: the requests a client sends, the events a
//! server sends back, and the error codes.
//!
//! Requests are *parsed by hand* rather than with a derived `Deserialize`, because the protocol
//! distinguishes failures that serde would lump together: a missing or mistyped field is
//! `bad_request`, an unknown `type` is `unknown_type`, and unknown fields are ignored.
//! [`parse_request_ref`] (in `protocol/parse.rs`) is the one place those rules live.
//!
//! A request comes in two forms:
//! - [`Request`] owns its strings: what a client builds and sends, and what a server may keep;
//! - [`RequestRef`] borrows them from the line it was parsed from: what a
//!   server hands the Hub right away, so that a `message` costs no copy of its content or `id`
//!   on the way in (`protocol/request_ref.rs`).

mod parse;
mod request_ref;

pub use parse::parse_request_ref;
pub use request_ref::{IdRef, InboundRef, RequestRef};

use serde::{Deserialize, Serialize};
use std::fmt;

/// A client-chosen correlation id, echoed verbatim in `broadcast`, `private` and `pong`.
///
/// `PROTOCOL.md` allows a string of at most 64 bytes or a signed 64-bit integer. The load generator
/// puts `sender:sequence` here to detect lost, duplicated and reordered deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Id {
    Int(i64),
    Str(String),
}

/// The longest string `id` `PROTOCOL.md` allows, in bytes.
pub const MAX_ID_BYTES: usize = 64;

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Int(n) => write!(f, "{n}"),
            Id::Str(s) => f.write_str(s),
        }
    }
}

/// Everything a client may ask, one variant per `type`.
///
/// `Serialize` is derived so the client and the load generator can build requests; servers
/// never deserialize with serde (see [`parse_request`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    Join {
        nickname: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<String>,
    },
    Nick {
        nickname: String,
    },
    Message {
        content: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<Id>,
    },
    Private {
        to: String,
        content: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<Id>,
    },
    JoinRoom {
        room: String,
    },
    ListUsers {
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<String>,
    },
    ListRooms,
    Ping {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<Id>,
    },
    Quit,
}

impl Request {
    /// Requests allowed before a successful `join`.
    pub fn allowed_before_join(&self) -> bool {
        matches!(
            self,
            Request::Join { .. } | Request::Ping { .. } | Request::Quit
        )
    }

    /// Encodes the request as one protocol line (JSON plus `\n`).
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).expect("a Request always serializes");
        line.push(b'\n');
        line
    }
}

/// One entry of the `rooms` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    pub name: String,
    /// The member count.
    pub users: usize,
}

/// Everything a server may send, one variant per `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Welcome {
        nickname: String,
        room: String,
        users: Vec<String>,
    },
    Joined {
        nickname: String,
        room: String,
    },
    Left {
        nickname: String,
        room: String,
    },
    Renamed {
        from: String,
        to: String,
        room: String,
    },
    Broadcast {
        from: String,
        room: String,
        content: String,
        ts: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<Id>,
    },
    Private {
        from: String,
        to: String,
        content: String,
        ts: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<Id>,
    },
    Users {
        room: String,
        users: Vec<String>,
    },
    Rooms {
        rooms: Vec<RoomInfo>,
    },
    Room {
        room: String,
        users: Vec<String>,
    },
    Pong {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<Id>,
    },
    Bye,
    Error {
        code: ErrorCode,
        message: String,
    },
}

/// The error codes of `PROTOCOL.md` (section 5). `line_too_long`, `server_full`, `idle_timeout` and
/// `shutting_down` close the connection after being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    UnknownType,
    NotJoined,
    AlreadyJoined,
    BadNickname,
    NicknameTaken,
    BadRoom,
    NoSuchUser,
    RateLimited,
    LineTooLong,
    ServerFull,
    IdleTimeout,
    ShuttingDown,
    /// A cluster node cannot reach the shared state (Redis) right now: the request had no
    /// effect and may be retried. Not closing. Only cluster nodes send it (PROTOCOL.md,
    /// version 1.1).
    Unavailable,
}

impl ErrorCode {
    /// Every code, in the order of `PROTOCOL.md` (tests iterate over it).
    pub const ALL: [ErrorCode; 14] = [
        ErrorCode::BadRequest,
        ErrorCode::UnknownType,
        ErrorCode::NotJoined,
        ErrorCode::AlreadyJoined,
        ErrorCode::BadNickname,
        ErrorCode::NicknameTaken,
        ErrorCode::BadRoom,
        ErrorCode::NoSuchUser,
        ErrorCode::RateLimited,
        ErrorCode::LineTooLong,
        ErrorCode::ServerFull,
        ErrorCode::IdleTimeout,
        ErrorCode::ShuttingDown,
        ErrorCode::Unavailable,
    ];

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::AlreadyJoined => "already_joined",
            ErrorCode::BadNickname => "bad_nickname",
            ErrorCode::NicknameTaken => "nickname_taken",
            ErrorCode::BadRoom => "bad_room",
            ErrorCode::NoSuchUser => "no_such_user",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::LineTooLong => "line_too_long",
            ErrorCode::ServerFull => "server_full",
            ErrorCode::IdleTimeout => "idle_timeout",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::Unavailable => "unavailable",
        }
    }

    /// Whether the server closes the connection after sending this error.
    pub fn closes_connection(self) -> bool {
        matches!(
            self,
            ErrorCode::LineTooLong
                | ErrorCode::ServerFull
                | ErrorCode::IdleTimeout
                | ErrorCode::ShuttingDown
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a line did not become a [`Request`]: the error code and a human message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: ErrorCode,
    pub message: String,
}

impl Rejection {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Rejection {
            code,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Rejection::new(ErrorCode::BadRequest, message)
    }
}

/// What the decoder hands the [`Hub`](crate::Hub) for each line: a request, or the reason the
/// line is not one.
pub type Inbound = Result<Request, Rejection>;

/// Parses one line (without its `\n`, and without a final `\r`) into a request.
///
/// Order of checks, as `PROTOCOL.md` settles it: UTF-8, then JSON, then "is an object", then `type`
/// (missing or not a string: `bad_request`; unknown: `unknown_type`), then that type's fields.
/// The checks are [`parse_request_ref`]'s (in `protocol/parse.rs`); this is the same request
/// with strings of its own.
pub fn parse_request(line: &[u8]) -> Inbound {
    parse_request_ref(line).map(RequestRef::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `unavailable` (v1.1, cluster nodes only) is on the wire as such, listed in `ALL`, and
    /// does not close the connection: the client may retry.
    #[test]
    fn unavailable_is_a_non_closing_code() {
        let code = ErrorCode::Unavailable;
        assert_eq!(code.as_str(), "unavailable");
        assert_eq!(serde_json::to_value(code).unwrap(), "unavailable");
        assert!(!code.closes_connection());
        assert!(ErrorCode::ALL.contains(&code));
    }
}

//! The `hub` target's input: a Hub configuration and a sequence of operations, decoded from the
//! fuzzer's bytes with `arbitrary`.
//!
//! Names and message texts come mostly from small pools, so that nicknames collide (also
//! ignoring case, also outside ASCII) and rooms fill up; `Any` lets the fuzzer try anything.
//!
//! The seed scenarios of `fuzz/corpus/hub/` are in [`crate::seeds`].

use arbitrary::Arbitrary;
use chat_core::{ErrorCode, HubConfig, Id, Inbound, Rejection, Request};
use std::time::Duration;

#[derive(Debug, Arbitrary)]
pub struct Input<'a> {
    /// The Hub's limits for this run.
    pub config: Config,
    /// What happens to the Hub, in order.
    pub ops: Vec<Op<'a>>,
}

/// The Hub's limits, kept small so they are reached.
#[derive(Debug, Arbitrary)]
pub struct Config {
    /// `--max-conns`: 1 to 8.
    pub max_conns: u8,
    /// `--idle-timeout` in seconds: 1 to 8, or off.
    pub idle_timeout: Option<u8>,
    /// `--rate-limit`: off unless this is below 64, then 1 to 4 per second.
    pub rate_limit: u8,
}

impl Config {
    pub fn hub_config(&self) -> HubConfig {
        HubConfig {
            max_conns: usize::from(self.max_conns % 8) + 1,
            idle_timeout: self
                .idle_timeout
                .map(|s| Duration::from_secs(u64::from(s % 8) + 1)),
            rate_limit: match self.rate_limit {
                r if r < 64 => u32::from(r % 4) + 1,
                _ => 0,
            },
            // Off: the target connects with `Hub::connect`, which has no address to count
            // (the per-address limit is `connect_from`'s, tested by the servers' suites).
            max_conns_per_ip: 0,
        }
    }
}

/// One thing a server does to its Hub. `conn` picks any id handed out so far (closed ones
/// too, to test late input).
#[derive(Debug, Arbitrary)]
pub enum Op<'a> {
    Connect,
    /// A well-formed request (it still goes through `parse_request`, as in a server).
    Request {
        conn: u8,
        request: ArbRequest,
    },
    /// Any bytes as one line.
    Line {
        conn: u8,
        line: &'a [u8],
    },
    /// The decoder reported `line_too_long`.
    LineTooLong {
        conn: u8,
    },
    Disconnect {
        conn: u8,
    },
    /// Time passes (up to ~65 s), then `tick`.
    Tick {
        advance_ms: u16,
    },
    Shutdown,
}

#[derive(Debug, Arbitrary)]
pub enum ArbRequest {
    Join {
        nickname: Name,
        room: Option<Name>,
    },
    Nick {
        nickname: Name,
    },
    Message {
        content: Text,
        id: Option<ArbId>,
    },
    Private {
        to: Name,
        content: Text,
        id: Option<ArbId>,
    },
    JoinRoom {
        room: Name,
    },
    ListUsers {
        room: Option<Name>,
    },
    ListRooms,
    Ping {
        id: Option<ArbId>,
    },
    Quit,
}

/// A nickname or room name.
#[derive(Debug, Arbitrary)]
pub enum Name {
    Pool(u8),
    Any(String),
}

/// A message's `content`.
#[derive(Debug, Arbitrary)]
pub enum Text {
    Pool(u8),
    Any(String),
}

#[derive(Debug, Arbitrary)]
pub enum ArbId {
    Int(i64),
    Str(String),
}

/// Valid and invalid names that matter: case variants (also outside ASCII: `Å`/`å`, the Kelvin
/// sign `K` whose lowercase is `k`, dotted `İ`), the default room, whitespace and control
/// characters, the 32-character limit.
pub const NAMES: &[&str] = &[
    "alice",
    "Alice",
    "ALICE",
    "bob",
    "Bob",
    "ålice",
    "Ålice",
    "李雷",
    "🦀",
    "lobby",
    "rust",
    "k",
    "\u{212A}",
    "İ",
    "i\u{307}",
    "a b",
    "a\u{3000}b",
    "a\u{85}b",
    "",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
];

/// Contents: ordinary, empty (a `bad_request`), with characters JSON must escape, non-ASCII.
pub const TEXTS: &[&str] = &[
    "hello",
    "",
    "line\nbreak \"quoted\" \\ tab\t nul\u{0}",
    "你好 🦀 ünïcödé",
    " ",
];

impl Name {
    pub fn get(&self) -> String {
        match self {
            Name::Pool(i) => NAMES[usize::from(*i) % NAMES.len()].to_string(),
            Name::Any(s) => s.clone(),
        }
    }
}

impl Text {
    pub fn get(&self) -> String {
        match self {
            Text::Pool(i) => TEXTS[usize::from(*i) % TEXTS.len()].to_string(),
            Text::Any(s) => s.clone(),
        }
    }
}

impl ArbId {
    pub fn get(&self) -> Id {
        match self {
            ArbId::Int(n) => Id::Int(*n),
            ArbId::Str(s) => Id::Str(s.clone()),
        }
    }
}

impl ArbRequest {
    pub fn get(&self) -> Request {
        let id = |id: &Option<ArbId>| id.as_ref().map(ArbId::get);
        match self {
            ArbRequest::Join { nickname, room } => Request::Join {
                nickname: nickname.get(),
                room: room.as_ref().map(Name::get),
            },
            ArbRequest::Nick { nickname } => Request::Nick {
                nickname: nickname.get(),
            },
            ArbRequest::Message { content, id: i } => Request::Message {
                content: content.get(),
                id: id(i),
            },
            ArbRequest::Private { to, content, id: i } => Request::Private {
                to: to.get(),
                content: content.get(),
                id: id(i),
            },
            ArbRequest::JoinRoom { room } => Request::JoinRoom { room: room.get() },
            ArbRequest::ListUsers { room } => Request::ListUsers {
                room: room.as_ref().map(Name::get),
            },
            ArbRequest::ListRooms => Request::ListRooms,
            ArbRequest::Ping { id: i } => Request::Ping { id: id(i) },
            ArbRequest::Quit => Request::Quit,
        }
    }
}

impl Op<'_> {
    /// The line a server would hand the Hub for this operation (`None`: not a line).
    pub fn inbound(&self) -> Option<Inbound> {
        match self {
            Op::Request { request, .. } => {
                let line = request.get().to_line();
                Some(chat_core::parse_request(
                    line.strip_suffix(b"\n").unwrap_or(&line),
                ))
            }
            Op::Line { line, .. } => Some(chat_core::parse_request(line)),
            Op::LineTooLong { .. } => Some(Err(Rejection::new(
                ErrorCode::LineTooLong,
                "line longer than the limit",
            ))),
            _ => None,
        }
    }
}

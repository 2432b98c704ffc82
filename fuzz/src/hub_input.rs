//! The `hub` target's input: a Hub configuration and a sequence of operations, decoded from the
//! fuzzer's bytes with `arbitrary`, plus the seed scenarios of `fuzz/corpus/hub/`.
//!
//! Names and message texts come mostly from small pools, so that nicknames collide (also
//! ignoring case, also outside ASCII) and rooms fill up; `Any` lets the fuzzer try anything.
//!
//! The seeds are written as typed scenarios ([`seeds`]) and turned into the bytes that decode
//! to them by [`encode`], which mirrors `arbitrary`'s format for the subset the seeds use (a
//! test checks the round trip). Coverage alone does not lead the fuzzer to "three members in
//! one room, then a rename": the seeds start it in such states.

use arbitrary::Arbitrary;
use chat_core::{ErrorCode, HubConfig, Id, Inbound, Rejection, Request};
use std::time::Duration;

#[derive(Debug, Arbitrary)]
pub struct Input<'a> {
    pub config: Config,
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

// ---- seeds ---------------------------------------------------------------------------------

/// The bytes that `Input::arbitrary_take_rest` decodes to `input`. Only what the seeds use is
/// supported: pool names and texts, integer ids, no raw lines (panics otherwise).
pub fn encode(input: &Input<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    let c = &input.config;
    out.push(c.max_conns);
    match c.idle_timeout {
        Some(s) => out.extend([1, s]),
        None => out.push(0),
    }
    out.push(c.rate_limit);
    for op in &input.ops {
        out.push(1); // "one more element"
        match op {
            Op::Connect => tag(&mut out, 0, 7),
            Op::Request { conn, request } => {
                tag(&mut out, 1, 7);
                out.push(*conn);
                encode_request(&mut out, request);
            }
            Op::Line { .. } => panic!("seeds cannot hold raw lines"),
            Op::LineTooLong { conn } => {
                tag(&mut out, 3, 7);
                out.push(*conn);
            }
            Op::Disconnect { conn } => {
                tag(&mut out, 4, 7);
                out.push(*conn);
            }
            Op::Tick { advance_ms } => {
                tag(&mut out, 5, 7);
                out.extend(advance_ms.to_le_bytes());
            }
            Op::Shutdown => tag(&mut out, 6, 7),
        }
    }
    out.push(0); // no more elements
    out
}

/// An enum variant: `arbitrary` maps a `u32` onto `count` variants as `(u32 * count) >> 32`.
fn tag(out: &mut Vec<u8>, index: u64, count: u64) {
    let value = (index << 32).div_ceil(count) as u32;
    out.extend(value.to_le_bytes());
}

fn encode_request(out: &mut Vec<u8>, request: &ArbRequest) {
    let name = |out: &mut Vec<u8>, name: &Name| match name {
        Name::Pool(i) => {
            tag(out, 0, 2);
            out.push(*i);
        }
        Name::Any(_) => panic!("seeds use pool names"),
    };
    let text = |out: &mut Vec<u8>, text: &Text| match text {
        Text::Pool(i) => {
            tag(out, 0, 2);
            out.push(*i);
        }
        Text::Any(_) => panic!("seeds use pool texts"),
    };
    let option_name = |out: &mut Vec<u8>, n: &Option<Name>| match n {
        Some(n) => {
            out.push(1);
            name(out, n);
        }
        None => out.push(0),
    };
    let id = |out: &mut Vec<u8>, id: &Option<ArbId>| match id {
        Some(ArbId::Int(n)) => {
            out.push(1);
            tag(out, 0, 2);
            out.extend(n.to_le_bytes());
        }
        Some(ArbId::Str(_)) => panic!("seeds use integer ids"),
        None => out.push(0),
    };
    match request {
        ArbRequest::Join { nickname, room } => {
            tag(out, 0, 9);
            name(out, nickname);
            option_name(out, room);
        }
        ArbRequest::Nick { nickname } => {
            tag(out, 1, 9);
            name(out, nickname);
        }
        ArbRequest::Message { content, id: i } => {
            tag(out, 2, 9);
            text(out, content);
            id(out, i);
        }
        ArbRequest::Private { to, content, id: i } => {
            tag(out, 3, 9);
            name(out, to);
            text(out, content);
            id(out, i);
        }
        ArbRequest::JoinRoom { room } => {
            tag(out, 4, 9);
            name(out, room);
        }
        ArbRequest::ListUsers { room } => {
            tag(out, 5, 9);
            option_name(out, room);
        }
        ArbRequest::ListRooms => tag(out, 6, 9),
        ArbRequest::Ping { id: i } => {
            tag(out, 7, 9);
            id(out, i);
        }
        ArbRequest::Quit => tag(out, 8, 9),
    }
}

/// The seed scenarios of `fuzz/corpus/hub/`, by file name.
pub fn seeds() -> Vec<(&'static str, Input<'static>)> {
    use ArbRequest as R;
    let req = |conn: u8, request: ArbRequest| Op::Request { conn, request };
    let join = |conn: u8, nick: u8, room: Option<u8>| {
        req(
            conn,
            R::Join {
                nickname: Name::Pool(nick),
                room: room.map(Name::Pool),
            },
        )
    };
    let config = |max_conns: u8, idle_timeout: Option<u8>, rate_limit: u8| Config {
        max_conns,
        idle_timeout,
        rate_limit,
    };
    let (alice, upper_alice, bob, li, crab, rust, space) = (0, 1, 3, 7, 8, 10, 15);
    // A room of four, every request of a member, then everyone leaves in a different way.
    let room_of_four = vec![
        Op::Connect,
        Op::Connect,
        Op::Connect,
        Op::Connect,
        join(0, alice, None),
        join(1, bob, None),
        join(2, li, None),
        join(3, crab, Some(rust)),
        req(
            3,
            R::JoinRoom {
                room: Name::Pool(9),
            },
        ),
        req(
            0,
            R::Message {
                content: Text::Pool(0),
                id: Some(ArbId::Int(1)),
            },
        ),
        req(
            1,
            R::Private {
                to: Name::Pool(upper_alice),
                content: Text::Pool(3),
                id: None,
            },
        ),
        req(
            2,
            R::Nick {
                nickname: Name::Pool(4),
            },
        ),
        req(0, R::ListUsers { room: None }),
        req(1, R::ListRooms),
        req(
            3,
            R::Ping {
                id: Some(ArbId::Int(-7)),
            },
        ),
        Op::LineTooLong { conn: 0 },
        Op::Disconnect { conn: 1 },
        req(2, R::Quit),
        Op::Shutdown,
    ];
    // Case-insensitive collisions: `alice` is taken as `Alice` and `ALICE`, `k` as `K`.
    let collisions = vec![
        Op::Connect,
        Op::Connect,
        Op::Connect,
        join(0, alice, Some(rust)),
        join(1, upper_alice, None),
        join(1, 11, None),
        join(2, 12, None),
        req(
            2,
            R::Nick {
                nickname: Name::Pool(2),
            },
        ),
        req(
            0,
            R::Nick {
                nickname: Name::Pool(upper_alice),
            },
        ),
        req(
            1,
            R::Private {
                to: Name::Pool(2),
                content: Text::Pool(1),
                id: None,
            },
        ),
        req(
            1,
            R::JoinRoom {
                room: Name::Pool(space),
            },
        ),
        req(
            1,
            R::ListUsers {
                room: Some(Name::Pool(rust)),
            },
        ),
    ];
    // Idle timeouts: two members go silent, one keeps talking; time runs out in steps.
    let idle = vec![
        Op::Connect,
        Op::Connect,
        Op::Connect,
        join(0, alice, None),
        join(1, bob, None),
        join(2, li, None),
        Op::Tick { advance_ms: 1500 },
        req(2, R::Ping { id: None }),
        Op::Tick { advance_ms: 1000 },
        Op::Tick { advance_ms: 1000 },
        req(2, R::ListRooms),
        Op::Tick { advance_ms: 5000 },
    ];
    // Full: the third connection is refused; one leaves and the next is accepted.
    let full = vec![
        Op::Connect,
        Op::Connect,
        Op::Connect,
        req(
            2,
            R::Ping {
                id: Some(ArbId::Int(3)),
            },
        ),
        join(0, crab, None),
        req(
            1,
            R::Message {
                content: Text::Pool(0),
                id: None,
            },
        ),
        req(0, R::Quit),
        Op::Connect,
        join(3, crab, None),
    ];
    // A rate limit of 2: a burst of requests, some dropped, then time refills the bucket.
    let rate = vec![
        Op::Connect,
        join(0, alice, None),
        req(
            0,
            R::Message {
                content: Text::Pool(2),
                id: None,
            },
        ),
        req(
            0,
            R::Message {
                content: Text::Pool(3),
                id: None,
            },
        ),
        req(
            0,
            R::Message {
                content: Text::Pool(0),
                id: None,
            },
        ),
        Op::Tick { advance_ms: 1000 },
        req(
            0,
            R::Message {
                content: Text::Pool(0),
                id: None,
            },
        ),
    ];
    vec![
        (
            "seed-room-of-four",
            Input {
                config: config(7, None, 200),
                ops: room_of_four,
            },
        ),
        (
            "seed-case-collisions",
            Input {
                config: config(2, None, 200),
                ops: collisions,
            },
        ),
        (
            "seed-idle-timeout",
            Input {
                config: config(7, Some(1), 200),
                ops: idle,
            },
        ),
        (
            "seed-server-full",
            Input {
                config: config(1, None, 200),
                ops: full,
            },
        ),
        (
            "seed-rate-limit",
            Input {
                config: config(3, Some(4), 1),
                ops: rate,
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbitrary::Unstructured;

    /// Every seed decodes back to its scenario, and the committed seed files are up to date.
    /// `WRITE_HUB_SEEDS=1 cargo test --lib` (in `fuzz/`) rewrites them.
    #[test]
    fn seeds_round_trip_and_are_committed() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/hub");
        for (name, input) in seeds() {
            let bytes = encode(&input);
            let decoded = Input::arbitrary_take_rest(Unstructured::new(&bytes)).unwrap();
            assert_eq!(format!("{decoded:?}"), format!("{input:?}"), "{name}");
            let path = dir.join(name);
            if std::env::var_os("WRITE_HUB_SEEDS").is_some() {
                std::fs::write(&path, &bytes).unwrap();
            }
            assert_eq!(std::fs::read(&path).ok(), Some(bytes), "{name} is stale");
        }
    }
}

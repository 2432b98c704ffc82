//! The seeds of `fuzz/corpus/hub/`: typed scenarios ([`seeds`]) turned into the bytes that
//! decode to them ([`encode`], which mirrors `arbitrary`'s format for the subset the seeds use;
//! a test checks the round trip).
//!
//! Coverage alone does not lead the fuzzer to "three members in one room, then a rename": the
//! seeds start it in such states, and it mutates from there.

use crate::hub_input::{ArbId, ArbRequest, Config, Input, Name, Op, Text};

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
    // One connection per member, then member `i` joins on connection `i` as its nickname, in
    // its room (`None`: the default room).
    let members = |seats: &[(u8, Option<u8>)]| -> Vec<Op<'static>> {
        let connects = seats.iter().map(|_| Op::Connect);
        let joins = (0..)
            .zip(seats)
            .map(|(conn, &(nick, room))| join(conn, nick, room));
        connects.chain(joins).collect()
    };
    let (alice, upper_alice, bob, li, crab, rust, space) = (0, 1, 3, 7, 8, 10, 15);
    // A room of four, every request of a member, then everyone leaves in a different way.
    let mut room_of_four = members(&[(alice, None), (bob, None), (li, None), (crab, Some(rust))]);
    room_of_four.extend([
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
    ]);
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
    let mut idle = members(&[(alice, None), (bob, None), (li, None)]);
    idle.extend([
        Op::Tick { advance_ms: 1500 },
        req(2, R::Ping { id: None }),
        Op::Tick { advance_ms: 1000 },
        Op::Tick { advance_ms: 1000 },
        req(2, R::ListRooms),
        Op::Tick { advance_ms: 5000 },
    ]);
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
    use arbitrary::{Arbitrary, Unstructured};

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

//! The witness: a well-behaved client that keeps checking, while the attackers do their worst,
//! that the server still answers it, quickly and correctly (guarantee 5: bad input from one
//! connection never affects another).
//!
//! It joins a room of its own and, every [`ROUND_PAUSE`], sends one request whose reply it can
//! predict exactly: a ping (its `pong` with the same id), a message (its own `broadcast`), a
//! ping split across two writes, a bad frame (the error code the spec names for it), a
//! `list_users` (itself alone), a rename (`renamed` from the old to the new name), a
//! `list_rooms` (its room with one member), a blank line and a ping ended by `\r\n`. Each reply
//! must come within `--witness-timeout`:
//!
//! - no reply in time: a **hang**;
//! - its connection closed under it: a **crash** if nobody can connect any more, else a
//!   **wrong answer**;
//! - any other reply: a **wrong answer** (it then starts over on a fresh connection).
//!
//! Against a one-client-at-a-time server (`--single`) it cannot stay connected: each of its
//! visits, between two attack sessions, is a fresh connection that joins, runs a few of the
//! same checks and quits (`bye`, then the server must close).

use super::report::clip;
use super::rng::Rng;
use super::wire::{Ending, Next, Wire};
use super::{Ctx, Failure};
use serde_json::{json, Value};
use std::io::ErrorKind;
use std::time::{Duration, Instant};

/// The pause between two witness requests.
pub(super) const ROUND_PAUSE: Duration = Duration::from_millis(50);

/// Frames other clients may legitimately cause on the witness's connection; skipped.
const OTHERS: [&str; 3] = ["joined", "left", "private"];

/// The witness's state.
pub(super) struct Witness<'a> {
    /// The run: where to connect, the reply bound, where to report.
    ctx: &'a Ctx,
    /// Picks the texts of its messages (seeded, like everything in a run).
    rng: Rng,
    /// The current connection, once joined.
    wire: Option<Wire<'a>>,
    /// Its nickname now (it renames itself now and then).
    nickname: String,
    /// Its room, which nobody else joins: every member list it asks for is itself alone.
    room: String,
    /// Connections opened so far (each gets fresh names).
    visits: u64,
    /// Requests sent so far (ids and the choice of the next check).
    round: u64,
    /// Bad frames sent so far (which one is next).
    bad_frames: usize,
}

impl<'a> Witness<'a> {
    pub(super) fn new(ctx: &'a Ctx) -> Witness<'a> {
        Witness {
            ctx,
            rng: Rng::derive(ctx.seed, 0),
            wire: None,
            nickname: String::new(),
            room: String::new(),
            visits: 0,
            round: 0,
            bad_frames: 0,
        }
    }

    /// Joins, then checks the server every [`ROUND_PAUSE`] until the run stops (the mode for
    /// servers that serve many clients at once).
    pub(super) fn run(&mut self) {
        while !self.ctx.stopping() {
            let checked = match self.wire {
                None => self.join(),
                Some(_) => self.check_once(),
            };
            if let Err(failure) = checked {
                self.drop_connection();
                self.ctx.report("witness", failure);
            }
            std::thread::sleep(ROUND_PAUSE);
        }
    }

    /// One visit of a one-client-at-a-time server: join, three checks, quit.
    pub(super) fn visit(&mut self) -> Result<(), Failure> {
        self.join()?;
        self.ping(false)?;
        self.message()?;
        self.bad_frame()?;
        self.quit()
    }

    /// After the attack: the witness's connection still works and quits cleanly, and a fresh
    /// connection is served too.
    pub(super) fn finale(&mut self) -> Result<(), Failure> {
        if self.wire.is_some() {
            self.ping(false)?;
            self.quit()?;
        }
        self.visit()
    }

    /// A fresh connection, joined to a fresh room of its own.
    fn join(&mut self) -> Result<(), Failure> {
        self.drop_connection();
        self.visits += 1;
        let tag = &self.ctx.tag;
        self.nickname = format!("fzw{tag}v{}", self.visits);
        self.room = format!("fzw{tag}room{}", self.visits);
        let timeout = self.ctx.witness_timeout;
        let wire =
            Wire::connect(self.ctx.addr, timeout, &self.ctx.tally).map_err(|e| match e.kind() {
                ErrorKind::ConnectionRefused => Failure::Refused(e),
                _ => Failure::Silent(format!(
                    "the witness could not connect within {timeout:?}: {e}"
                )),
            })?;
        self.wire = Some(wire);
        let (nickname, room) = (self.nickname.clone(), self.room.clone());
        let join = json!({"type": "join", "nickname": nickname, "room": room});
        self.request(&[&line(&join)], "join", |frame| {
            expect(frame, &json!({"type": "welcome", "nickname": nickname, "room": room, "users": [nickname]}))
        })
    }

    /// The next check of the cycle.
    fn check_once(&mut self) -> Result<(), Failure> {
        self.round += 1;
        match self.round % 8 {
            0 => self.ping(false),
            1 => self.message(),
            2 => self.ping(true),
            3 => self.bad_frame(),
            4 => self.list_users(),
            5 => self.rename(),
            6 => self.list_rooms(),
            _ => self.blank_and_crlf(),
        }
    }

    /// `ping` → `pong` with the same id; `split`: the line arrives in two writes.
    fn ping(&mut self, split: bool) -> Result<(), Failure> {
        self.round += 1;
        let id = format!("w{}", self.round);
        let bytes = line(&json!({"type": "ping", "id": id}));
        let (first, second) = bytes.split_at(bytes.len() / 2);
        let (pieces, what): (&[&[u8]], _) = if split {
            (&[first, second], "a ping split across two writes")
        } else {
            (&[&bytes], "ping")
        };
        self.request(pieces, what, |frame| {
            expect(frame, &json!({"type": "pong", "id": id}))
        })
    }

    /// `message` → the witness's own `broadcast`, every field as sent.
    fn message(&mut self) -> Result<(), Failure> {
        self.round += 1;
        let id = self.round as i64;
        let content = format!(
            "witness {} {}",
            self.round,
            self.rng
                .pick(&["hello", "héllo wörld", "你好 🦀", "\"quoted\" \\ \t"])
        );
        let request = json!({"type": "message", "content": content, "id": id});
        let expected = json!({"type": "broadcast", "from": self.nickname, "room": self.room, "content": content, "id": id});
        self.request(&[&line(&request)], "message", |frame| {
            expect(frame, &expected)?;
            match frame["ts"].as_u64() {
                Some(_) => Ok(()),
                None => Err(format!(
                    "a broadcast needs an integer `ts`, got {}",
                    clip(&frame.to_string())
                )),
            }
        })
    }

    /// A bad frame whose error code the spec names; the connection stays usable.
    fn bad_frame(&mut self) -> Result<(), Failure> {
        self.round += 1;
        let nobody = format!("fzn{}", self.ctx.tag);
        let private = line(&json!({"type": "private", "to": nobody, "content": "x"}));
        let cases: [(&[u8], &str, &str); 14] = [
            (
                b"this is not json\n",
                "bad_request",
                "a line that is not JSON",
            ),
            (b"[1,2,3]\n", "bad_request", "a JSON array"),
            (b"   \n", "bad_request", "a line of spaces"),
            (
                br#"{"type":"fz-no-such-type","id":1}"#,
                "unknown_type",
                "an unknown type",
            ),
            (
                br#"{"type":"message","content":""}"#,
                "bad_request",
                "an empty content",
            ),
            (
                br#"{"type":"message"}"#,
                "bad_request",
                "a message without content",
            ),
            (br#"{"type":"ping","id":1.5}"#, "bad_request", "a float id"),
            (br#"{"type":"ping","id":null}"#, "bad_request", "a null id"),
            (
                br#"{"type":"join","nickname":"fzagain"}"#,
                "already_joined",
                "a second join",
            ),
            (
                br#"{"type":"nick","nickname":"two words"}"#,
                "bad_nickname",
                "a nickname with a space",
            ),
            (
                br#"{"type":"join_room","room":""}"#,
                "bad_room",
                "an empty room name",
            ),
            (&private, "no_such_user", "a private message to nobody"),
            (
                b"{\"type\":\"ping\",\"id\":\"\xff\"}\n",
                "bad_request",
                "invalid UTF-8",
            ),
            (
                br#"{"type":"list_users","room":7}"#,
                "bad_request",
                "a room that is a number",
            ),
        ];
        let (bytes, code, what) = cases[self.bad_frames % cases.len()];
        self.bad_frames += 1;
        let mut bytes = bytes.to_vec();
        if bytes.last() != Some(&b'\n') {
            bytes.push(b'\n');
        }
        self.request(&[&bytes], what, |frame| {
            if frame["type"] == "error" && frame["code"] == code && frame["message"].is_string() {
                Ok(())
            } else {
                Err(format!(
                    "expected error `{code}`, got {}",
                    clip(&frame.to_string())
                ))
            }
        })
    }

    fn list_users(&mut self) -> Result<(), Failure> {
        let expected = json!({"type": "users", "room": self.room, "users": [self.nickname]});
        self.request(&[b"{\"type\":\"list_users\"}\n"], "list_users", |frame| {
            expect(frame, &expected)
        })
    }

    fn rename(&mut self) -> Result<(), Failure> {
        self.round += 1;
        let new = format!("fzw{}v{}r{}", self.ctx.tag, self.visits, self.round);
        let expected =
            json!({"type": "renamed", "from": self.nickname, "to": new, "room": self.room});
        let request = line(&json!({"type": "nick", "nickname": new}));
        self.request(&[&request], "nick", |frame| expect(frame, &expected))?;
        self.nickname = new;
        Ok(())
    }

    fn list_rooms(&mut self) -> Result<(), Failure> {
        let room = self.room.clone();
        self.request(&[b"{\"type\":\"list_rooms\"}\n"], "list_rooms", |frame| {
            let listed = frame["rooms"]
                .as_array()
                .is_some_and(|rooms| rooms.contains(&json!({"name": room, "users": 1})));
            if frame["type"] == "rooms" && listed {
                Ok(())
            } else {
                Err(format!(
                    "expected `rooms` listing {{\"name\":\"{room}\",\"users\":1}}, got {}",
                    clip(&frame.to_string())
                ))
            }
        })
    }

    /// A blank line (ignored) and a ping ended by `\r\n`: only the pong comes back.
    fn blank_and_crlf(&mut self) -> Result<(), Failure> {
        self.round += 1;
        let id = self.round as i64;
        let bytes = format!("\n\r\n{{\"type\":\"ping\",\"id\":{id}}}\r\n");
        self.request(
            &[bytes.as_bytes()],
            "a blank line, then a ping ended by \\r\\n",
            |frame| expect(frame, &json!({"type": "pong", "id": id})),
        )
    }

    /// `quit` → `bye`, then the server closes.
    fn quit(&mut self) -> Result<(), Failure> {
        self.request(&[b"{\"type\":\"quit\"}\n"], "quit", |frame| {
            expect(frame, &json!({"type": "bye"}))
        })?;
        let deadline = Instant::now() + self.ctx.witness_timeout;
        let Some(wire) = self.wire.as_mut() else {
            return Ok(());
        };
        let outcome = match wire.next(deadline) {
            Next::Closed(_) => Ok(()),
            other => Err(Failure::Wrong(format!(
                "after `bye` the server must close the connection, got {}",
                super::attack::describe(&other)
            ))),
        };
        self.drop_connection();
        outcome
    }

    /// Sends `pieces` (10 ms apart when there are several) and waits for the one reply,
    /// judged by `check`, within `--witness-timeout` of the last write.
    fn request(
        &mut self,
        pieces: &[&[u8]],
        what: &str,
        check: impl Fn(&Value) -> Result<(), String>,
    ) -> Result<(), Failure> {
        let timeout = self.ctx.witness_timeout;
        let Some(wire) = self.wire.as_mut() else {
            return Err(Failure::Wrong("the witness has no connection".into()));
        };
        for (i, piece) in pieces.iter().enumerate() {
            if i > 0 {
                std::thread::sleep(Duration::from_millis(10));
            }
            if let Err(e) = wire.send(piece) {
                return Err(Failure::Closed(format!("sending {what} failed: {e}")));
            }
        }
        let sent = Instant::now();
        let deadline = sent + timeout;
        loop {
            match wire.next(deadline) {
                Next::Frame(frame)
                    if frame["type"].as_str().is_some_and(|t| OTHERS.contains(&t)) => {}
                Next::Frame(frame) => {
                    return match check(&frame) {
                        Ok(()) => {
                            self.ctx.tally.witness_reply(sent.elapsed());
                            Ok(())
                        }
                        Err(why) => Err(Failure::Wrong(format!("after {what}: {why}"))),
                    };
                }
                Next::Invalid(why) => return Err(Failure::Wrong(format!("after {what}: {why}"))),
                Next::Timeout => {
                    return Err(Failure::Silent(format!(
                        "no reply to {what} within {:.1} s",
                        timeout.as_secs_f64()
                    )))
                }
                Next::Closed(how) => {
                    return Err(Failure::Closed(format!(
                        "the server closed the witness's connection ({how}) instead of \
                         answering {what}"
                    )))
                }
            }
        }
    }

    fn drop_connection(&mut self) {
        if let Some(wire) = self.wire.take() {
            wire.end(Ending::Close);
        }
    }
}

/// `frame` must have every field of `expected` with exactly that value (more fields are
/// allowed, as in `loadgen check`: a server may add some for forward compatibility).
fn expect(frame: &Value, expected: &Value) -> Result<(), String> {
    let mut fields = expected.as_object().into_iter().flatten();
    if fields.all(|(key, value)| frame.get(key) == Some(value)) {
        Ok(())
    } else {
        Err(format!(
            "expected {}, got {}",
            clip(&expected.to_string()),
            clip(&frame.to_string())
        ))
    }
}

fn line(value: &Value) -> Vec<u8> {
    super::frames::line(value)
}

//! The attackers: connections that each run one random session after another until the run
//! ends, sending what a broken or hostile client would.
//!
//! | session | what it sends | what it checks beyond "every frame is valid" |
//! |---|---|---|
//! | chatter | a join, then random requests (known and unknown types, fields of any JSON type), coalesced or split across writes | – |
//! | mutant | real protocol lines with bytes flipped, inserted, cut, spliced, invalid UTF-8 put in | – |
//! | garbage | random bytes with newlines here and there | – |
//! | dribble | a line a few bytes at a time, often abandoned half-way | – |
//! | oversize | a line one byte longer than `--max-line`, never finished | the server closes the connection (after `line_too_long`) |
//! | at-limit | a message whose line is exactly `--max-line` bytes | it is accepted: the sender's broadcast comes back |
//! | flood | hundreds of pings in one write, or a blast of messages nobody reads | every pong, in order (guarantee 1) |
//! | reset | connect and reset at once, or mid-line, or right after `join`; sometimes a burst of up to 12 connections | – |
//! | half-close | pings, then `shutdown(SHUT_WR)` | every pong, in order, then the server closes |
//! | hold | join and sit, then `quit` | `bye`, then the server closes |
//!
//! Sessions end with a FIN, a reset (`SO_LINGER` 0) or a half-close, at random. A refused
//! connection is a crash; anything the server answers wrongly is a wrong answer.

use super::frames::{self, SEEDS};
use super::report::{clip, Tally};
use super::rng::Rng;
use super::wire::{error_code, Ending, Next, Wire};
use super::{Ctx, Failure};
use serde_json::{json, Value};
use std::io::ErrorKind;
use std::time::Duration;

/// Relative frequency of each session kind, in the order of `report::SESSION_KINDS`.
const WEIGHTS: [usize; 10] = [20, 20, 8, 10, 3, 3, 10, 12, 6, 8];

/// The most connections a `reset` session opens at once.
const MAX_BURST: usize = 12;

/// Shared rooms the attackers meet in (and fan out to each other).
const ROOMS: [&str; 3] = ["lobby", "fz-commons", "fz-arena"];

/// One attacking connection slot.
pub(super) struct Attacker<'a> {
    ctx: &'a Ctx,
    rng: Rng,
    /// Which attacker this is (for names and reports).
    id: usize,
    /// Sessions run so far.
    session: u64,
    /// The current session's kind, for reports.
    kind: &'static str,
}

impl<'a> Attacker<'a> {
    pub(super) fn new(ctx: &'a Ctx, id: usize) -> Attacker<'a> {
        Attacker {
            ctx,
            rng: Rng::derive(ctx.seed, id as u64 + 1),
            id,
            session: 0,
            kind: "",
        }
    }

    /// Runs sessions until the run stops.
    pub(super) fn run(&mut self) {
        while !self.ctx.stopping() {
            self.one_session();
            std::thread::sleep(Duration::from_millis(self.rng.below(20) as u64));
        }
    }

    /// Runs one random session and reports what went wrong.
    pub(super) fn one_session(&mut self) {
        self.session += 1;
        let kind = self.rng.weighted(&WEIGHTS);
        self.kind = super::report::SESSION_KINDS[kind];
        Tally::add(&self.ctx.tally.sessions[kind], 1);
        let outcome = match kind {
            0 => self.chatter(),
            1 => self.mutant(),
            2 => self.garbage(),
            3 => self.dribble(),
            4 => self.oversize(),
            5 => self.at_limit(),
            6 => self.flood(),
            7 => self.reset(),
            8 => self.half_close(),
            _ => self.hold(),
        };
        if let Err(failure) = outcome {
            let who = format!(
                "attacker {}, session {} ({})",
                self.id, self.session, self.kind
            );
            self.ctx.report(&who, failure);
        }
    }

    // ---- the sessions ----------------------------------------------------------------------

    fn chatter(&mut self) -> Result<(), Failure> {
        let Some(mut wire) = self.open()? else {
            return Ok(());
        };
        let mut lines: Vec<Vec<u8>> = Vec::new();
        if self.rng.chance(70) {
            let nickname = if self.rng.chance(70) {
                self.unique_name("fza")
            } else {
                frames::string(&mut self.rng)
            };
            let room = if self.rng.chance(80) {
                self.rng.pick(&ROOMS).to_string()
            } else {
                frames::string(&mut self.rng)
            };
            lines.push(frames::line(
                &json!({"type": "join", "nickname": nickname, "room": room}),
            ));
        }
        for _ in 0..self.rng.range(1, 30) {
            let line = if self.rng.chance(20) {
                let mut seed = self.rng.pick(SEEDS).to_vec();
                seed.push(b'\n');
                seed
            } else {
                frames::line(&frames::request(&mut self.rng))
            };
            lines.push(line);
        }
        self.send_lines(&mut wire, &lines)?;
        self.finish(wire)
    }

    fn mutant(&mut self) -> Result<(), Failure> {
        let Some(mut wire) = self.open()? else {
            return Ok(());
        };
        let mut lines = Vec::new();
        for _ in 0..self.rng.range(1, 20) {
            let seed = self.rng.pick(SEEDS);
            let mut line = frames::mutate(&mut self.rng, seed);
            if self.rng.chance(90) {
                line.push(b'\n');
            }
            lines.push(line);
        }
        self.send_lines(&mut wire, &lines)?;
        self.finish(wire)
    }

    fn garbage(&mut self) -> Result<(), Failure> {
        let Some(mut wire) = self.open()? else {
            return Ok(());
        };
        for _ in 0..self.rng.range(1, 4) {
            let len = self.rng.range(1, 2048);
            let mut chunk = frames::garbage(&mut self.rng, len);
            if self.rng.chance(30) {
                let invalid = self.rng.pick(frames::INVALID_UTF8);
                chunk.splice(0..0, invalid.iter().copied());
                chunk.push(b'\n');
            }
            if !self.write(&mut wire, &chunk) {
                break;
            }
            let pause = Duration::from_millis(self.rng.below(5) as u64);
            self.absorb(&mut wire, pause)?;
        }
        self.finish(wire)
    }

    fn dribble(&mut self) -> Result<(), Failure> {
        let Some(mut wire) = self.open()? else {
            return Ok(());
        };
        let line = if self.rng.chance(50) {
            frames::line(&frames::request(&mut self.rng))
        } else {
            let mut seed = self.rng.pick(SEEDS).to_vec();
            seed.push(b'\n');
            seed
        };
        // Often the line is abandoned half-way: the server must not wait for the rest.
        let stop_at = if self.rng.chance(50) {
            self.rng.below(line.len())
        } else {
            line.len()
        };
        let mut at = 0;
        while at < stop_at {
            let end = (at + self.rng.range(1, 3)).min(stop_at);
            if !self.write(&mut wire, &line[at..end]) {
                break;
            }
            at = end;
            std::thread::sleep(Duration::from_millis(self.rng.range(1, 10) as u64));
        }
        self.absorb(&mut wire, Duration::from_millis(20))?;
        self.finish(wire)
    }

    /// A line one byte past `--max-line`, never finished: the server must say `line_too_long`
    /// and close, without waiting for a newline (PROTOCOL.md, "Framing").
    fn oversize(&mut self) -> Result<(), Failure> {
        let Some(mut wire) = self.open()? else {
            return Ok(());
        };
        let max_line = self.ctx.max_line;
        let mut line = br#"{"type":"message","content":""#.to_vec();
        line.resize(max_line + 1, b'x');
        for chunk in line.chunks(8192) {
            if !self.write(&mut wire, chunk) {
                break; // the server closed already
            }
        }
        let (deadline, cut) = self.ctx.slow_deadline();
        loop {
            match self.ctx.next(&mut wire, deadline) {
                Next::Frame(frame) => {
                    self.count_error(&frame);
                    if error_code(&frame).is_some_and(|code| code != "line_too_long") {
                        return Err(Failure::Wrong(format!(
                            "after a line longer than --max-line ({max_line} bytes), expected \
                             error `line_too_long`, got {}",
                            clip(&frame.to_string())
                        )));
                    }
                }
                Next::Invalid(why) => return Err(Failure::Wrong(why)),
                Next::Closed(_) => {
                    Tally::add(&self.ctx.tally.closed_by_server, 1);
                    return Ok(());
                }
                Next::Timeout if cut => return Ok(()),
                Next::Timeout => {
                    return Err(Failure::Wrong(format!(
                        "the server kept the connection open for {:.0} s after a line grew \
                         past --max-line ({max_line} bytes) without a newline; it must send \
                         `line_too_long` and close",
                        self.ctx.slow_bound().as_secs_f64()
                    )))
                }
            }
        }
    }

    /// A message whose line is exactly `--max-line` bytes, newline included: allowed, so the
    /// sender's own broadcast must come back.
    fn at_limit(&mut self) -> Result<(), Failure> {
        let id = format!("lim{}.{}", self.id, self.session);
        let empty = frames::line(&json!({"type": "message", "content": "", "id": id}));
        let max_line = self.ctx.max_line;
        let Some(room_for_content) = max_line.checked_sub(empty.len()).filter(|&n| n > 0) else {
            return Ok(()); // a limit too small for any message
        };
        let Some(mut wire) = self.open()? else {
            return Ok(());
        };
        let nickname = self.unique_name("fzl");
        let room = self.unique_name("fzr");
        let join = frames::line(&json!({"type": "join", "nickname": nickname, "room": room}));
        let content = "x".repeat(room_for_content);
        let message = frames::line(&json!({"type": "message", "content": content, "id": id}));
        debug_assert_eq!(message.len(), max_line);
        if !self.write(&mut wire, &join) || !self.write(&mut wire, &message) {
            self.finish(wire)?;
            return Ok(());
        }
        let sent = format!("a message line of exactly --max-line ({max_line}) bytes");
        let found = self.wait_for(&mut wire, &sent, |frame| {
            frame["type"] == "broadcast" && frame["id"] == json!(id)
        })?;
        if let Some(frame) = found {
            if frame["content"].as_str().map(str::len) != Some(room_for_content) {
                return Err(Failure::Wrong(format!(
                    "the broadcast of {sent} did not carry its content unchanged"
                )));
            }
        }
        self.finish(wire)
    }

    fn flood(&mut self) -> Result<(), Failure> {
        let Some(mut wire) = self.open()? else {
            return Ok(());
        };
        if self.rng.chance(60) {
            // Pipelined pings: the replies must come back complete and in order.
            let count = self.rng.range(50, 400);
            let batch: Vec<u8> = (0..count)
                .flat_map(|i| frames::line(&json!({"type": "ping", "id": i})))
                .collect();
            if self.write(&mut wire, &batch) {
                self.expect_pongs(&mut wire, count, "a flood of pings")?;
            }
            return self.finish(wire);
        }
        // A blast into a shared room without reading. Now and then a big one (up to ~2 MB):
        // the server's backlog for us grows until it cuts us off, and everyone else in the
        // room must not notice (guarantee 4).
        let join = json!({"type": "join", "nickname": self.unique_name("fzf"), "room": self.rng.pick(&ROOMS).to_string()});
        let (count, size) = if self.rng.chance(20) {
            (self.rng.range(500, 1000), self.rng.range(1000, 2000))
        } else {
            (self.rng.range(50, 300), self.rng.range(50, 500))
        };
        let content = "y".repeat(size);
        let message = frames::line(&json!({"type": "message", "content": content}));
        let mut blast = frames::line(&join);
        for _ in 0..count {
            blast.extend_from_slice(&message);
        }
        self.write(&mut wire, &blast);
        self.end(wire, Ending::Reset);
        Ok(())
    }

    /// Connections that end abruptly: a reset at once, mid-line or right after `join`, or a
    /// plain close; a quarter of the time a burst of them, opened together.
    fn reset(&mut self) -> Result<(), Failure> {
        let burst = if self.rng.chance(25) {
            self.rng.range(2, MAX_BURST)
        } else {
            1
        };
        let mut wires = Vec::with_capacity(burst);
        for _ in 0..burst {
            match self.open()? {
                Some(wire) => wires.push(wire),
                None => break,
            }
        }
        for (i, mut wire) in wires.into_iter().enumerate() {
            let ending = match self.rng.below(4) {
                0 => Ending::Reset,
                1 => {
                    let seed = self.rng.pick(SEEDS);
                    let cut = self.rng.below(seed.len());
                    self.write(&mut wire, &seed[..cut]);
                    Ending::Reset
                }
                2 => {
                    let name = format!("{}n{i}", self.unique_name("fzx"));
                    let room = self.rng.pick(&ROOMS).to_string();
                    let join = json!({"type": "join", "nickname": name, "room": room});
                    self.write(&mut wire, &frames::line(&join));
                    Ending::Reset
                }
                _ => Ending::Close,
            };
            self.end(wire, ending);
        }
        Ok(())
    }

    /// Pings, then `shutdown(SHUT_WR)`: every pong is still due, then the server closes
    /// (PROTOCOL.md, "Half-close").
    fn half_close(&mut self) -> Result<(), Failure> {
        let Some(mut wire) = self.open()? else {
            return Ok(());
        };
        let count = self.rng.range(1, 20);
        let batch: Vec<u8> = (0..count)
            .flat_map(|i| frames::line(&json!({"type": "ping", "id": i})))
            .collect();
        if !self.write(&mut wire, &batch) || wire.half_close().is_err() {
            self.end(wire, Ending::Close);
            return Ok(());
        }
        self.expect_pongs(&mut wire, count, "pings followed by a half-close")?;
        let (deadline, cut) = self.ctx.slow_deadline();
        match self.ctx.next(&mut wire, deadline) {
            Next::Closed(_) => {}
            Next::Timeout if cut => {}
            Next::Invalid(why) => return Err(Failure::Wrong(why)),
            other => {
                return Err(Failure::Wrong(format!(
                    "after answering every ping of a half-closed connection the server must \
                     close it, got {}",
                    describe(&other)
                )))
            }
        }
        self.end(wire, Ending::Close);
        Ok(())
    }

    fn hold(&mut self) -> Result<(), Failure> {
        let Some(mut wire) = self.open()? else {
            return Ok(());
        };
        let join = json!({"type": "join", "nickname": self.unique_name("fzh"), "room": self.rng.pick(&ROOMS).to_string()});
        if !self.write(&mut wire, &frames::line(&join)) {
            return self.finish(wire);
        }
        let hold = Duration::from_millis(self.rng.range(300, 2000) as u64);
        self.absorb(&mut wire, hold)?;
        if wire.closed().is_some() || !self.write(&mut wire, b"{\"type\":\"quit\"}\n") {
            self.end(wire, Ending::Close);
            return Ok(()); // closed by the server meanwhile (an idle timeout, say)
        }
        if self
            .wait_for(&mut wire, "quit", |frame| frame["type"] == "bye")?
            .is_some()
        {
            let (deadline, cut) = self.ctx.slow_deadline();
            match self.ctx.next(&mut wire, deadline) {
                Next::Closed(_) => {}
                Next::Timeout if cut => {}
                other => {
                    return Err(Failure::Wrong(format!(
                        "after `bye` the server must close the connection, got {}",
                        describe(&other)
                    )))
                }
            }
        }
        self.end(wire, Ending::Close);
        Ok(())
    }

    // ---- helpers ---------------------------------------------------------------------------

    /// Opens a connection. `None` when it could not be opened for a reason that is not the
    /// server's absence (a timeout while its accept queue is full, say).
    fn open(&mut self) -> Result<Option<Wire>, Failure> {
        match Wire::connect(self.ctx.addr, self.ctx.connect_timeout()) {
            Ok(wire) => {
                Tally::add(&self.ctx.tally.connections, 1);
                Ok(Some(wire))
            }
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => Err(Failure::Refused(e)),
            Err(_) => {
                Tally::add(&self.ctx.tally.connect_failures, 1);
                Ok(None)
            }
        }
    }

    /// Writes `bytes`; `false` when the connection no longer takes data (closed by the server,
    /// or not read for a second).
    fn write(&mut self, wire: &mut Wire, bytes: &[u8]) -> bool {
        let ok = wire.send(bytes).is_ok();
        if !ok {
            Tally::add(&self.ctx.tally.closed_by_server, 1);
        }
        ok
    }

    /// Writes the lines coalesced in random groups, or split mid-line, reading a little in
    /// between.
    fn send_lines(&mut self, wire: &mut Wire, lines: &[Vec<u8>]) -> Result<(), Failure> {
        let mut bytes: Vec<u8> = lines.concat();
        while !bytes.is_empty() {
            let take = match self.rng.below(3) {
                0 => bytes.len(),
                _ => self.rng.range(1, bytes.len()),
            };
            let rest = bytes.split_off(take);
            if !self.write(wire, &bytes) {
                return Ok(());
            }
            bytes = rest;
            let pause = Duration::from_millis(self.rng.below(4) as u64);
            self.absorb(wire, pause)?;
        }
        Ok(())
    }

    /// Reads for `duration`, judging and counting what arrives.
    fn absorb(&mut self, wire: &mut Wire, duration: Duration) -> Result<(), Failure> {
        let mut frames = Vec::new();
        let invalid = wire.drain_for(duration, &mut frames);
        for frame in &frames {
            self.count_error(frame);
        }
        match invalid.into_iter().next() {
            Some(why) => Err(Failure::Wrong(why)),
            None => Ok(()),
        }
    }

    /// Reads until a frame satisfies `wanted`, within the slow bound. Frames about other
    /// clients are skipped; an error or a close first is a wrong answer. `None` when the run's
    /// end cut the wait short.
    fn wait_for(
        &mut self,
        wire: &mut Wire,
        sent: &str,
        wanted: impl Fn(&Value) -> bool,
    ) -> Result<Option<Value>, Failure> {
        let (deadline, cut) = self.ctx.slow_deadline();
        loop {
            match self.ctx.next(wire, deadline) {
                Next::Frame(frame) if wanted(&frame) => return Ok(Some(frame)),
                Next::Frame(frame) => {
                    self.count_error(&frame);
                    if frame["type"] == "error" {
                        return Err(Failure::Wrong(format!(
                            "after {sent}: got {}",
                            clip(&frame.to_string())
                        )));
                    }
                }
                Next::Timeout if cut => return Ok(None),
                other => {
                    return Err(Failure::Wrong(format!(
                        "after {sent}: expected the reply within {:.0} s, got {}",
                        self.ctx.slow_bound().as_secs_f64(),
                        describe(&other)
                    )))
                }
            }
        }
    }

    /// The next frames must be `pong`s with ids 0, 1, … `count - 1`, in order.
    fn expect_pongs(&mut self, wire: &mut Wire, count: usize, sent: &str) -> Result<(), Failure> {
        let (deadline, cut) = self.ctx.slow_deadline();
        for expected in 0..count {
            let got = self.ctx.next(wire, deadline);
            match &got {
                Next::Frame(frame) if frame["type"] == "pong" && frame["id"] == json!(expected) => {
                }
                Next::Timeout if cut => return Ok(()),
                _ => {
                    if let Next::Frame(frame) = &got {
                        self.count_error(frame);
                    }
                    return Err(Failure::Wrong(format!(
                        "after {sent} ({count} pings with ids 0..{count}): expected the pong \
                         with id {expected}, got {} (replies must come complete and in order)",
                        describe(&got)
                    )));
                }
            }
        }
        Ok(())
    }

    /// Ends a session the way a random client would: FIN, reset, or half-close and drain.
    fn finish(&mut self, mut wire: Wire) -> Result<(), Failure> {
        let ending = match self.rng.below(10) {
            0..=3 => Ending::Close,
            4..=8 => Ending::Reset,
            _ => {
                if wire.half_close().is_ok() {
                    self.absorb(&mut wire, Duration::from_millis(100))?;
                }
                Ending::Close
            }
        };
        self.end(wire, ending);
        Ok(())
    }

    fn end(&self, wire: Wire, how: Ending) {
        let tally = &self.ctx.tally;
        Tally::add(&tally.bytes_out, wire.bytes_out);
        Tally::add(&tally.frames_in, wire.frames_in);
        if how == Ending::Reset {
            Tally::add(&tally.resets_sent, 1);
        }
        wire.end(how);
    }

    fn count_error(&self, frame: &Value) {
        if let Some(code) = error_code(frame) {
            self.ctx.tally.error_code(code);
        }
    }

    /// A name no other connection of this run uses (valid: ASCII, at most 32 characters).
    fn unique_name(&self, prefix: &str) -> String {
        format!("{prefix}{}x{}{}", self.id, self.session, self.ctx.tag)
    }
}

/// A wait's outcome in words, for messages.
pub(super) fn describe(next: &Next) -> String {
    match next {
        Next::Frame(frame) => clip(&frame.to_string()),
        Next::Timeout => "nothing".into(),
        Next::Closed(how) => format!("the connection closed ({how})"),
        Next::Invalid(why) => why.clone(),
    }
}

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
//! The sessions are in `junk.rs` (the first five) and `checked.rs` (the rest); this file runs
//! them and holds what they share. Sessions end with a FIN, a reset (`SO_LINGER` 0) or a
//! half-close, at random. A refused connection is a crash; anything the server answers wrongly
//! is a wrong answer.

mod checked;
mod junk;

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
    /// The run: where to connect, its limits, where to report.
    ctx: &'a Ctx,
    /// This attacker's own generator, derived from the run's seed and `id`: a seed replays
    /// what each attacker sends, whatever the others do.
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

    // ---- helpers the sessions share (the sessions are in `junk.rs` and `checked.rs`) ----

    /// Opens a connection. `None` when it could not be opened for a reason that is not the
    /// server's absence (a timeout while its accept queue is full, say).
    fn open(&mut self) -> Result<Option<Wire<'a>>, Failure> {
        match Wire::connect(self.ctx.addr, self.ctx.connect_timeout(), &self.ctx.tally) {
            Ok(wire) => Ok(Some(wire)),
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => Err(Failure::Refused(e)),
            Err(_) => {
                Tally::add(&self.ctx.tally.connect_failures, 1);
                Ok(None)
            }
        }
    }

    /// Writes `bytes`; `false` when the connection no longer takes data (closed by the server,
    /// or not read for a second).
    fn write(&mut self, wire: &mut Wire<'_>, bytes: &[u8]) -> bool {
        let ok = wire.send(bytes).is_ok();
        if !ok {
            Tally::add(&self.ctx.tally.closed_by_server, 1);
        }
        ok
    }

    /// Writes the lines coalesced in random groups, or split mid-line, reading a little in
    /// between.
    fn send_lines(&mut self, wire: &mut Wire<'_>, lines: &[Vec<u8>]) -> Result<(), Failure> {
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
    fn absorb(&mut self, wire: &mut Wire<'_>, duration: Duration) -> Result<(), Failure> {
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
        wire: &mut Wire<'_>,
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
    fn expect_pongs(
        &mut self,
        wire: &mut Wire<'_>,
        count: usize,
        sent: &str,
    ) -> Result<(), Failure> {
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
    fn finish(&mut self, mut wire: Wire<'_>) -> Result<(), Failure> {
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
        wire.end(ending);
        Ok(())
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

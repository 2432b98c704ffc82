//! The sessions whose answer the attacker can predict, and checks: a line past the limit ends
//! the connection, a line at the limit is accepted, flooded pings come back complete and in
//! order, a half-closed connection gets every reply, `quit` gets `bye` and a close.

use super::{describe, Attacker, ROOMS};
use crate::fuzz::frames;
use crate::fuzz::report::{clip, Tally};
use crate::fuzz::wire::{error_code, Ending, Next};
use crate::fuzz::Failure;
use serde_json::json;
use std::time::Duration;

impl Attacker<'_> {
    /// A line one byte past `--max-line`, never finished: the server must say `line_too_long`
    /// and close, without waiting for a newline (PROTOCOL.md, "Framing").
    pub(super) fn oversize(&mut self) -> Result<(), Failure> {
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
    pub(super) fn at_limit(&mut self) -> Result<(), Failure> {
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

    pub(super) fn flood(&mut self) -> Result<(), Failure> {
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
        wire.end(Ending::Reset);
        Ok(())
    }

    /// Pings, then `shutdown(SHUT_WR)`: every pong is still due, then the server closes
    /// (PROTOCOL.md, "Half-close").
    pub(super) fn half_close(&mut self) -> Result<(), Failure> {
        let Some(mut wire) = self.open()? else {
            return Ok(());
        };
        let count = self.rng.range(1, 20);
        let batch: Vec<u8> = (0..count)
            .flat_map(|i| frames::line(&json!({"type": "ping", "id": i})))
            .collect();
        if !self.write(&mut wire, &batch) || wire.half_close().is_err() {
            wire.end(Ending::Close);
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
        wire.end(Ending::Close);
        Ok(())
    }

    pub(super) fn hold(&mut self) -> Result<(), Failure> {
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
            wire.end(Ending::Close);
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
        wire.end(Ending::Close);
        Ok(())
    }
}

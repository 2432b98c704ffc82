//! The sessions that send junk and check only that every frame coming back is valid: random
//! and mutated requests, garbage, dribbled lines, abrupt resets.

use super::{Attacker, MAX_BURST, ROOMS};
use crate::fuzz::frames::{self, SEEDS};
use crate::fuzz::wire::Ending;
use crate::fuzz::Failure;
use serde_json::json;
use std::time::Duration;

impl Attacker<'_> {
    pub(super) fn chatter(&mut self) -> Result<(), Failure> {
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

    pub(super) fn mutant(&mut self) -> Result<(), Failure> {
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

    pub(super) fn garbage(&mut self) -> Result<(), Failure> {
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

    pub(super) fn dribble(&mut self) -> Result<(), Failure> {
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

    /// Connections that end abruptly: a reset at once, mid-line or right after `join`, or a
    /// plain close; a quarter of the time a burst of them, opened together.
    pub(super) fn reset(&mut self) -> Result<(), Failure> {
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
            wire.end(ending);
        }
        Ok(())
    }
}

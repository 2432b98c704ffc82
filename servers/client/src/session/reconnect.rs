//! Connections come and go: joining on a fresh connection, noticing a lost one, and the
//! reconnect tries with exponential backoff (1 s, 2 s, 4 s ... at most 30 s apart, at most
//! `--retries` of them).
//!
//! Backoff matters beyond politeness: when a server restarts, every client it had reconnects
//! at once; doubling delays spread that stampede out instead of hammering a server that is
//! still starting.

use super::{Exit, Flow, Link, Session};
use crate::connection::{self, backoff};
use crate::render::{notice, problem};
use chat_core::Request;
use chrono::Local;
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Instant;

impl Session {
    /// Makes `stream` the current connection and sends `join` with our identity.
    pub(super) fn attach(&mut self, stream: TcpStream) -> io::Result<()> {
        self.generation += 1;
        connection::spawn_reader(&stream, self.generation, self.inbox_sender.clone())?;
        let join = Request::Join {
            nickname: self.identity.nickname.clone(),
            room: Some(self.identity.room.clone()),
        };
        (&stream).write_all(&join.to_line())?;
        self.link = Link::Up {
            stream,
            joined: false,
            last_sent: Instant::now(),
        };
        Ok(())
    }

    /// The connection is gone: schedule the first reconnect try, or stop.
    pub(super) fn lose(&mut self, why: &str) -> Flow {
        if let Link::Up { stream, .. } = &self.link {
            // Wakes the reader thread if it is still blocked on this socket.
            let _ = stream.shutdown(Shutdown::Both);
        }
        if self.is_quitting() {
            return Err(Exit(0)); // we were leaving anyway
        }
        self.forget_drain_ping();
        let now = Local::now();
        if self.options.retries == 0 {
            self.show(&problem(&format!("connection lost: {why}"), &now));
            return Err(Exit(1));
        }
        let delay = backoff(1);
        self.show(&notice(
            &format!(
                "connection lost: {why}; reconnecting in {} s (try 1 of {})",
                delay.as_secs(),
                self.options.retries
            ),
            &now,
        ));
        self.link = Link::Down {
            attempt: 1,
            next_try: Instant::now() + delay,
        };
        Ok(())
    }

    /// Reconnect try number `attempt`.
    pub(super) fn reconnect(&mut self, attempt: u32) -> Flow {
        let error = match connection::connect(&self.options.addr) {
            Ok(stream) => match self.attach(stream) {
                Ok(()) => {
                    self.show(&notice(
                        &format!(
                            "reconnected to {}; joining as {} in {}",
                            self.options.addr, self.identity.nickname, self.identity.room
                        ),
                        &Local::now(),
                    ));
                    return Ok(());
                }
                Err(e) => e,
            },
            Err(e) => e,
        };
        let why = connection::describe(&error);
        if attempt >= self.options.retries {
            self.show(&problem(
                &format!(
                    "gave up reconnecting to {} after {attempt} tries: {why}",
                    self.options.addr
                ),
                &Local::now(),
            ));
            return Err(Exit(1));
        }
        let delay = backoff(attempt + 1);
        self.show(&notice(
            &format!(
                "reconnect failed: {why}; next try in {} s (try {} of {})",
                delay.as_secs(),
                attempt + 1,
                self.options.retries
            ),
            &Local::now(),
        ));
        self.link = Link::Down {
            attempt: attempt + 1,
            next_try: Instant::now() + delay,
        };
        Ok(())
    }
}

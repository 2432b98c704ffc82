//! `--transport ws` in an engine thread: the upgrade, and the frames around the protocol's lines.
//!
//! A WebSocket connection is a TCP connection that first sends an HTTP upgrade request and
//! waits for the `101` (state `Upgrading`), and from then on carries one protocol line per text
//! message: the engine writes each line as one masked frame (`traffic.rs`, `send_lines`) and
//! turns the server's text messages back into lines before the codec sees them (here), so
//! everything after this file — scanning, timing, loss and order checks — is the same for both
//! transports. Control frames are answered here too: a ping gets its pong, and a close ends the
//! connection with its code in the report.

use super::codec::MAX_FRAME;
use super::conn::{State, WsLink};
use super::event_loop::EventLoop;
use crate::ws::{self, Opcode};

impl EventLoop {
    /// The TCP connect of a WebSocket connection finished: send the upgrade request.
    pub(super) fn start_upgrade(&mut self, slot: usize, started_us: u64, connect_us: u64) {
        let addr = self.shared.config.addrs[self.conns[slot].addr_slot];
        let (request, key) = match ws::upgrade_request(addr, &self.shared.config.ws_path) {
            Ok(made) => made,
            Err(e) => {
                return self.fail(slot, super::connect::Failure::new("ws_upgrade", e));
            }
        };
        let conn = &mut self.conns[slot];
        conn.ws = Some(WsLink {
            key,
            ..WsLink::default()
        });
        conn.state = State::Upgrading {
            started_us,
            connect_us,
        };
        match conn.write(&request) {
            Ok(waiting) => self.watch(slot, waiting),
            Err(e) => self.ended(slot, e),
        }
    }

    /// Handles the first `len` bytes of the read buffer of a WebSocket connection: the answer
    /// to the upgrade, then frames. Text messages become lines for the codec; an unfinished
    /// frame is kept for the next read. `Err` ends the connection (a close frame, a broken
    /// frame).
    pub(super) fn take_ws(&mut self, slot: usize, len: usize, now: u64) -> Result<(), String> {
        let mut at = 0;
        if let State::Upgrading {
            started_us,
            connect_us,
        } = self.conns[slot].state
        {
            let key = self.conns[slot]
                .ws
                .as_ref()
                .map(|w| w.key.clone())
                .unwrap_or_default();
            match ws::upgrade_response(&self.read_buf[..len], &key) {
                Ok(None) => {
                    let head = &self.read_buf[..len];
                    self.conns[slot].tail.extend_from_slice(head);
                    return Ok(());
                }
                Ok(Some(head)) => {
                    at = head;
                    self.upgraded(slot, started_us, connect_us, now);
                    if !matches!(
                        self.conns[slot].state,
                        State::Joining { .. } | State::Joined
                    ) {
                        return Ok(());
                    }
                }
                Err(e) => {
                    self.fail(slot, super::connect::Failure::new("ws_upgrade", e));
                    return Ok(());
                }
            }
        }
        let mut lines = std::mem::take(&mut self.lines);
        lines.clear();
        let mut closed = None;
        while closed.is_none() {
            let frame = match ws::parse_frame(&self.read_buf[at..len], MAX_FRAME) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    self.lines = lines;
                    return Err(format!("unreadable WebSocket stream: {e}"));
                }
            };
            if frame.mask.is_some() {
                self.lines = lines;
                return Err("the server masked a frame (RFC 6455 forbids it)".into());
            }
            let payload = at + frame.header..at + frame.frame_len();
            at += frame.frame_len();
            let Some(link) = self.conns[slot].ws.as_mut() else {
                break;
            };
            match frame.opcode {
                Opcode::Text | Opcode::Continuation if frame.fin && !link.in_message => {
                    lines.extend_from_slice(&self.read_buf[payload]);
                    lines.push(b'\n');
                }
                Opcode::Text | Opcode::Continuation => {
                    // A fragment: gather until the last one.
                    link.message.extend_from_slice(&self.read_buf[payload]);
                    link.in_message = !frame.fin;
                    if frame.fin {
                        lines.append(&mut link.message);
                        lines.push(b'\n');
                    } else if link.message.len() > MAX_FRAME {
                        self.lines = lines;
                        return Err(format!("a message longer than {MAX_FRAME} bytes"));
                    }
                }
                Opcode::Binary => self.tally.unparsed += 1, // the protocol is text only
                Opcode::Ping => {
                    let key = self.mask_keys.next_key();
                    let pong = ws::frame(Opcode::Pong, &self.read_buf[payload], Some(key));
                    if let Err(e) = self.conns[slot].write(&pong) {
                        closed = Some(e);
                    }
                }
                Opcode::Pong => {}
                Opcode::Close => {
                    let (code, reason) = ws::parse_close(&self.read_buf[payload]);
                    closed = Some(format!(
                        "closed by the server ({})",
                        ws::describe_close(code, &reason)
                    ));
                }
            }
        }
        let rest = &self.read_buf[at..len];
        self.conns[slot].tail.extend_from_slice(rest);
        // Whole messages only: every line is complete.
        self.frames.clear();
        let decoded = self.shared.codec.decode(&lines, &mut self.frames);
        self.lines = lines;
        self.take_frames(slot, now);
        if let Err(e) = decoded {
            return Err(format!("unreadable stream: {e}"));
        }
        match closed {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }

    /// The server accepted the upgrade: send the handshake (join), or, for an echo server,
    /// the connection is ready now.
    fn upgraded(&mut self, slot: usize, started_us: u64, connect_us: u64, now: u64) {
        self.conns[slot].state = State::Joining {
            started_us,
            connect_us,
        };
        self.send_handshake(slot, now);
    }

    /// A polite end: a close frame (1000) before the socket goes, when nothing waits to be
    /// written (a full socket gets no more bytes).
    pub(super) fn say_goodbye(&mut self, slot: usize) {
        let conn = &mut self.conns[slot];
        if conn.ws.is_none() || !conn.unsent.is_empty() || conn.stream.is_none() {
            return;
        }
        if !matches!(conn.state, State::Joined | State::Joining { .. }) {
            return;
        }
        let payload = ws::close_payload(ws::CLOSE_NORMAL, "");
        let close = ws::frame(Opcode::Close, &payload, Some(self.mask_keys.next_key()));
        let _ = conn.write(&close);
    }
}

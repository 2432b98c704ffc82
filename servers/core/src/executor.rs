//! Carrying out the Outbox: the one step between the Hub and the sockets that every server
//! shares.
//!
//! The [`Hub`] answers every call with [`Action`]s in an [`Outbox`]. Doing them is the same in
//! every I/O model:
//! - `Send`: queue the frame on that connection, after what is queued there;
//! - `Close`: the Hub has forgotten the connection: write what is queued, then close it;
//! - *overflow*: a connection whose socket refused more than `--max-backlog` bytes (see
//!   [`SendQueue`](crate::SendQueue)) is cut off at once, and the Hub is told it left, which
//!   gives its room a `left`: more actions, so [`carry_out`] loops until there are none.
//!
//! What differs between the models is only *where* each connection's queue lives, and that is
//! the [`Sink`]: a map of peers owned by an event loop, a table of queues behind a lock, the
//! routes to other threads' mailboxes. [`carry_out`] is the executor; a server implements
//! three small methods.
//!
//! ## The rule: after each request
//!
//! Every server carries out the Outbox after *every* Hub call, and [`handle_lines`] does it for
//! the lines of one read: a request, its actions, the next request. So a member cut off by one
//! request's broadcast has left the room before the next request is handled, whatever the model,
//! and what the room sees does not depend on how many requests one read happened to bring.
//!
//! Writing is not part of this step: a sink only queues. Each model writes when it can (at once
//! in the blocking server, after releasing the lock in the thread servers, at the end of a loop
//! turn in the event loops, in the writer task in the async server), which is why
//! `--max-backlog` counts only the bytes a write attempt left behind (guarantee 4 of
//! `PROTOCOL.md`): frames queued during one request or turn are not a slow reader.

use crate::hub::Hub;
use crate::outbox::{Action, CloseReason, ConnId, Frame, Outbox};
#[cfg(doc)]
use crate::protocol::Inbound;
use crate::protocol::{Rejection, RequestRef};
use crate::send_queue::BacklogFull;
use std::time::Instant;

/// Where one server's outgoing frames go: its connections, however it keeps them.
pub trait Sink {
    /// Queues `frame` on connection `to`, after what is queued there. `Err(BacklogFull)` when
    /// `to` has refused more than `--max-backlog` bytes: the executor then calls
    /// [`cut`](Sink::cut). A connection the sink does not know (closed already) is ignored.
    fn send(&mut self, to: ConnId, frame: Frame) -> Result<(), BacklogFull>;

    /// The Hub closed `conn` (`quit`, `line_too_long`, `idle_timeout`, `server_full`,
    /// `shutting_down`): write what is queued for it, then close it.
    fn close(&mut self, conn: ConnId, reason: CloseReason);

    /// `conn` overflowed its backlog: close it now, dropping what is queued, and forget it (its
    /// later frames are ignored). The executor tells the Hub next.
    fn cut(&mut self, conn: ConnId);
}

/// Carries out every action of `out`, in order, into `sink`. A connection over its backlog is
/// cut and disconnected from the Hub, whose `left` notices are carried out in turn, until the
/// Outbox is empty (its allocation is kept for the next call).
pub fn carry_out(hub: &mut Hub, out: &mut Outbox, sink: &mut impl Sink) {
    let mut overflowed = Vec::new(); // allocates only if someone overflows
    while !out.is_empty() {
        for action in out.drain() {
            match action {
                Action::Send { to, frame } => {
                    if sink.send(to, frame).is_err() {
                        tracing::info!("{to}: over --max-backlog; disconnecting");
                        sink.cut(to);
                        overflowed.push(to);
                    }
                }
                Action::Close { conn, reason } => {
                    tracing::debug!("{conn}: closing ({reason:?})");
                    sink.close(conn, reason);
                }
            }
        }
        // Guarantee 4: nobody waits for a reader this slow; its room is told it left.
        for id in overflowed.drain(..) {
            hub.disconnect(id, out);
        }
    }
}

/// The lines of one read from `id`, through the Hub one request at a time, each one's actions
/// carried out before the next is handled (the rule of the module docs).
///
/// The lines may be owned ([`Inbound`], from [`LineDecoder::feed`](crate::LineDecoder::feed))
/// or borrowed from the read buffer ([`InboundRef`](crate::InboundRef), from
/// [`LineDecoder::feed_ref`](crate::LineDecoder::feed_ref)).
pub fn handle_lines<'a, R: Into<RequestRef<'a>>>(
    hub: &mut Hub,
    id: ConnId,
    lines: impl IntoIterator<Item = Result<R, Rejection>>,
    now: Instant,
    out: &mut Outbox,
    sink: &mut impl Sink,
) {
    for line in lines {
        hub.handle_ref(id, line.map(Into::into), now, out);
        carry_out(hub, out, sink);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_request, HubConfig};
    use serde_json::Value;
    use std::collections::HashMap;

    /// A sink that records what it is asked, and refuses frames to one connection.
    #[derive(Default)]
    struct Recorder {
        frames: HashMap<ConnId, Vec<Value>>,
        closed: Vec<ConnId>,
        cut: Vec<ConnId>,
        full: Option<ConnId>,
    }

    impl Sink for Recorder {
        fn send(&mut self, to: ConnId, frame: Frame) -> Result<(), BacklogFull> {
            if self.full == Some(to) {
                return Err(BacklogFull);
            }
            if !self.cut.contains(&to) {
                let value = serde_json::from_slice(&frame).expect("a JSON frame");
                self.frames.entry(to).or_default().push(value);
            }
            Ok(())
        }
        fn close(&mut self, conn: ConnId, _reason: CloseReason) {
            self.closed.push(conn);
        }
        fn cut(&mut self, conn: ConnId) {
            self.cut.push(conn);
        }
    }

    fn join(hub: &mut Hub, sink: &mut Recorder, nickname: &str) -> ConnId {
        let mut out = Outbox::new();
        let id = hub.connect(Instant::now(), &mut out);
        let line = format!(r#"{{"type":"join","nickname":"{nickname}","room":"r"}}"#);
        let lines = [parse_request(line.as_bytes())];
        handle_lines(hub, id, lines, Instant::now(), &mut out, sink);
        id
    }

    /// A member over its backlog is cut, the Hub forgets it, and the rest of the room hears
    /// `left` before the next request is handled.
    #[test]
    fn an_overflowing_member_is_cut_and_its_room_told_before_the_next_request() {
        let mut hub = Hub::new(HubConfig::default());
        let mut sink = Recorder::default();
        let a = join(&mut hub, &mut sink, "a");
        let b = join(&mut hub, &mut sink, "b");
        let slow = join(&mut hub, &mut sink, "slow");
        sink.frames.clear();
        sink.full = Some(slow);

        let lines = [
            parse_request(br#"{"type":"message","content":"one"}"#),
            parse_request(br#"{"type":"list_users"}"#),
        ];
        let mut out = Outbox::new();
        handle_lines(&mut hub, a, lines, Instant::now(), &mut out, &mut sink);

        assert_eq!(sink.cut, [slow]);
        assert!(!hub.contains(slow));
        let kinds = |id| -> Vec<String> {
            sink.frames[&id]
                .iter()
                .map(|f| f["type"].as_str().unwrap_or_default().to_string())
                .collect()
        };
        assert_eq!(kinds(b), ["broadcast", "left"]);
        assert_eq!(kinds(a), ["broadcast", "left", "users"]);
        assert_eq!(sink.frames[&a][2]["users"], serde_json::json!(["a", "b"]));
        assert!(out.is_empty());
    }

    /// `Close` actions reach the sink in order after the connection's last frame.
    #[test]
    fn close_comes_after_the_last_frame() {
        let mut hub = Hub::new(HubConfig::default());
        let mut sink = Recorder::default();
        let a = join(&mut hub, &mut sink, "a");
        let mut out = Outbox::new();
        let lines = [parse_request(br#"{"type":"quit"}"#)];
        handle_lines(&mut hub, a, lines, Instant::now(), &mut out, &mut sink);
        assert_eq!(sink.frames[&a].last().unwrap()["type"], "bye");
        assert_eq!(sink.closed, [a]);
    }
}

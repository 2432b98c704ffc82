//! What goes over the wire: the chat protocol's JSON lines, or Redis' RESP (see [`super::resp`]).
//!
//! Both targets are reduced to the same few events the driver cares about: "the connection is
//! ready" (`welcome`, or Redis' subscribe confirmation), "a tagged message arrived" (a
//! `broadcast`, `private` or `pong` carrying one of our ids, or a Redis pub/sub message or PING
//! reply), and "an error arrived". Encoding writes the hot-path frames by hand: our ids are
//! digits and colons and the padding is `x`s, so nothing needs escaping and no allocation per
//! message is needed beyond the output buffer.

use super::resp;
use super::workload::MsgId;
use bytes::{Buf, BytesMut};
use serde::Deserialize;
use std::borrow::Cow;

/// The protocol a run speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    /// The chat protocol of `shared/spec/protocol.md`.
    Chat,
    /// Redis pub/sub over RESP3. `subscribe`: the handshake subscribes to the room (chat and
    /// idle workloads); otherwise `HELLO 3` alone makes the connection ready (ping).
    Redis { subscribe: bool },
}

/// A message to send.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outgoing<'a> {
    /// To the sender's room (chat `message`; Redis `PUBLISH room`).
    Room(&'a str),
    /// To one user (chat `private`; not offered for Redis, which has no such thing).
    Private(&'a str),
    /// Request/response (chat `ping`; Redis `PING`).
    Ping,
}

/// What the driver learns from one incoming frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// The handshake finished: the connection is joined / subscribed.
    Ready,
    /// A message carrying one of the generator's ids.
    Tagged(MsgId),
    /// An error with its code (`server_full`, `rate_limited`, or Redis' first word).
    Error(String),
    /// A well-formed frame the load test does not use (`joined`, `left`, a PUBLISH count…).
    Other,
    /// A frame we could not make sense of (not JSON, or an id that is not ours).
    Unparsed,
}

/// The longest frame we accept before declaring the stream broken (the spec's `--max-line`
/// default, plus room for a Redis message header).
const MAX_FRAME: usize = 65_536 + 1024;

impl Codec {
    /// The bytes that join a connection: chat `join`, or Redis `HELLO 3` (+ `SUBSCRIBE`).
    pub(crate) fn handshake(&self, out: &mut Vec<u8>, nickname: &str, room: &str) {
        match self {
            Codec::Chat => out.extend_from_slice(
                &chat_core::Request::Join {
                    nickname: nickname.to_string(),
                    room: Some(room.to_string()),
                }
                .to_line(),
            ),
            Codec::Redis { subscribe } => {
                resp::command(out, &[b"HELLO", b"3"]);
                if *subscribe {
                    // The room is a channel; in RESP3 a subscribed connection may still PUBLISH,
                    // so one connection per member, as with the chat servers.
                    resp::command(out, &[b"SUBSCRIBE", room.as_bytes()]);
                }
            }
        }
    }

    /// Appends one message carrying `id` and `padding` (the `content`).
    pub(crate) fn encode(&self, out: &mut Vec<u8>, msg: Outgoing<'_>, id: &str, padding: &str) {
        match (self, msg) {
            (Codec::Chat, Outgoing::Room(_)) => {
                push_all(
                    out,
                    &[br#"{"type":"message","content":""#, padding.as_bytes()],
                );
                push_all(out, &[br#"","id":""#, id.as_bytes(), b"\"}\n"]);
            }
            (Codec::Chat, Outgoing::Private(to)) => {
                push_all(out, &[br#"{"type":"private","to":""#, to.as_bytes()]);
                push_all(out, &[br#"","content":""#, padding.as_bytes()]);
                push_all(out, &[br#"","id":""#, id.as_bytes(), b"\"}\n"]);
            }
            (Codec::Chat, Outgoing::Ping) => {
                push_all(out, &[br#"{"type":"ping","id":""#, id.as_bytes(), b"\"}\n"]);
            }
            // The config refuses `private` with Redis; a channel named after the user would be
            // the nearest analogue.
            (Codec::Redis { .. }, Outgoing::Room(channel) | Outgoing::Private(channel)) => {
                let payload = [id.as_bytes(), b" ", padding.as_bytes()].concat();
                resp::command(out, &[b"PUBLISH", channel.as_bytes(), &payload]);
            }
            (Codec::Redis { .. }, Outgoing::Ping) => resp::command(out, &[b"PING", id.as_bytes()]),
        }
    }

    /// Takes every complete frame off the front of `buf`. An error means the stream cannot be
    /// framed any more (a frame beyond [`MAX_FRAME`], or broken RESP): end that connection.
    pub(crate) fn decode(&self, buf: &mut BytesMut, out: &mut Vec<Incoming>) -> Result<(), String> {
        match self {
            Codec::Chat => loop {
                let Some(end) = memchr::memchr(b'\n', buf) else {
                    if buf.len() > MAX_FRAME {
                        return Err(format!("a line longer than {MAX_FRAME} bytes"));
                    }
                    return Ok(());
                };
                let line = &buf[..end];
                if !line.is_empty() {
                    out.push(decode_chat_line(line));
                }
                buf.advance(end + 1);
            },
            Codec::Redis { subscribe } => loop {
                match resp::parse(buf)? {
                    None if buf.len() > MAX_FRAME => {
                        return Err(format!("a RESP value longer than {MAX_FRAME} bytes"))
                    }
                    None => return Ok(()),
                    Some((value, used)) => {
                        out.push(resp::classify(&value, *subscribe));
                        buf.advance(used);
                    }
                }
            },
        }
    }
}

fn push_all(out: &mut Vec<u8>, parts: &[&[u8]]) {
    for part in parts {
        out.extend_from_slice(part);
    }
}

/// The fields of a server event the load test reads; the rest is skipped by serde. `Cow`
/// borrows from the line unless a string contains escapes.
#[derive(Deserialize)]
struct EventFields<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    code: Option<Cow<'a, str>>,
}

fn decode_chat_line(line: &[u8]) -> Incoming {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Ok(event) = serde_json::from_slice::<EventFields<'_>>(line) else {
        // Valid JSON of another shape (an integer id, say) is still not ours to measure.
        return Incoming::Unparsed;
    };
    match event.kind.as_ref() {
        "welcome" => Incoming::Ready,
        "broadcast" | "private" | "pong" => match event.id.as_deref().and_then(MsgId::parse) {
            Some(id) => Incoming::Tagged(id),
            None => Incoming::Unparsed,
        },
        "error" => Incoming::Error(
            event
                .code
                .map_or_else(|| "error".into(), |c| c.into_owned()),
        ),
        _ => Incoming::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: Codec, bytes: &[u8]) -> (Vec<Incoming>, usize) {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        codec.decode(&mut buf, &mut out).expect("decodes");
        (out, buf.len())
    }

    /// Chat frames are split on newlines; a partial line waits for the rest.
    #[test]
    fn chat_lines() {
        let input = concat!(
            r#"{"type":"welcome","nickname":"a","room":"r","users":["a"]}"#,
            "\n",
            r#"{"type":"broadcast","from":"a","room":"r","content":"x","ts":1,"id":"3:4:5:6"}"#,
            "\r\n\n",
            r#"{"type":"error","code":"server_full","message":"full"}"#,
            "\n",
            r#"{"type":"pong","id":7}"#,
            "\n",
            r#"{"type":"joined","nickname":"b","room":"r"}"#,
            "\nnot json\n",
            r#"{"type":"pong"#
        );
        let (events, left) = decode_all(Codec::Chat, input.as_bytes());
        let id = MsgId {
            sender: 3,
            seq: 4,
            intended_us: 5,
            sent_us: 6,
        };
        assert_eq!(
            events,
            vec![
                Incoming::Ready,
                Incoming::Tagged(id),
                Incoming::Error("server_full".into()),
                Incoming::Unparsed,
                Incoming::Other,
                Incoming::Unparsed,
            ]
        );
        assert_eq!(left, r#"{"type":"pong"#.len());
    }

    /// The hand-written frames are valid requests, as the server's own parser sees them.
    #[test]
    fn chat_frames_parse_as_requests() {
        let mut out = Vec::new();
        Codec::Chat.encode(&mut out, Outgoing::Room("r"), "1:2:3:4", "xxxx");
        Codec::Chat.encode(&mut out, Outgoing::Private("bob"), "1:2:3:4", "xx");
        Codec::Chat.encode(&mut out, Outgoing::Ping, "1:2:3:4", "");
        let text = String::from_utf8(out).expect("utf-8");
        let requests: Vec<_> = text
            .lines()
            .map(|l| chat_core::parse_request(l.as_bytes()).expect("a valid request"))
            .collect();
        assert_eq!(requests.len(), 3);
        assert!(matches!(&requests[1], chat_core::Request::Private { to, .. } if to == "bob"));
    }
}

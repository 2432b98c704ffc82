//! What goes over the wire: the chat protocol's JSON lines, Redis' RESP (see [`super::resp`]),
//! or an echo server's lines.
//!
//! All three are reduced to the same few events the engine cares about: "the connection is
//! ready" (`welcome`, or Redis' subscribe confirmation), "a tagged message arrived" (a
//! `broadcast`, `private` or `pong` carrying one of our ids, or a Redis pub/sub message or PING
//! reply), and "an error arrived".
//!
//! Both directions are on the path of every message, so neither builds a JSON value. Encoding
//! writes the frames by hand: our ids are digits and colons and the padding is `x`s, so nothing
//! needs escaping. Decoding reads a line's top-level fields with a small scanner
//! ([`super::scan`]) that finds `type`, `id` and `code` and skips the rest; a line it is not
//! sure about (an escape inside one of those fields, say) goes to `serde_json` instead, so the
//! shortcut never changes what a line means.

use super::resp;
use super::scan::{self, Scan};
use super::workload::MsgId;
use serde::Deserialize;
use std::borrow::Cow;

/// The protocol a run speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    /// The chat protocol of this workspace (PROTOCOL.md).
    Chat,
    /// Redis pub/sub over RESP3. `subscribe`: the handshake subscribes to the room (chat and
    /// idle workloads); otherwise `HELLO 3` alone makes the connection ready (ping).
    Redis { subscribe: bool },
    /// An echo server (`--workload echo`): no handshake; each message is a line `<id> <padding>`
    /// that must come back exactly as sent. `padding` is the padding's length.
    Echo { padding: usize },
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
    /// A line for an echo server.
    Echo,
}

/// What the engine learns from one incoming frame.
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

/// The longest frame we accept before declaring the stream broken (the protocol's
/// `--max-line` default, plus room for a Redis message header).
pub(crate) const MAX_FRAME: usize = 65_536 + 1024;

impl Codec {
    /// Whether a connection must send a handshake and wait for its reply before it is ready
    /// (an echo server needs none: connected is ready).
    pub(crate) fn has_handshake(&self) -> bool {
        !matches!(self, Codec::Echo { .. })
    }

    /// The bytes that join a connection: chat `join`, or Redis `HELLO 3` (+ `SUBSCRIBE`).
    pub(crate) fn handshake(&self, out: &mut Vec<u8>, nickname: &str, room: &str) {
        match self {
            Codec::Echo { .. } => {}
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

    /// Appends one message carrying `id` (the text [`MsgId::write_to`] wrote) and `padding`
    /// (the `content`).
    pub(crate) fn encode(&self, out: &mut Vec<u8>, msg: Outgoing<'_>, id: &[u8], padding: &[u8]) {
        match (self, msg) {
            (Codec::Chat, Outgoing::Room(_)) => push_all(
                out,
                &[
                    br#"{"type":"message","content":""#,
                    padding,
                    br#"","id":""#,
                    id,
                    b"\"}\n",
                ],
            ),
            (Codec::Chat, Outgoing::Private(to)) => push_all(
                out,
                &[
                    br#"{"type":"private","to":""#,
                    to.as_bytes(),
                    br#"","content":""#,
                    padding,
                    br#"","id":""#,
                    id,
                    b"\"}\n",
                ],
            ),
            (Codec::Chat, Outgoing::Ping) => {
                push_all(out, &[br#"{"type":"ping","id":""#, id, b"\"}\n"]);
            }
            // The config refuses `private` with Redis; a channel named after the user would be
            // the nearest analogue.
            (Codec::Redis { .. }, Outgoing::Room(channel) | Outgoing::Private(channel)) => {
                resp::publish(out, channel.as_bytes(), id, padding);
            }
            (Codec::Redis { .. }, Outgoing::Ping) => resp::command(out, &[b"PING", id]),
            (Codec::Echo { .. }, _) | (_, Outgoing::Echo) => {
                push_all(out, &[id, b" ", padding, b"\n"]);
            }
        }
    }

    /// Decodes every complete frame at the front of `buf` into `out` and returns how many bytes
    /// they took; the rest is an incomplete frame to keep for the next read. An error means the
    /// stream cannot be framed any more (a frame beyond [`MAX_FRAME`], or broken RESP): end
    /// that connection.
    pub(crate) fn decode(&self, buf: &[u8], out: &mut Vec<Incoming>) -> Result<usize, String> {
        let mut used = 0;
        match self {
            Codec::Echo { padding } => {
                while let Some(end) = memchr::memchr(b'\n', &buf[used..]) {
                    out.push(decode_echo_line(&buf[used..used + end], *padding));
                    used += end + 1;
                }
                if buf.len() - used > MAX_FRAME {
                    return Err(format!("a line longer than {MAX_FRAME} bytes"));
                }
            }
            Codec::Chat => {
                while let Some(end) = memchr::memchr(b'\n', &buf[used..]) {
                    let line = &buf[used..used + end];
                    if !line.is_empty() {
                        out.push(decode_chat_line(line));
                    }
                    used += end + 1;
                }
                if buf.len() - used > MAX_FRAME {
                    return Err(format!("a line longer than {MAX_FRAME} bytes"));
                }
            }
            Codec::Redis { subscribe } => loop {
                match resp::parse(&buf[used..])? {
                    None if buf.len() - used > MAX_FRAME => {
                        return Err(format!("a RESP value longer than {MAX_FRAME} bytes"))
                    }
                    None => break,
                    Some((value, len)) => {
                        out.push(resp::classify(&value, *subscribe));
                        used += len;
                    }
                }
            },
        }
        Ok(used)
    }
}

fn push_all(out: &mut Vec<u8>, parts: &[&[u8]]) {
    for part in parts {
        out.extend_from_slice(part);
    }
}

/// One echoed line: ours, unchanged, or not (`Unparsed`: a line we never sent, or one the server
/// changed, whose message then also counts as lost).
fn decode_echo_line(line: &[u8], padding: usize) -> Incoming {
    let Some(space) = memchr::memchr(b' ', line) else {
        return Incoming::Unparsed;
    };
    let (id, rest) = (&line[..space], &line[space + 1..]);
    if rest.len() != padding || rest.iter().any(|&b| b != b'x') {
        return Incoming::Unparsed;
    }
    match MsgId::parse(id) {
        Some(id) => Incoming::Tagged(id),
        None => Incoming::Unparsed,
    }
}

/// One chat line: the scanner's answer when it is sure, `serde_json`'s otherwise.
fn decode_chat_line(line: &[u8]) -> Incoming {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match scan::top_level(line) {
        Scan::Fields { kind, id, code } => classify(kind, id, code.map(Cow::Borrowed)),
        Scan::Invalid => Incoming::Unparsed,
        Scan::Unsure => decode_with_serde(line),
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

fn decode_with_serde(line: &[u8]) -> Incoming {
    // Valid JSON of another shape (an integer id, say) is still not ours to measure.
    match serde_json::from_slice::<EventFields<'_>>(line) {
        Ok(event) => classify(
            event.kind.as_bytes(),
            event.id.as_deref().map(str::as_bytes),
            event.code.map(|c| Cow::Owned(c.into_owned().into_bytes())),
        ),
        Err(_) => Incoming::Unparsed,
    }
}

/// What a line means, from its `type`, `id` and `code`.
fn classify(kind: &[u8], id: Option<&[u8]>, code: Option<Cow<'_, [u8]>>) -> Incoming {
    match kind {
        b"welcome" => Incoming::Ready,
        b"broadcast" | b"private" | b"pong" => match id.and_then(MsgId::parse) {
            Some(id) => Incoming::Tagged(id),
            None => Incoming::Unparsed,
        },
        b"error" => Incoming::Error(code.map_or_else(
            || "error".into(),
            |c| String::from_utf8_lossy(&c).into_owned(),
        )),
        _ => Incoming::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: Codec, bytes: &[u8]) -> (Vec<Incoming>, usize) {
        let mut out = Vec::new();
        let used = codec.decode(bytes, &mut out).expect("decodes");
        (out, bytes.len() - used)
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

    /// The shortcut and serde agree: fields in another order, escapes in the fields we read,
    /// nested values, duplicates and broken lines all mean the same as serde says they do.
    #[test]
    fn scanner_and_serde_agree() {
        let lines = [
            r#"{"id":"1:2:3:4","content":"a \"quoted\" }{ line","type":"broadcast"}"#,
            r#"{ "type" : "broadcast" , "id" : "1:2:3:4" , "ts" : 1.5e3 }"#,
            r#"{"type":"broad\u0063ast","id":"1:2:3:4"}"#,
            r#"{"type":"broadcast","id":"1:2:\u0033:4"}"#,
            r#"{"type":"broadcast","extra":{"a":[1,{"b":"}"}]},"id":"1:2:3:4"}"#,
            r#"{"type":"broadcast","id":"1:2:3:4","id":"1:2:3:5"}"#,
            r#"{"type":"error","code":"rate_limited"}"#,
            r#"{"type":"error"}"#,
            r#"{"type":"broadcast","id":null}"#,
            r#"{"type":"pong","id":12}"#,
            r#"{"type":"broadcast","id":"1:2:3:4"} trailing"#,
            r#"{"type":"broadcast","id":"1:2:3:4""#,
            r#"{"type":"broadcast","ts":tru,"id":"1:2:3:4"}"#,
            r#"{"type":7}"#,
            r#"["type","broadcast"]"#,
            r#"{}"#,
            r#"{"type":"rooms","rooms":[{"name":"a","users":1}]}"#,
            r#"{"type":"joined","id":12}"#,
            r#"{"type":"broadcast","ts":1.2.3,"id":"1:2:3:4"}"#,
            r#"{"type":"broadcast","ts":-0.5E+2,"id":"1:2:3:4"}"#,
            r#"{"type":"broadcast","ts":01,"id":"1:2:3:4"}"#,
            "{\"type\":\"broadcast\",\"content\":\"tab\there\",\"id\":\"1:2:3:4\"}",
            "{\"type\":\"broadcast\",\"content\":\"caf\u{e9}\",\"id\":\"1:2:3:4\"}",
            r#"{"type":"broadcast","id":"1:2:3:4",}"#,
            r#"{"type":"broadcast" "id":"1:2:3:4"}"#,
            r#"  {"type":"welcome"}  "#,
        ];
        for line in lines {
            assert_eq!(
                decode_chat_line(line.as_bytes()),
                decode_with_serde(line.as_bytes()),
                "{line}"
            );
        }
    }

    /// The hand-written frames are valid requests, as the server's own parser sees them.
    #[test]
    fn chat_frames_parse_as_requests() {
        let mut out = Vec::new();
        Codec::Chat.encode(&mut out, Outgoing::Room("r"), b"1:2:3:4", b"xxxx");
        Codec::Chat.encode(&mut out, Outgoing::Private("bob"), b"1:2:3:4", b"xx");
        Codec::Chat.encode(&mut out, Outgoing::Ping, b"1:2:3:4", b"");
        let text = String::from_utf8(out).expect("utf-8");
        let requests: Vec<_> = text
            .lines()
            .map(|l| chat_core::parse_request(l.as_bytes()).expect("a valid request"))
            .collect();
        assert_eq!(requests.len(), 3);
        assert!(matches!(&requests[1], chat_core::Request::Private { to, .. } if to == "bob"));
    }

    /// An echo line comes back as its id when it is exactly what was sent, and as unparsed when
    /// the server changed anything.
    #[test]
    fn echo_lines() {
        let codec = Codec::Echo { padding: 4 };
        let mut out = Vec::new();
        codec.encode(&mut out, Outgoing::Echo, b"1:2:3:4", b"xxxx");
        assert_eq!(out, b"1:2:3:4 xxxx\n");
        out.extend_from_slice(b"1:2:3:4 xxxy\n1:2:3:4 xxx\n1:2:3 xxxx\nhello\n1:2:3:5 xx");
        let (events, left) = decode_all(codec, &out);
        let id = MsgId {
            sender: 1,
            seq: 2,
            intended_us: 3,
            sent_us: 4,
        };
        assert_eq!(
            events,
            vec![
                Incoming::Tagged(id),
                Incoming::Unparsed,
                Incoming::Unparsed,
                Incoming::Unparsed,
                Incoming::Unparsed
            ]
        );
        assert_eq!(left, 10);
        assert!(!codec.has_handshake());
    }

    /// A line that never ends is refused once it passes the frame limit.
    #[test]
    fn endless_line_is_an_error() {
        let mut out = Vec::new();
        assert!(Codec::Chat
            .decode(&[b'x'; MAX_FRAME + 1], &mut out)
            .is_err());
        assert_eq!(Codec::Chat.decode(&[b'x'; 100], &mut out), Ok(0));
    }
}

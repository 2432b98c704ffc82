//! What goes over the wire: the chat protocol's JSON lines, the same JSON one WebSocket text
//! message each (see [`super::ws`]), or Redis' RESP (see [`super::resp`]).
//!
//! Both targets are reduced to the same few events the engine cares about: "the connection is
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
use super::ws;
use serde::Deserialize;
use std::borrow::Cow;

/// The protocol a run speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Codec {
    /// The chat protocol of this workspace (PROTOCOL.md).
    Chat,
    /// The chat protocol over WebSocket (`--transport ws`): the upgrade to `path` first, then
    /// one masked text message per protocol frame.
    ChatWs { path: String },
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

/// What the engine learns from one incoming frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// The WebSocket upgrade was accepted: send [`Codec::join_after_upgrade`] now.
    Upgraded,
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
    /// The bytes that join a connection: chat `join`, or Redis `HELLO 3` (+ `SUBSCRIBE`); over
    /// WebSocket the upgrade request, the join following on [`Incoming::Upgraded`].
    pub(crate) fn handshake(&self, out: &mut Vec<u8>, nickname: &str, room: &str) {
        let join = || {
            chat_core::Request::Join {
                nickname: nickname.to_string(),
                room: Some(room.to_string()),
            }
            .to_line()
        };
        match self {
            Codec::Chat => out.extend_from_slice(&join()),
            Codec::ChatWs { path } => ws::upgrade(out, path),
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

    /// Over WebSocket, once upgraded: the join, one text frame.
    pub(crate) fn join_after_upgrade(&self, out: &mut Vec<u8>, nickname: &str, room: &str) {
        let line = chat_core::Request::Join {
            nickname: nickname.to_string(),
            room: Some(room.to_string()),
        }
        .to_line();
        ws::text_frame(out, &[line.strip_suffix(b"\n").unwrap_or(&line)]);
    }

    /// Appends one message carrying `id` (the text [`MsgId::write_to`] wrote) and `padding`
    /// (the `content`).
    pub(crate) fn encode(&self, out: &mut Vec<u8>, msg: Outgoing<'_>, id: &[u8], padding: &[u8]) {
        let frame: &[&[u8]] = match (self, msg) {
            (Codec::Chat | Codec::ChatWs { .. }, Outgoing::Room(_)) => &[
                br#"{"type":"message","content":""#,
                padding,
                br#"","id":""#,
                id,
                b"\"}",
            ],
            (Codec::Chat | Codec::ChatWs { .. }, Outgoing::Private(to)) => &[
                br#"{"type":"private","to":""#,
                to.as_bytes(),
                br#"","content":""#,
                padding,
                br#"","id":""#,
                id,
                b"\"}",
            ],
            (Codec::Chat | Codec::ChatWs { .. }, Outgoing::Ping) => {
                &[br#"{"type":"ping","id":""#, id, b"\"}"]
            }
            // The config refuses `private` with Redis; a channel named after the user would be
            // the nearest analogue.
            (Codec::Redis { .. }, Outgoing::Room(channel) | Outgoing::Private(channel)) => {
                return resp::publish(out, channel.as_bytes(), id, padding);
            }
            (Codec::Redis { .. }, Outgoing::Ping) => return resp::command(out, &[b"PING", id]),
        };
        if let Codec::ChatWs { .. } = self {
            ws::text_frame(out, frame);
        } else {
            push_all(out, frame);
            out.push(b'\n');
        }
    }

    /// Decodes every complete frame at the front of `buf` into `out` and returns how many bytes
    /// they took; the rest is an incomplete frame to keep for the next read. An error means the
    /// stream cannot be framed any more (a frame beyond [`MAX_FRAME`], or broken RESP): end
    /// that connection.
    pub(crate) fn decode(&self, buf: &[u8], out: &mut Vec<Incoming>) -> Result<usize, String> {
        let mut used = 0;
        match self {
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
            Codec::ChatWs { .. } => {
                used = ws::decode(buf, MAX_FRAME, |message| {
                    out.push(match message {
                        ws::Message::Text(text) => decode_chat_line(text),
                        ws::Message::Upgraded => Incoming::Upgraded,
                        // The server's `error` frame before it said why.
                        ws::Message::Close(_) | ws::Message::Other => Incoming::Other,
                    });
                })?;
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

    /// Over WebSocket: the upgrade, then one masked text frame per request, each a valid
    /// request without its newline; the server's frames decode to the same events as lines.
    #[test]
    fn chat_over_websocket() {
        let codec = Codec::ChatWs { path: "/ws".into() };
        let mut out = Vec::new();
        codec.handshake(&mut out, "ann", "hall");
        codec.join_after_upgrade(&mut out, "ann", "hall");
        codec.encode(&mut out, Outgoing::Private("bob"), b"1:2:3:4", b"xx");
        let head_end = memchr::memmem::find(&out, b"\r\n\r\n").expect("a request") + 4;
        assert!(out.starts_with(b"GET /ws HTTP/1.1\r\n"));
        let mut frames = &out[head_end..];
        let mut requests = Vec::new();
        while !frames.is_empty() {
            assert_eq!(frames[0], 0x81, "one text frame, final");
            let len = usize::from(frames[1] & 0x7F);
            assert!(frames[1] & 0x80 != 0 && len < 126);
            let key = &frames[2..6];
            let payload: Vec<u8> = frames[6..6 + len]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[i % 4])
                .collect();
            assert!(!payload.ends_with(b"\n"));
            requests.push(chat_core::parse_request(&payload).expect("a valid request"));
            frames = &frames[6 + len..];
        }
        assert!(
            matches!(&requests[0], chat_core::Request::Join { nickname, .. } if nickname == "ann")
        );
        assert!(matches!(&requests[1], chat_core::Request::Private { to, .. } if to == "bob"));

        let welcome = br#"{"type":"welcome","nickname":"ann","room":"hall","users":["ann"]}"#;
        let mut input = b"HTTP/1.1 101 Switching Protocols\r\n\r\n".to_vec();
        input.extend_from_slice(&[0x81, welcome.len() as u8]);
        input.extend_from_slice(welcome);
        input.extend_from_slice(&[0x88, 2, 0x03, 0xE8]);
        let (events, left) = decode_all(codec, &input);
        assert_eq!(
            events,
            vec![Incoming::Upgraded, Incoming::Ready, Incoming::Other]
        );
        assert_eq!(left, 0);
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

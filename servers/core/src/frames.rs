//! Events as frames: one line of JSON plus `\n`, encoded once and shared by every recipient.
//!
//! [`encode`] turns any [`Event`] into a frame. The three events a busy server sends most, one
//! per request (`broadcast`, `private`, `pong`), also have an encoder of their own that takes
//! the request's borrowed strings as they are ([`broadcast_frame`], [`private_frame`],
//! [`pong_frame`]): building an `Event` first would copy the sender's nickname, the room and the
//! content into `String`s only to serialize them and drop them. They produce exactly the bytes
//! `encode` produces for the same event (the tests below hold them to it).

use crate::outbox::Frame;
use crate::protocol::{ErrorCode, Event, IdRef};
use bytes::Bytes;
use serde::Serialize;

/// Encodes an event as one protocol line.
pub fn encode(event: &Event) -> Frame {
    let mut line = serde_json::to_vec(event).expect("an Event always serializes");
    line.push(b'\n');
    Bytes::from(line)
}

/// The `broadcast` event, from borrowed parts: what every member of the room receives.
pub fn broadcast_frame(
    from: &str,
    room: &str,
    content: &str,
    ts: u64,
    id: Option<&IdRef<'_>>,
) -> Frame {
    let frame = Broadcast {
        from,
        room,
        content,
        ts,
        id,
    };
    line_of(&frame, from.len() + room.len() + content.len() + id_len(id))
}

/// The `private` event, from borrowed parts: what the recipient and the sender receive.
pub fn private_frame(
    from: &str,
    to: &str,
    content: &str,
    ts: u64,
    id: Option<&IdRef<'_>>,
) -> Frame {
    let frame = Private {
        from,
        to,
        content,
        ts,
        id,
    };
    line_of(&frame, from.len() + to.len() + content.len() + id_len(id))
}

/// The `pong` event, echoing the `id` of the `ping`.
pub fn pong_frame(id: Option<&IdRef<'_>>) -> Frame {
    match id {
        // The same bytes every time: no allocation at all.
        None => Bytes::from_static(b"{\"type\":\"pong\"}\n"),
        Some(id) => line_of(&Pong { id: Some(id) }, id_len(Some(id))),
    }
}

/// Encodes an `error` event. Servers use it for the refusals that belong to their I/O model
/// (a select server past FD_SETSIZE, a full pool queue).
pub fn error_frame(code: ErrorCode, message: &str) -> Frame {
    encode(&Event::Error {
        code,
        message: message.to_string(),
    })
}

/// `rate_limited`, worded once for every server (the cluster answers it too).
pub fn rate_limited_frame() -> Frame {
    error_frame(
        ErrorCode::RateLimited,
        "too many requests; this one was dropped",
    )
}

/// `bad_nickname` / `bad_room`: `what` is "nickname" or "room name".
pub fn bad_name_frame(code: ErrorCode, what: &str) -> Frame {
    error_frame(
        code,
        &format!("a {what} is 1 to 32 characters, without spaces or control characters"),
    )
}

/// `nickname_taken`, quoting the nickname (clipped).
pub fn taken_frame(nickname: &str) -> Frame {
    error_frame(
        ErrorCode::NicknameTaken,
        &format!("the nickname `{}` is taken", clip(nickname)),
    )
}

/// Client text echoed in an error message is cut short, so the error stays small.
pub fn clip(s: &str) -> &str {
    match s.char_indices().nth(32) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

// ---- the borrowed events: the fields, in the order `Event` writes them ---------------------

/// `{"type":"broadcast",...}`: serde writes the tag first, then the fields in order, as it does
/// for `Event::Broadcast`.
#[derive(Serialize)]
#[serde(tag = "type", rename = "broadcast")]
struct Broadcast<'a> {
    from: &'a str,
    room: &'a str,
    content: &'a str,
    ts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a IdRef<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename = "private")]
struct Private<'a> {
    from: &'a str,
    to: &'a str,
    content: &'a str,
    ts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a IdRef<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename = "pong")]
struct Pong<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a IdRef<'a>>,
}

/// The bytes an id takes at most on the wire (a string's quotes, or 20 digits and a sign).
fn id_len(id: Option<&IdRef<'_>>) -> usize {
    match id {
        None => 0,
        Some(IdRef::Int(_)) => 20,
        Some(IdRef::Str(s)) => s.len() + 2,
    }
}

/// Serializes `frame` plus `\n` into one buffer sized up front: `strings` bytes of text plus
/// room for the keys, the quotes and the timestamp, so the line is written without growing the
/// buffer (unless escapes make it longer).
fn line_of(frame: &impl Serialize, strings: usize) -> Frame {
    const KEYS_AND_PUNCTUATION: usize = 96;
    let mut line = Vec::with_capacity(strings + KEYS_AND_PUNCTUATION);
    serde_json::to_writer(&mut line, frame).expect("a frame always serializes");
    line.push(b'\n');
    Bytes::from(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Id;

    fn ids() -> [Option<Id>; 4] {
        [
            None,
            Some(Id::Int(i64::MIN)),
            Some(Id::Str("alice:12".into())),
            Some(Id::Str("quote \" and \u{1F980}".into())),
        ]
    }

    /// The borrowed encoders write byte for byte what `encode` writes for the same event,
    /// escapes and all.
    #[test]
    fn borrowed_encoders_match_encode() {
        let texts = [
            "hi",
            "caf\u{e9} \u{1F980}",
            "tab\tquote\"back\\slash\u{1}",
            "",
        ];
        for id in ids() {
            let id_ref = id.clone().map(IdRef::from);
            for text in texts {
                let broadcast = Event::Broadcast {
                    from: "ålice".into(),
                    room: "r\u{4e2d}".into(),
                    content: text.into(),
                    ts: 1_795_377_116_615,
                    id: id.clone(),
                };
                let expected = encode(&broadcast);
                let got = broadcast_frame(
                    "ålice",
                    "r\u{4e2d}",
                    text,
                    1_795_377_116_615,
                    id_ref.as_ref(),
                );
                assert_eq!(got, expected);
                let private = Event::Private {
                    from: "a".into(),
                    to: text.into(),
                    content: "x".into(),
                    ts: 0,
                    id: id.clone(),
                };
                let got = private_frame("a", text, "x", 0, id_ref.as_ref());
                assert_eq!(got, encode(&private));
            }
            let pong = encode(&Event::Pong { id: id.clone() });
            assert_eq!(pong_frame(id_ref.as_ref()), pong);
        }
    }
}

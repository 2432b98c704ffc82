//! From one line to one request: the rules of `PROTOCOL.md` (sections 1, 2 and 4) on what a
//! well-formed request is, and which error a malformed one gets.
//!
//! The line is read once, by `serde_json`'s parser, into a handful of slots, one per field the
//! protocol knows (`type`, `nickname`, `room`, `content`, `to`, `id`); a string value points into
//! the line. Nothing else is kept: no tree of JSON values, no `String` for a field that is only
//! compared (`type`), none for the fields the request type does not use. Then the checks run in
//! the order of `PROTOCOL.md`.
//!
//! Why not `serde_json::Value` (simpler to read): building it allocates a map, a key and a value
//! for every field of every line, and all of it is thrown away a moment later. That is the
//! largest share of a server's own work per request.
//!
//! Why not a derived `Deserialize` for [`Request`]: serde would report its own errors ("invalid
//! type: integer, expected a string"), in its own order. Here every value is *accepted* by the
//! parser, whatever its type, and the types are judged afterwards, so the client gets the
//! protocol's error for the first rule its line breaks, worded the same for every server.
//!
//! What makes a line JSON at all is decided exactly as `serde_json::Value` would: values of
//! unknown fields are parsed, not skipped (`deserialize_any`, never `deserialize_ignored_any`,
//! which would let a number out of range or a lone surrogate through), duplicate keys keep the
//! last value, and nesting is limited to serde_json's 128 levels.

use super::{ErrorCode, IdRef, InboundRef, Rejection, RequestRef, MAX_ID_BYTES};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// Parses one line (without its `\n`, and without a final `\r`) into a request whose strings
/// borrow from `line` (see [`RequestRef`]; [`parse_request`](super::parse_request) gives the
/// same request with strings of its own).
///
/// Order of checks, as `PROTOCOL.md` settles it: UTF-8, then JSON, then "is an object", then `type`
/// (missing or not a string: `bad_request`; unknown: `unknown_type`), then that type's fields.
pub fn parse_request_ref(line: &[u8]) -> InboundRef<'_> {
    let text = std::str::from_utf8(line)
        .map_err(|e| Rejection::bad_request(format!("line is not valid UTF-8 ({e})")))?;
    let top: Top<'_> = serde_json::from_str(text)
        .map_err(|e| Rejection::bad_request(format!("line is not valid JSON ({e})")))?;
    let Top::Object(fields) = top else {
        return Err(Rejection::bad_request("a request must be a JSON object"));
    };
    let Fields {
        kind,
        nickname,
        room,
        content,
        to,
        id,
    } = fields;
    let kind = match kind {
        Some(Raw::Str(kind)) => kind,
        Some(_) => return Err(Rejection::bad_request("field `type` must be a string")),
        None => return Err(Rejection::bad_request("missing field `type`")),
    };
    // Each arm checks its fields in the order they are written: the first broken rule wins.
    let request = match &*kind {
        "join" => RequestRef::Join {
            nickname: string(nickname, "nickname")?,
            room: optional_string(room, "room")?,
        },
        "nick" => RequestRef::Nick {
            nickname: string(nickname, "nickname")?,
        },
        "message" => RequestRef::Message {
            content: non_empty_content(content)?,
            id: optional_id(id)?,
        },
        "private" => RequestRef::Private {
            to: string(to, "to")?,
            content: non_empty_content(content)?,
            id: optional_id(id)?,
        },
        "join_room" => RequestRef::JoinRoom {
            room: string(room, "room")?,
        },
        "list_users" => RequestRef::ListUsers {
            room: optional_string(room, "room")?,
        },
        "list_rooms" => RequestRef::ListRooms,
        "ping" => RequestRef::Ping {
            id: optional_id(id)?,
        },
        "quit" => RequestRef::Quit,
        other => {
            return Err(Rejection::new(
                ErrorCode::UnknownType,
                format!("unknown request type `{}`", truncate(other, 64)),
            ))
        }
    };
    Ok(request)
}

// ---- the checks: the `bad_request` messages of PROTOCOL.md ---------------------------------

fn string<'a>(value: Option<Raw<'a>>, name: &str) -> Result<Cow<'a, str>, Rejection> {
    match value {
        Some(Raw::Str(s)) => Ok(s),
        Some(_) => Err(Rejection::bad_request(format!(
            "field `{name}` must be a string"
        ))),
        None => Err(Rejection::bad_request(format!("missing field `{name}`"))),
    }
}

/// An optional field is either absent or of the right type: `null` is a wrong type.
fn optional_string<'a>(
    value: Option<Raw<'a>>,
    name: &str,
) -> Result<Option<Cow<'a, str>>, Rejection> {
    match value {
        None => Ok(None),
        value => string(value, name).map(Some),
    }
}

fn non_empty_content(value: Option<Raw<'_>>) -> Result<Cow<'_, str>, Rejection> {
    let content = string(value, "content")?;
    if content.is_empty() {
        return Err(Rejection::bad_request("field `content` must not be empty"));
    }
    Ok(content)
}

fn optional_id(value: Option<Raw<'_>>) -> Result<Option<IdRef<'_>>, Rejection> {
    match value {
        None => Ok(None),
        Some(Raw::Str(s)) if s.len() <= MAX_ID_BYTES => Ok(Some(IdRef::Str(s))),
        Some(Raw::Int(n)) => Ok(Some(IdRef::Int(n))),
        Some(_) => Err(Rejection::bad_request(
            "field `id` must be a string of at most 64 bytes or a 64-bit integer",
        )),
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary (for echoing client text safely).
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

// ---- reading the line: what serde_json's parser hands us ------------------------------------

/// The whole line: an object (its fields), or any other JSON value.
enum Top<'a> {
    Object(Fields<'a>),
    NotObject,
}

/// The fields of a request object that some request type reads; the others are parsed and
/// dropped. A repeated key keeps its last value, as in a JSON map.
#[derive(Default)]
struct Fields<'a> {
    kind: Option<Raw<'a>>,
    nickname: Option<Raw<'a>>,
    room: Option<Raw<'a>>,
    content: Option<Raw<'a>>,
    to: Option<Raw<'a>>,
    id: Option<Raw<'a>>,
}

/// One field's value, only as detailed as the checks need.
enum Raw<'a> {
    /// A string: borrowed from the line, or decoded when it had escapes.
    Str(Cow<'a, str>),
    /// An integer that fits in 64 signed bits (what an `id` may be).
    Int(i64),
    /// Anything else: `null`, a boolean, a fraction, a bigger integer, an array, an object.
    Other,
}

/// A field name, recognised without keeping it.
enum Name {
    Type,
    Nickname,
    Room,
    Content,
    To,
    Id,
    Unknown,
}

/// A JSON value parsed in full and dropped.
struct Skip;

impl<'de> Deserialize<'de> for Top<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TopVisitor)
    }
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
        let mut fields = Fields::default();
        while let Some(name) = map.next_key::<Name>()? {
            let slot = match name {
                Name::Type => &mut fields.kind,
                Name::Nickname => &mut fields.nickname,
                Name::Room => &mut fields.room,
                Name::Content => &mut fields.content,
                Name::To => &mut fields.to,
                Name::Id => &mut fields.id,
                Name::Unknown => {
                    map.next_value::<Skip>()?;
                    continue;
                }
            };
            *slot = Some(map.next_value::<Raw>()?);
        }
        Ok(Top::Object(fields))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Top<'de>, A::Error> {
        skip_seq(seq)?;
        Ok(Top::NotObject)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Top<'de>, E> {
        Ok(Top::NotObject)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Top<'de>, E> {
        Ok(Top::NotObject)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Top<'de>, E> {
        Ok(Top::NotObject)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Top<'de>, E> {
        Ok(Top::NotObject)
    }

    fn visit_str<E>(self, _: &str) -> Result<Top<'de>, E> {
        Ok(Top::NotObject)
    }

    fn visit_unit<E>(self) -> Result<Top<'de>, E> {
        Ok(Top::NotObject)
    }
}

impl<'de> Deserialize<'de> for Raw<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    /// No escape in it: the value is these very bytes of the line.
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Raw<'de>, E> {
        Ok(Raw::Str(Cow::Borrowed(v)))
    }

    /// Escapes decoded into a scratch buffer: the value needs a copy of its own.
    fn visit_str<E>(self, v: &str) -> Result<Raw<'de>, E> {
        Ok(Raw::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Raw<'de>, E> {
        Ok(Raw::Str(Cow::Owned(v)))
    }

    /// serde_json hands non-negative integers here: above `i64::MAX` is not an `id`.
    fn visit_u64<E>(self, v: u64) -> Result<Raw<'de>, E> {
        Ok(i64::try_from(v).map_or(Raw::Other, Raw::Int))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Raw<'de>, E> {
        Ok(Raw::Int(v))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Raw<'de>, E> {
        Ok(Raw::Other)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Raw<'de>, E> {
        Ok(Raw::Other)
    }

    fn visit_unit<E>(self) -> Result<Raw<'de>, E> {
        Ok(Raw::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Raw<'de>, A::Error> {
        skip_seq(seq)?;
        Ok(Raw::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Raw<'de>, A::Error> {
        skip_map(map)?;
        Ok(Raw::Other)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(NameVisitor)
    }
}

struct NameVisitor;

impl Visitor<'_> for NameVisitor {
    type Value = Name;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    /// Called with the decoded key (escapes resolved: `"\u0074ype"` is `type`).
    fn visit_str<E>(self, v: &str) -> Result<Name, E> {
        Ok(match v {
            "type" => Name::Type,
            "nickname" => Name::Nickname,
            "room" => Name::Room,
            "content" => Name::Content,
            "to" => Name::To,
            "id" => Name::Id,
            _ => Name::Unknown,
        })
    }
}

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // `deserialize_any`, not `deserialize_ignored_any`: see the module docs.
        deserializer.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Skip, A::Error> {
        skip_seq(seq)?;
        Ok(Skip)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Skip, A::Error> {
        skip_map(map)?;
        Ok(Skip)
    }
}

fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<Skip>()?.is_some() {}
    Ok(())
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<Skip, Skip>()?.is_some() {}
    Ok(())
}

//! The request side of the protocol, as a judge: what a line must parse to.
//!
//! [`judge_request`] classifies a line the way the spec's "order of checks" says, on plain
//! `serde_json` values: not UTF-8, not JSON, not an object, no string `type` → `bad_request`;
//! an unknown `type` → `unknown_type` (whatever else is wrong with the object); then that
//! type's fields (a required field missing or mistyped, an optional one present with the wrong
//! type, `null` included, an empty `content`, an `id` that is not a string of at most 64 bytes
//! or a signed 64-bit integer → `bad_request`). Unknown fields are ignored.

use chat_core::{ErrorCode, Id, Request};
use serde_json::{Map, Value};

/// The longest name, in Unicode scalar values.
pub const MAX_NAME_CHARS: usize = 32;
/// The longest string `id`, in bytes.
pub const MAX_ID_BYTES: usize = 64;

/// The naming rules: 1 to 32 Unicode scalar values, none of them White_Space or a control
/// character.
pub fn is_valid_name(name: &str) -> bool {
    let count = name.chars().count();
    (1..=MAX_NAME_CHARS).contains(&count)
        && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Nicknames are unique ignoring case: their Unicode lowercase forms are compared.
pub fn fold(nickname: &str) -> String {
    nickname.to_lowercase()
}

/// What a line must parse to: the request, or the code of its rejection.
pub fn judge_request(line: &[u8]) -> Result<Request, ErrorCode> {
    let bad = ErrorCode::BadRequest;
    let text = std::str::from_utf8(line).map_err(|_| bad)?;
    let value: Value = serde_json::from_str(text).map_err(|_| bad)?;
    let object = value.as_object().ok_or(bad)?;
    let kind = object.get("type").and_then(Value::as_str).ok_or(bad)?;
    let f = Fields(object);
    match kind {
        "join" => Ok(Request::Join {
            nickname: f.required("nickname")?,
            room: f.optional("room")?,
        }),
        "nick" => Ok(Request::Nick {
            nickname: f.required("nickname")?,
        }),
        "message" => Ok(Request::Message {
            content: f.content()?,
            id: f.id()?,
        }),
        "private" => Ok(Request::Private {
            to: f.required("to")?,
            content: f.content()?,
            id: f.id()?,
        }),
        "join_room" => Ok(Request::JoinRoom {
            room: f.required("room")?,
        }),
        "list_users" => Ok(Request::ListUsers {
            room: f.optional("room")?,
        }),
        "list_rooms" => Ok(Request::ListRooms),
        "ping" => Ok(Request::Ping { id: f.id()? }),
        "quit" => Ok(Request::Quit),
        _ => Err(ErrorCode::UnknownType),
    }
}

/// A request's fields, judged one by one.
struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    fn required(&self, name: &str) -> Result<String, ErrorCode> {
        match self.0.get(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(ErrorCode::BadRequest),
        }
    }

    fn optional(&self, name: &str) -> Result<Option<String>, ErrorCode> {
        match self.0.get(name) {
            None => Ok(None),
            Some(_) => self.required(name).map(Some),
        }
    }

    fn content(&self) -> Result<String, ErrorCode> {
        match self.required("content")? {
            content if content.is_empty() => Err(ErrorCode::BadRequest),
            content => Ok(content),
        }
    }

    fn id(&self) -> Result<Option<Id>, ErrorCode> {
        match self.0.get("id") {
            None => Ok(None),
            Some(Value::String(s)) if s.len() <= MAX_ID_BYTES => Ok(Some(Id::Str(s.clone()))),
            // `as_i64` is `None` for floats and for integers beyond the signed 64-bit range.
            Some(Value::Number(n)) => n
                .as_i64()
                .map(|n| Some(Id::Int(n)))
                .ok_or(ErrorCode::BadRequest),
            Some(_) => Err(ErrorCode::BadRequest),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec's order of checks on a few lines that break several rules at once.
    #[test]
    fn order_of_checks() {
        let judge = |line: &str| judge_request(line.as_bytes());
        assert_eq!(judge("[1]"), Err(ErrorCode::BadRequest));
        assert_eq!(
            judge(r#"{"type":"nope","id":null}"#),
            Err(ErrorCode::UnknownType)
        );
        assert_eq!(
            judge(r#"{"type":"ping","id":1.5}"#),
            Err(ErrorCode::BadRequest)
        );
        assert_eq!(
            judge(r#"{"type":"join","nickname":"a","room":null}"#),
            Err(ErrorCode::BadRequest)
        );
        assert_eq!(
            judge(r#"{"type":"join","nickname":"a b","id":null}"#),
            Ok(Request::Join {
                nickname: "a b".into(),
                room: None
            })
        );
        assert!(is_valid_name("李雷") && !is_valid_name("a\u{3000}b") && !is_valid_name(""));
    }
}

//! The three extensions' requests, read from a line the way `chat-core`'s `parse_request` reads
//! the others: a missing or mistyped field is a `bad_request` with a sentence saying which.
//!
//! | request | fields | see |
//! |---|---|---|
//! | `join`, `nick` | their usual fields, plus an optional `password` | exercise 12 (login) |
//! | `history` | optional `limit` (an integer, 0 or more), optional `id` | exercise 13 |
//! | `file` | `to`, `name`, `data` (base64), optional `id` | exercise 14 |
//!
//! The frames are specified in `lessons/exercises/12-login/README.md`, `13-history/README.md` and
//! `14-file-transfer/README.md`.

use base64::Engine;
use serde_json::{Map, Value};

/// The longest `password` accepted, in bytes.
pub const MAX_PASSWORD_BYTES: usize = 128;

/// The longest file `name`, in bytes.
pub const MAX_FILE_NAME_BYTES: usize = 255;

/// The longest string `id`, in bytes (PROTOCOL.md, section 4).
const MAX_ID_BYTES: usize = 64;

/// What an extension makes of one line.
#[derive(Debug, Clone, PartialEq)]
pub enum Extension {
    /// `join` or `nick`: the password that comes with it (`None`: no `password` field).
    Claim { password: Option<String> },
    /// `history`: how many messages at most (`None`: all that are kept), and the `id` to echo.
    History {
        limit: Option<usize>,
        id: Option<Value>,
    },
    /// `file`: a file for one user.
    File(FileRequest),
    /// An extension request with a missing or mistyped field: answer `bad_request` with this.
    Malformed(String),
    /// Not an extension's business: the Hub reads it (and rejects it if it must).
    Plain,
}

/// A `file` request whose fields are all well formed.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRequest {
    pub to: String,
    pub name: String,
    /// The content, base64 as sent (it is passed on as it came, never decoded for good).
    pub data: String,
    pub id: Option<Value>,
}

/// Reads `line` (already checked to be a complete frame) as an extension request.
pub fn parse(line: &[u8]) -> Extension {
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(line) else {
        return Extension::Plain; // not a JSON object: the Hub says `bad_request`
    };
    let outcome = match fields.get("type").and_then(Value::as_str) {
        Some("join" | "nick") => password(&fields).map(|password| Extension::Claim { password }),
        Some("history") => history(&fields),
        Some("file") => file(&fields).map(Extension::File),
        _ => Ok(Extension::Plain),
    };
    outcome.unwrap_or_else(Extension::Malformed)
}

fn password(fields: &Map<String, Value>) -> Result<Option<String>, String> {
    match fields.get("password") {
        None => Ok(None),
        Some(Value::String(p)) if !p.is_empty() && p.len() <= MAX_PASSWORD_BYTES => {
            Ok(Some(p.clone()))
        }
        Some(_) => Err(format!(
            "field `password` must be a string of 1 to {MAX_PASSWORD_BYTES} bytes"
        )),
    }
}

fn history(fields: &Map<String, Value>) -> Result<Extension, String> {
    let limit = match fields.get("limit") {
        None => None,
        Some(limit) => match limit.as_u64().and_then(|n| usize::try_from(n).ok()) {
            Some(n) => Some(n),
            None => return Err("field `limit` must be an integer, 0 or more".into()),
        },
    };
    Ok(Extension::History {
        limit,
        id: id(fields)?,
    })
}

fn file(fields: &Map<String, Value>) -> Result<FileRequest, String> {
    let string = |name: &str| match fields.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("field `{name}` must be a string")),
        None => Err(format!("missing field `{name}`")),
    };
    let (to, name, data) = (string("to")?, string("name")?, string("data")?);
    let bad_name = name.is_empty()
        || name.len() > MAX_FILE_NAME_BYTES
        || name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control());
    if bad_name {
        return Err(format!(
            "field `name` must be a file name of 1 to {MAX_FILE_NAME_BYTES} bytes, without `/`, \
             `\\` or control characters"
        ));
    }
    if base64::engine::general_purpose::STANDARD
        .decode(data.as_bytes())
        .is_err()
    {
        return Err("field `data` must be standard base64 (RFC 4648, with padding)".into());
    }
    Ok(FileRequest {
        to,
        name,
        data,
        id: id(fields)?,
    })
}

/// The optional `id`, under the rules of PROTOCOL.md (a string of at most 64 bytes, or an
/// integer that fits in 64 signed bits).
fn id(fields: &Map<String, Value>) -> Result<Option<Value>, String> {
    match fields.get("id") {
        None => Ok(None),
        Some(Value::String(s)) if s.len() <= MAX_ID_BYTES => Ok(Some(Value::from(s.clone()))),
        Some(Value::Number(n)) if n.is_i64() => Ok(Some(Value::Number(n.clone()))),
        Some(_) => Err(format!(
            "field `id` must be a string of at most {MAX_ID_BYTES} bytes or a 64-bit integer"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each request is read with its fields; the ones that are not an extension's are left to
    /// the Hub.
    #[test]
    fn reads_the_extension_requests() {
        assert_eq!(
            parse(br#"{"type":"join","nickname":"a","password":"pw"}"#),
            Extension::Claim {
                password: Some("pw".into())
            }
        );
        assert_eq!(
            parse(br#"{"type":"nick","nickname":"a"}"#),
            Extension::Claim { password: None }
        );
        assert_eq!(
            parse(br#"{"type":"history","limit":3,"id":"h"}"#),
            Extension::History {
                limit: Some(3),
                id: Some(Value::from("h"))
            }
        );
        let file = parse(br#"{"type":"file","to":"b","name":"a.txt","data":"aGk="}"#);
        assert!(matches!(file, Extension::File(f) if f.to == "b" && f.data == "aGk="));
        assert_eq!(
            parse(br#"{"type":"message","content":"x"}"#),
            Extension::Plain
        );
        assert_eq!(parse(b"not json"), Extension::Plain);
    }

    /// Bad fields are a sentence for `bad_request`, naming the field.
    #[test]
    fn names_the_bad_field() {
        let bad = |line: &[u8], field: &str| match parse(line) {
            Extension::Malformed(why) => assert!(why.contains(field), "{why}"),
            other => panic!("{other:?} for {}", String::from_utf8_lossy(line)),
        };
        bad(
            br#"{"type":"join","nickname":"a","password":42}"#,
            "password",
        );
        bad(
            br#"{"type":"join","nickname":"a","password":""}"#,
            "password",
        );
        bad(br#"{"type":"history","limit":-1}"#, "limit");
        bad(br#"{"type":"history","id":null}"#, "id");
        bad(
            br#"{"type":"file","to":"b","name":"x","data":"a!"}"#,
            "data",
        );
        bad(
            br#"{"type":"file","to":"b","name":"../x","data":""}"#,
            "name",
        );
        bad(br#"{"type":"file","name":"x","data":""}"#, "to");
    }
}

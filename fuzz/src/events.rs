//! The event side of the protocol, as a judge: is this frame something a server may send?
//!
//! [`check_frame`] takes the raw bytes of one frame and checks them against the spec's table of
//! events: one line of UTF-8 JSON ending in `\n`, an object whose `type` is a known event, every
//! field that type requires with the right JSON type and nothing else (chat-core sends no
//! extras), names that follow the naming rules, member lists sorted without duplicates, `id`
//! absent rather than `null`, and `error` codes from the spec's list.

use crate::spec::{is_valid_name, MAX_ID_BYTES};
use serde_json::{Map, Value};

/// The spec's error codes, as they appear on the wire.
pub const ERROR_CODES: [&str; 13] = [
    "bad_request",
    "unknown_type",
    "not_joined",
    "already_joined",
    "bad_nickname",
    "nickname_taken",
    "bad_room",
    "no_such_user",
    "rate_limited",
    "line_too_long",
    "server_full",
    "idle_timeout",
    "shutting_down",
];

/// A `ts` before this (2020-09-13) is not "milliseconds since the Unix epoch" of a real clock.
const TS_MIN_MS: u64 = 1_600_000_000_000;

/// Checks one frame; returns it parsed.
pub fn check_frame(frame: &[u8]) -> Result<Value, String> {
    let line = frame
        .strip_suffix(b"\n")
        .ok_or("a frame must end with a newline")?;
    if line.contains(&b'\n') {
        return Err("a frame must be one line".into());
    }
    let text = std::str::from_utf8(line).map_err(|e| format!("not UTF-8: {e}"))?;
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let object = value.as_object().ok_or("not a JSON object")?;
    let kind = object
        .get("type")
        .and_then(Value::as_str)
        .ok_or("no string `type`")?;
    let f = Fields { object, kind };
    match kind {
        "welcome" | "room" => {
            let keys: &[&str] = if kind == "welcome" {
                &["nickname", "room", "users"]
            } else {
                &["room", "users"]
            };
            f.only(keys)?;
            f.name("room")?;
            let users = f.names("users")?;
            if kind == "welcome" {
                let nickname = f.name("nickname")?;
                if !users.contains(&nickname) {
                    return Err(format!("`welcome` users lack the joiner: {text}"));
                }
            }
        }
        "joined" | "left" => {
            f.only(&["nickname", "room"])?;
            f.name("nickname")?;
            f.name("room")?;
        }
        "renamed" => {
            f.only(&["from", "to", "room"])?;
            f.name("from")?;
            f.name("to")?;
            f.name("room")?;
        }
        "broadcast" | "private" => {
            // A message, to everyone in a `room` or to one member (`to`).
            let to = if kind == "broadcast" { "room" } else { "to" };
            f.only(&["from", to, "content", "ts", "id"])?;
            f.name("from")?;
            f.name(to)?;
            f.content()?;
            f.ts()?;
            f.id()?;
        }
        "users" => {
            f.only(&["room", "users"])?;
            f.name("room")?;
            f.names("users")?;
        }
        "rooms" => {
            f.only(&["rooms"])?;
            f.rooms()?;
        }
        "pong" => {
            f.only(&["id"])?;
            f.id()?;
        }
        "bye" => f.only(&[])?,
        "error" => {
            f.only(&["code", "message"])?;
            let code = f.string("code")?;
            if !ERROR_CODES.contains(&code) {
                return Err(format!("unknown error code `{code}`"));
            }
            f.string("message")?;
        }
        other => return Err(format!("unknown event type `{other}`")),
    }
    Ok(value)
}

/// One event's fields, checked by name.
struct Fields<'a> {
    object: &'a Map<String, Value>,
    kind: &'a str,
}

impl<'a> Fields<'a> {
    /// No keys beyond `type` and `keys`.
    fn only(&self, keys: &[&str]) -> Result<(), String> {
        match self
            .object
            .keys()
            .find(|k| *k != "type" && !keys.contains(&k.as_str()))
        {
            Some(extra) => Err(format!("`{}` has an unexpected key `{extra}`", self.kind)),
            None => Ok(()),
        }
    }

    fn string(&self, key: &str) -> Result<&'a str, String> {
        self.object
            .get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("`{}` needs a string `{key}`", self.kind))
    }

    fn name(&self, key: &str) -> Result<&'a str, String> {
        let name = self.string(key)?;
        if !is_valid_name(name) {
            return Err(format!(
                "`{}` has an invalid name in `{key}`: {name:?}",
                self.kind
            ));
        }
        Ok(name)
    }

    /// A list of valid names, strictly increasing (sorted, no duplicates).
    fn names(&self, key: &str) -> Result<Vec<&'a str>, String> {
        let list = self
            .object
            .get(key)
            .and_then(Value::as_array)
            .ok_or_else(|| format!("`{}` needs an array `{key}`", self.kind))?;
        let mut names = Vec::with_capacity(list.len());
        for item in list {
            match item.as_str() {
                Some(name) if is_valid_name(name) => names.push(name),
                _ => return Err(format!("`{}`.{key} holds {item}, not a name", self.kind)),
            }
        }
        if names.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!(
                "`{}`.{key} is not sorted and unique: {names:?}",
                self.kind
            ));
        }
        Ok(names)
    }

    fn content(&self) -> Result<(), String> {
        match self.string("content")? {
            "" => Err(format!("`{}` has an empty `content`", self.kind)),
            _ => Ok(()),
        }
    }

    fn ts(&self) -> Result<(), String> {
        match self.object.get("ts").and_then(Value::as_u64) {
            Some(ts) if ts >= TS_MIN_MS => Ok(()),
            _ => Err(format!(
                "`{}` needs `ts`, milliseconds since the Unix epoch",
                self.kind
            )),
        }
    }

    /// Absent, a string of at most 64 bytes, or a signed 64-bit integer (never `null`).
    fn id(&self) -> Result<(), String> {
        match self.object.get("id") {
            None => Ok(()),
            Some(Value::String(s)) if s.len() <= MAX_ID_BYTES => Ok(()),
            Some(Value::Number(n)) if n.is_i64() => Ok(()),
            Some(other) => Err(format!("`{}` has an invalid `id`: {other}", self.kind)),
        }
    }

    /// `rooms`: `{"name", "users"}` objects sorted by name, each with at least one member
    /// (a room with no members does not exist).
    fn rooms(&self) -> Result<(), String> {
        let list = self
            .object
            .get("rooms")
            .and_then(Value::as_array)
            .ok_or("`rooms` needs an array `rooms`")?;
        let mut previous: Option<&str> = None;
        for item in list {
            let entry = Fields {
                object: item.as_object().ok_or("a `rooms` entry is not an object")?,
                kind: "rooms entry",
            };
            entry.only(&["name", "users"])?;
            let name = entry.name("name")?;
            if entry.object.contains_key("type") {
                return Err("a `rooms` entry has a `type`".into());
            }
            match entry.object.get("users").and_then(Value::as_u64) {
                Some(n) if n >= 1 => {}
                _ => return Err(format!("room {name:?} needs a member count of at least 1")),
            }
            if previous.is_some_and(|p| p >= name) {
                return Err(format!("`rooms` is not sorted by name at {name:?}"));
            }
            previous = Some(name);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_events_and_rejects_near_misses() {
        let ok = |s: &str| check_frame(format!("{s}\n").as_bytes());
        assert!(ok(r#"{"type":"welcome","nickname":"b","room":"r","users":["a","b"]}"#).is_ok());
        assert!(ok(r#"{"type":"welcome","nickname":"c","room":"r","users":["a","b"]}"#).is_err());
        assert!(ok(r#"{"type":"users","room":"r","users":["b","a"]}"#).is_err());
        assert!(ok(r#"{"type":"pong","id":null}"#).is_err());
        assert!(ok(r#"{"type":"pong"}"#).is_ok());
        assert!(
            ok(r#"{"type":"rooms","rooms":[{"name":"a","users":1},{"name":"b","users":2}]}"#)
                .is_ok()
        );
        assert!(ok(r#"{"type":"rooms","rooms":[{"name":"a","users":0}]}"#).is_err());
        assert!(ok(r#"{"type":"error","code":"nope","message":"x"}"#).is_err());
        assert!(check_frame(b"{\"type\":\"bye\"}").is_err());
    }
}

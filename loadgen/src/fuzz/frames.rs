//! What the attackers send: real protocol lines, random requests, mutations of both, garbage
//! and invalid UTF-8. Every function takes the connection's [`Rng`], so a seed replays it.

use super::rng::Rng;
use serde_json::{json, Map, Value};

/// Real protocol lines (without `\n`), the material that mutations start from.
pub const SEEDS: &[&[u8]] = &[
    br#"{"type":"join","nickname":"alice","room":"rust"}"#,
    br#"{"type":"join","nickname":"bob"}"#,
    br#"{"type":"nick","nickname":"carol"}"#,
    br#"{"type":"message","content":"hello","id":1}"#,
    br#"{"type":"message","content":"caf\u00e9 \ud83e\udd80","id":"a:1"}"#,
    br#"{"type":"private","to":"alice","content":"psst","id":7}"#,
    br#"{"type":"join_room","room":"games"}"#,
    br#"{"type":"list_users","room":"lobby"}"#,
    br#"{"type":"list_users"}"#,
    br#"{"type":"list_rooms"}"#,
    br#"{"type":"ping","id":42}"#,
    br#"{"type":"ping"}"#,
    br#"{"type":"quit"}"#,
];

/// The request types, plus names a server must answer `unknown_type`.
const TYPES: &[&str] = &[
    "join",
    "nick",
    "message",
    "private",
    "join_room",
    "list_users",
    "list_rooms",
    "ping",
    "quit",
    "Join",
    "",
    "dance",
    "ping ",
    "pïng",
];

/// The fields requests use, plus some no request has.
const FIELDS: &[&str] = &[
    "nickname", "room", "content", "to", "id", "type", "from", "ts", "users", "",
];

/// Strings that stress names and content: Unicode beyond ASCII, case variants that collide,
/// whitespace (also non-ASCII), control characters, escapes, the 32-character limit.
const STRINGS: &[&str] = &[
    "alice",
    "ALICE",
    "Ålice",
    "ålice",
    "lobby",
    "李雷",
    "🦀",
    "e\u{301}",
    "\u{202e}rtl",
    "a b",
    "a\u{3000}b",
    "a\u{85}b",
    "tab\there",
    "nul\u{0}byte",
    "line\nbreak",
    "\"quoted\"",
    "back\\slash",
    "",
    " ",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
];

/// Byte sequences that are not UTF-8: a stray continuation byte, bytes that never occur, an
/// overlong encoding, an encoded surrogate, a truncated sequence, a code point past U+10FFFF.
pub const INVALID_UTF8: &[&[u8]] = &[
    b"\x80",
    b"\xff",
    b"\xfe\xfe",
    b"\xc0\x80",
    b"\xed\xa0\x80",
    b"\xe2\x82",
    b"\xf4\x90\x80\x80",
];

/// A short random string: from the pool, random printable text, or random Unicode.
pub fn string(rng: &mut Rng) -> String {
    match rng.below(4) {
        0 | 1 => rng.pick(STRINGS).to_string(),
        2 => (0..rng.range(1, 40))
            .map(|_| char::from(rng.range(0x20, 0x7e) as u8))
            .collect(),
        _ => (0..rng.range(1, 12))
            .filter_map(|_| char::from_u32(rng.range(0, 0x2_FFFF) as u32))
            .collect(),
    }
}

/// A random JSON value, nested at most `depth` deep.
pub fn value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth == 0 { 6 } else { 8 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(50)),
        2 => json!(rng.next_u64() as i64),
        3 => json!(*rng.pick(&[0.5, -1e300, 1e20, 3.0])),
        4 | 5 => Value::String(string(rng)),
        6 => Value::Array((0..rng.below(4)).map(|_| value(rng, depth - 1)).collect()),
        _ => {
            let mut object = Map::new();
            for _ in 0..rng.below(4) {
                object.insert(rng.pick(FIELDS).to_string(), value(rng, depth - 1));
            }
            Value::Object(object)
        }
    }
}

/// A random request object: a type (known or not) and fields, each of the right JSON type
/// more often than not.
pub fn request(rng: &mut Rng) -> Value {
    let mut object = Map::new();
    if rng.chance(95) {
        let kind = if rng.chance(90) {
            Value::from(*rng.pick(TYPES))
        } else {
            value(rng, 1)
        };
        object.insert("type".into(), kind);
    }
    for _ in 0..rng.below(4) {
        let field = *rng.pick(FIELDS);
        let field_value = match field {
            "id" if rng.chance(60) => json!(rng.below(1000)),
            _ if rng.chance(70) => Value::String(string(rng)),
            _ => value(rng, 2),
        };
        object.insert(field.to_string(), field_value);
    }
    Value::Object(object)
}

/// A line: a JSON value plus `\n`.
pub fn line(value: &Value) -> Vec<u8> {
    let mut bytes = value.to_string().into_bytes();
    bytes.push(b'\n');
    bytes
}

/// A mutated copy of `input`: one to four byte-level edits (flip a bit, insert, delete,
/// duplicate or splice a slice, insert a newline, `\r` or an invalid UTF-8 sequence, cut).
pub fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut bytes = input.to_vec();
    for _ in 0..rng.range(1, 4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(9) {
            0 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] ^= 1 << rng.below(8);
            }
            1 => bytes.insert(at, rng.byte()),
            2 if at < bytes.len() => {
                let end = rng.range(at, bytes.len());
                bytes.drain(at..end);
            }
            3 if at < bytes.len() => {
                let end = rng.range(at, bytes.len().min(at + 16));
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
            4 => {
                let other = rng.pick(SEEDS);
                let from = rng.below(other.len());
                bytes.splice(at..at, other[from..].iter().copied());
            }
            5 => bytes.insert(at, b'\n'),
            6 => bytes.insert(at, b'\r'),
            7 => {
                let invalid = rng.pick(INVALID_UTF8);
                bytes.splice(at..at, invalid.iter().copied());
            }
            _ => bytes.truncate(at),
        }
    }
    bytes
}

/// Random bytes with newlines here and there, sometimes pure binary.
pub fn garbage(rng: &mut Rng, len: usize) -> Vec<u8> {
    let newline_every = rng.range(8, 200);
    (0..len)
        .map(|_| match rng.below(newline_every) {
            0 => b'\n',
            _ => rng.byte(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything the generators make is bounded, and requests are JSON objects on one line.
    #[test]
    fn generated_lines_are_single_json_lines() {
        let mut rng = Rng::new(3);
        for _ in 0..500 {
            let line = line(&request(&mut rng));
            assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
            assert!(serde_json::from_slice::<Value>(&line).is_ok_and(|v| v.is_object()));
            assert!(line.len() < 4096);
            let seed = rng.pick(SEEDS);
            let mutant = mutate(&mut rng, seed);
            assert!(mutant.len() < 1024);
        }
        assert_eq!(garbage(&mut rng, 100).len(), 100);
    }
}

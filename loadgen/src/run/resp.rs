//! A small RESP3 client codec, enough for `--target redis`: HELLO, SUBSCRIBE, PUBLISH, PING.
//!
//! Why RESP3 (`HELLO 3`, Redis 6 and later): in RESP2 a subscribed connection may only issue
//! (UN)SUBSCRIBE and PING, so every member would need a second connection to publish. In RESP3
//! pub/sub messages arrive as out-of-band "push" values (`>`) and the connection stays usable,
//! so the Redis run has one connection per member, exactly like the chat run.

use super::codec::Incoming;
use super::workload::{push_decimal, MsgId};

/// One RESP value, only as detailed as the load test needs; strings borrow from the input.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value<'a> {
    Simple(&'a str),
    Error(String),
    Int(i64),
    /// Bulk and verbatim strings; `None` is RESP2's null bulk string.
    Bulk(Option<&'a [u8]>),
    /// Arrays and sets.
    Array(Vec<Value<'a>>),
    /// Out-of-band push (pub/sub messages, subscribe confirmations).
    Push(Vec<Value<'a>>),
    /// Maps (the HELLO reply), flattened to key, value, key, value…
    Map(Vec<Value<'a>>),
    /// Null, booleans, doubles, big numbers, attributes: nothing the load test reads.
    Other,
}

/// Appends a command as an array of bulk strings.
pub(crate) fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    array_header(out, args.len());
    for arg in args {
        bulk(out, &[arg]);
    }
}

/// Appends `PUBLISH channel "<id> <padding>"` without building the payload first.
pub(crate) fn publish(out: &mut Vec<u8>, channel: &[u8], id: &[u8], padding: &[u8]) {
    array_header(out, 3);
    bulk(out, &[b"PUBLISH"]);
    bulk(out, &[channel]);
    bulk(out, &[id, b" ", padding]);
}

fn array_header(out: &mut Vec<u8>, len: usize) {
    out.push(b'*');
    push_decimal(out, len as u64);
    out.extend_from_slice(b"\r\n");
}

/// One bulk string made of `parts`.
fn bulk(out: &mut Vec<u8>, parts: &[&[u8]]) {
    out.push(b'$');
    push_decimal(out, parts.iter().map(|p| p.len() as u64).sum());
    out.extend_from_slice(b"\r\n");
    for part in parts {
        out.extend_from_slice(part);
    }
    out.extend_from_slice(b"\r\n");
}

/// Parses one value from the front of `buf`: `Ok(None)` when it is not complete yet, else the
/// value and the bytes it took. An error means the stream is not RESP.
pub(crate) fn parse(buf: &[u8]) -> Result<Option<(Value<'_>, usize)>, String> {
    parse_at(buf, 0, 0)
}

/// Nesting deeper than this is not something Redis sends us; refusing it bounds the recursion.
const MAX_DEPTH: usize = 8;

fn parse_at(buf: &[u8], pos: usize, depth: usize) -> Result<Option<(Value<'_>, usize)>, String> {
    if depth > MAX_DEPTH {
        return Err("RESP nested too deep".into());
    }
    let Some(line_end) = find_crlf(buf, pos) else {
        return Ok(None);
    };
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    let line = std::str::from_utf8(&buf[pos + 1..line_end])
        .map_err(|_| "RESP header is not UTF-8".to_string())?;
    let after = line_end + 2;
    let number = || -> Result<i64, String> {
        line.parse::<i64>()
            .map_err(|_| format!("bad RESP length {line:?}"))
    };
    match kind {
        b'+' => Ok(Some((Value::Simple(line), after))),
        b'-' => Ok(Some((Value::Error(line.to_string()), after))),
        b':' => Ok(Some((Value::Int(number()?), after))),
        b'_' | b'#' | b',' | b'(' => Ok(Some((Value::Other, after))),
        b'$' | b'=' | b'!' => {
            let len = number()?;
            if len < 0 {
                return Ok(Some((Value::Bulk(None), after)));
            }
            let end = after + len as usize;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            let bytes = &buf[after..end];
            let value = if kind == b'!' {
                Value::Error(String::from_utf8_lossy(bytes).into_owned())
            } else {
                Value::Bulk(Some(bytes))
            };
            Ok(Some((value, end + 2)))
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = number()?;
            // A map or attribute of n entries holds 2n values.
            let count = if matches!(kind, b'%' | b'|') {
                2 * n
            } else {
                n
            };
            let mut items = Vec::new();
            let mut at = after;
            for _ in 0..count.max(0) {
                match parse_at(buf, at, depth + 1)? {
                    None => return Ok(None),
                    Some((item, next)) => {
                        items.push(item);
                        at = next;
                    }
                }
            }
            let value = match kind {
                b'>' => Value::Push(items),
                b'%' => Value::Map(items),
                // An attribute decorates the value after it; skip it and return that value.
                b'|' => return parse_at(buf, at, depth + 1),
                _ if n < 0 => Value::Bulk(None),
                _ => Value::Array(items),
            };
            Ok(Some((value, at)))
        }
        other => Err(format!("unexpected RESP type byte {other:#04x}")),
    }
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let rest = buf.get(from..)?;
    memchr::memchr_iter(b'\r', rest)
        .find(|&p| rest.get(p + 1) == Some(&b'\n'))
        .map(|p| from + p)
}

/// What a value means to the driver. `subscribe`: whether the handshake ends with a
/// subscription (then the HELLO reply is not yet "ready").
pub(crate) fn classify(value: &Value<'_>, subscribe: bool) -> Incoming {
    match value {
        Value::Map(_) if !subscribe => Incoming::Ready,
        Value::Push(items) => match items.first() {
            Some(Value::Bulk(Some(b"subscribe"))) => Incoming::Ready,
            Some(Value::Bulk(Some(b"message"))) => match items.get(2) {
                Some(Value::Bulk(Some(payload))) => tagged(payload),
                _ => Incoming::Unparsed,
            },
            _ => Incoming::Other,
        },
        // The reply to `PING <id>`.
        Value::Bulk(Some(payload)) => tagged(payload),
        Value::Error(message) => Incoming::Error(error_code(message)),
        _ => Incoming::Other,
    }
}

/// The payload is `<id> <padding>`.
fn tagged(payload: &[u8]) -> Incoming {
    let id = payload.split(|&b| b == b' ').next().unwrap_or_default();
    match MsgId::parse(id) {
        Some(id) => Incoming::Tagged(id),
        None => Incoming::Unparsed,
    }
}

/// Maps a Redis error to a code like the chat protocol's, so the report groups them alike.
fn error_code(message: &str) -> String {
    if message.contains("max number of clients") {
        return "server_full".into();
    }
    let word = message.split_whitespace().next().unwrap_or("error");
    format!("redis_{}", word.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Push messages, the HELLO map, PING replies and errors are recognised; partial input waits.
    #[test]
    fn parses_and_classifies() {
        let msg = b">3\r\n$7\r\nmessage\r\n$4\r\nroom\r\n$9\r\n1:2:3:4 x\r\n";
        let (value, used) = parse(msg).expect("valid").expect("complete");
        assert_eq!(used, msg.len());
        let id = MsgId {
            sender: 1,
            seq: 2,
            intended_us: 3,
            sent_us: 4,
        };
        assert_eq!(classify(&value, true), Incoming::Tagged(id));
        for cut in 0..msg.len() {
            assert_eq!(
                parse(&msg[..cut]).expect("valid prefix"),
                None,
                "cut at {cut}"
            );
        }
        let hello = b"%2\r\n+server\r\n+redis\r\n+proto\r\n:3\r\n";
        let (value, _) = parse(hello).expect("valid").expect("complete");
        assert_eq!(classify(&value, false), Incoming::Ready);
        assert_eq!(classify(&value, true), Incoming::Other);
        let sub = b">3\r\n$9\r\nsubscribe\r\n$4\r\nroom\r\n:1\r\n";
        let (value, _) = parse(sub).expect("valid").expect("complete");
        assert_eq!(classify(&value, true), Incoming::Ready);
        let err = b"-ERR max number of clients reached\r\n";
        let (value, _) = parse(err).expect("valid").expect("complete");
        assert_eq!(
            classify(&value, true),
            Incoming::Error("server_full".into())
        );
        assert!(parse(b"?oops\r\n").is_err());
    }

    /// Commands are arrays of bulk strings.
    #[test]
    fn encodes_commands() {
        let mut out = Vec::new();
        command(&mut out, &[b"PING", b"1:2:3:4"]);
        assert_eq!(out, b"*2\r\n$4\r\nPING\r\n$7\r\n1:2:3:4\r\n");
        out.clear();
        publish(&mut out, b"room", b"1:2:3:4", b"xx");
        assert_eq!(
            out,
            b"*3\r\n$7\r\nPUBLISH\r\n$4\r\nroom\r\n$10\r\n1:2:3:4 xx\r\n"
        );
    }
}

//! The chat protocol over WebSocket (`--transport ws`), the client's side of RFC 6455, written
//! for the engine's byte buffers: no allocation per message, no state per connection.
//!
//! * **The upgrade** is one HTTP request. RFC 6455 (section 4.1) has the client wait for the
//!   server's `101` before it sends a frame, so the join goes out when [`decode`] reports
//!   [`Message::Upgraded`]: a WebSocket connection costs one round trip more than a TCP one,
//!   as it does for a browser.
//! * **Outgoing:** one text message, in one frame, per protocol frame, masked as RFC 6455
//!   requires of every client frame. The payload's length is known before it is written (the
//!   codec's parts are added up), so the header goes first and the parts are masked as they
//!   are copied.
//! * **Incoming:** the server's frames are not masked. A fragmented message is decoded only
//!   once all its fragments are in the buffer; until then [`decode`] consumes nothing, so the
//!   decoder keeps no state between reads and the engine's buffer management is the TCP one.
//!
//! Why no state is needed to tell the response from the frames: a server's first frame byte
//! is `0x81` (text), `0x82`, `0x88`… and never `H` (`0x48` would set the reserved bit RSV1,
//! which no extension negotiated here allows), so a buffer that starts with `HTTP/` is the
//! response.

/// The `Sec-WebSocket-Key` of every upgrade. RFC 6455 asks for a random nonce so that a
/// caching proxy cannot be fooled into answering with a stale upgrade; a load generator
/// talking to a server directly has no such proxy, and the server's answer is not checked
/// against it (the `101` is).
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The longest frame header (2 bytes, 8 of length; a server's frames carry no mask key).
const HEADER_MAX: usize = 14;

/// Appends the upgrade request for `path`.
pub(crate) fn upgrade(out: &mut Vec<u8>, path: &str) {
    for part in [
        "GET ",
        path,
        " HTTP/1.1\r\nHost: loadgen\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
        "Sec-WebSocket-Key: ",
        KEY,
        "\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ] {
        out.extend_from_slice(part.as_bytes());
    }
}

/// Appends one masked text frame whose payload is `parts`, one after the other.
pub(crate) fn text_frame(out: &mut Vec<u8>, parts: &[&[u8]]) {
    frame(out, true, TEXT, parts);
}

/// The opcodes a client sends.
pub(crate) const CONTINUATION: u8 = 0x0;
pub(crate) const TEXT: u8 = 0x1;
pub(crate) const CLOSE: u8 = 0x8;

/// Appends one masked frame: `fin` (the message's last), `opcode`, and the payload `parts`.
pub(crate) fn frame(out: &mut Vec<u8>, fin: bool, opcode: u8, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    out.push(if fin { 0x80 } else { 0 } | opcode);
    match len {
        0..=125 => out.push(0x80 | len as u8),
        126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    let key = mask_key(parts);
    out.extend_from_slice(&key);
    let mut at = 0;
    for part in parts {
        out.extend(part.iter().map(|b| {
            let masked = b ^ key[at % 4];
            at += 1;
            masked
        }));
    }
}

/// A mask key that changes with the payload (FNV-1a of it), never all zeros: the server pays
/// for unmasking as it does for a browser's frames. RFC 6455 wants the key unpredictable to a
/// web page's script, which the generator is not.
fn mask_key(parts: &[&[u8]]) -> [u8; 4] {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in parts.iter().flat_map(|p| p.iter()) {
        hash = (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193);
    }
    (hash | 1).to_be_bytes()
}

/// One complete message from the server.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Message<'a> {
    /// A text message (its fragments joined when there were several: then borrowed from
    /// `scratch`).
    Text(&'a [u8]),
    /// The server's `101 Switching Protocols`: frames may be sent now.
    Upgraded,
    /// A close frame, with its status code when it has one.
    Close(Option<u16>),
    /// Binary, ping, pong: nothing the load test measures.
    Other,
}

/// Decodes every complete message at the front of `buf`, calling `each` with it, and returns
/// how many bytes they took. `max` bounds one message's payload. An error means the stream is
/// broken (a refused upgrade, a masked or malformed frame, a message over `max`).
pub(crate) fn decode(
    buf: &[u8],
    max: usize,
    mut each: impl FnMut(Message<'_>),
) -> Result<usize, String> {
    let mut used = 0;
    let mut scratch = Vec::new();
    loop {
        let rest = &buf[used..];
        if rest.starts_with(b"HTTP/") {
            let Some(end) = memchr::memmem::find(rest, b"\r\n\r\n") else {
                if rest.len() > max {
                    return Err("an endless HTTP response to the upgrade".into());
                }
                return Ok(used);
            };
            let status = rest.split(|b| *b == b'\r').next().unwrap_or_default();
            if !status.starts_with(b"HTTP/1.1 101 ") {
                return Err(format!(
                    "the upgrade was refused: {}",
                    String::from_utf8_lossy(status)
                ));
            }
            used += end + 4;
            each(Message::Upgraded);
            continue;
        }
        match message(rest, max, &mut scratch)? {
            None => return Ok(used),
            Some((len, opcode, single)) => {
                let payload = match single {
                    Some(range) => &rest[range],
                    None => &scratch[..],
                };
                each(match opcode {
                    0x1 => Message::Text(payload),
                    0x8 => Message::Close(
                        payload
                            .get(..2)
                            .map(|code| u16::from_be_bytes([code[0], code[1]])),
                    ),
                    _ => Message::Other,
                });
                used += len;
            }
        }
    }
}

/// One frame's header at the front of `buf`: (FIN, opcode, header length, payload length), or
/// `None` while it is incomplete.
fn header(buf: &[u8]) -> Result<Option<(bool, u8, usize, usize)>, String> {
    let [first, second, ..] = *buf else {
        return Ok(None);
    };
    if first & 0x70 != 0 {
        return Err("a frame with a reserved bit set".into());
    }
    if second & 0x80 != 0 {
        return Err("a masked frame from the server".into());
    }
    let (len, header) = match second & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (usize::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let mut eight = [0; 8];
                eight.copy_from_slice(b);
                let len = u64::from_be_bytes(eight);
                (usize::try_from(len).unwrap_or(usize::MAX), 10)
            }
            None => return Ok(None),
        },
        short => (usize::from(short), 2),
    };
    Ok(Some((first & 0x80 != 0, first & 0x0F, header, len)))
}

/// Where a message's payload is: in one frame (its place in the buffer), or joined from
/// fragments (`None`: in the scratch buffer).
type Payload = Option<std::ops::Range<usize>>;

/// The message at the front of `buf`: (bytes it took, its opcode, where its payload is), or
/// `None` while it is incomplete. Control frames between fragments are skipped with
/// the message (the server never sends any there).
fn message(
    buf: &[u8],
    max: usize,
    scratch: &mut Vec<u8>,
) -> Result<Option<(usize, u8, Payload)>, String> {
    let mut at = 0;
    let mut kind = None;
    let mut frames = 0;
    scratch.clear();
    loop {
        let Some((fin, opcode, header, len)) = header(&buf[at..])? else {
            return Ok(None);
        };
        if len > max || scratch.len() + len > max {
            return Err(format!("a message longer than {max} bytes"));
        }
        let Some(payload) = buf.get(at + header..at + header + len) else {
            if buf.len() - at > max + HEADER_MAX {
                return Err(format!("a message longer than {max} bytes"));
            }
            return Ok(None);
        };
        let range = at + header..at + header + len;
        at += header + len;
        match (opcode, kind) {
            // A control frame: alone, or between fragments (skipped).
            (0x8..=0xA, None) => return Ok(Some((at, opcode, Some(range)))),
            (0x8..=0xA, Some(_)) => continue,
            (0x1 | 0x2, None) => kind = Some(opcode),
            (0x0, Some(_)) => {}
            _ => return Err(format!("an unexpected frame (opcode {opcode:#x})")),
        }
        frames += 1;
        let opcode = kind.unwrap_or(opcode);
        if fin && frames == 1 {
            return Ok(Some((at, opcode, Some(range))));
        }
        scratch.extend_from_slice(payload);
        if fin {
            return Ok(Some((at, opcode, None)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unmasks a client frame the way a server does, for the tests.
    fn unmask(frame: &[u8]) -> (u8, Vec<u8>) {
        let (len, at) = match frame[1] & 0x7F {
            126 => (usize::from(u16::from_be_bytes([frame[2], frame[3]])), 4),
            127 => panic!("not in these tests"),
            n => (usize::from(n), 2),
        };
        assert_ne!(frame[1] & 0x80, 0, "client frames are masked");
        let key = &frame[at..at + 4];
        assert_ne!(key, [0, 0, 0, 0]);
        let payload = frame[at + 4..at + 4 + len]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect();
        assert_eq!(frame.len(), at + 4 + len, "one frame, nothing after it");
        (frame[0], payload)
    }

    fn texts(buf: &[u8]) -> (Vec<Result<String, ()>>, usize) {
        let mut seen = Vec::new();
        let used = decode(buf, 1000, |m| {
            seen.push(match m {
                Message::Text(t) => Ok(String::from_utf8(t.to_vec()).expect("utf-8")),
                Message::Upgraded => Ok("101".into()),
                Message::Close(code) => Ok(format!("close {code:?}")),
                Message::Other => Err(()),
            })
        })
        .expect("decodes");
        (seen, used)
    }

    /// A masked text frame carries the parts, at every length encoding tungstenite reads.
    #[test]
    fn frames_are_masked_text() {
        for size in [0, 5, 125, 126, 300, 70_000] {
            let body = vec![b'x'; size];
            let mut out = Vec::new();
            text_frame(&mut out, &[b"{", &body, b"}"]);
            if size + 2 > 0xFFFF {
                assert_eq!(out[1], 0x80 | 127);
                continue;
            }
            let (first, payload) = unmask(&out);
            assert_eq!(first, 0x81);
            assert_eq!(payload.len(), size + 2);
            assert!(payload.starts_with(b"{") && payload.ends_with(b"}"));
        }
    }

    /// The 101 response is skipped, frames follow it, a partial frame waits.
    #[test]
    fn response_then_frames() {
        let mut buf = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n".to_vec();
        buf.extend_from_slice(&[0x81, 2, b'h', b'i']);
        buf.extend_from_slice(&[0x89, 0]); // a ping
        buf.extend_from_slice(&[0x88, 2, 0x03, 0xE9]);
        buf.extend_from_slice(&[0x81, 126, 0, 200, b'x']);
        let (seen, used) = texts(&buf);
        assert_eq!(
            seen,
            vec![
                Ok("101".into()),
                Ok("hi".into()),
                Err(()),
                Ok("close Some(1001)".into())
            ]
        );
        assert_eq!(used, buf.len() - 5);
        // Half a response: nothing yet.
        assert_eq!(texts(b"HTTP/1.1 101 Swi"), (vec![], 0));
    }

    /// Fragments are joined, with a control frame between them skipped; an incomplete
    /// fragmented message consumes nothing.
    #[test]
    fn fragments_are_joined() {
        let buf = [
            &[0x01, 3][..],
            b"abc",
            &[0x8A, 0],
            &[0x00, 2],
            b"de",
            &[0x80, 1],
            b"f",
        ]
        .concat();
        assert_eq!(texts(&buf), (vec![Ok("abcdef".into())], buf.len()));
        assert_eq!(texts(&buf[..buf.len() - 1]), (vec![], 0));
    }

    /// A refused upgrade, a masked server frame, a reserved bit and an oversized message are
    /// errors.
    #[test]
    fn broken_streams_are_errors() {
        let refused = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        let masked = [0x81, 0x81, 1, 2, 3, 4, b'x'];
        let reserved = [0xC1, 1, b'x'];
        let long = [0x81, 126, 0x10, 0];
        for bad in [&refused[..], &masked, &reserved, &long] {
            assert!(decode(bad, 1000, |_| {}).is_err(), "{bad:?}");
        }
    }
}

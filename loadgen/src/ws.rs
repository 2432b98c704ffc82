//! WebSocket on plain byte buffers: the upgrade handshake and the frames of RFC 6455, for
//! `loadgen run --transport ws`, `loadgen check --transport ws` and the test server's WebSocket
//! front (PROTOCOL.md, section 9: one text message is one protocol frame).
//!
//! Why `tungstenite`, and why only its codec: it is the WebSocket implementation most of the
//! Rust ecosystem stands on (tokio-tungstenite, axum and warp wrap it), and it has no runtime of
//! its own: its handshake (`generate_request`, `Response::try_parse`, `derive_accept_key`,
//! `create_response`) and its frame headers (`FrameHeader::parse` / `format`) work on byte
//! slices, so they fit a polling engine that reads thousands of sockets into one buffer per
//! thread and keeps no object per connection. Its `WebSocket<Stream>` type would work on
//! non-blocking sockets too, but it owns a read and a write buffer per connection and copies every
//! message into a `Message` of its own; the engine needs neither. What is left here is what
//! RFC 6455 leaves to the user of a codec: masking the client's payloads, putting fragments
//! together, and answering pings and closes.

use std::io::Cursor;
use std::net::SocketAddr;
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::{generate_request, Response};
use tungstenite::handshake::derive_accept_key;
use tungstenite::handshake::machine::TryParse;
use tungstenite::handshake::server::{create_response, write_response, Request};
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

/// The path of the WebSocket endpoint on a chat node's HTTP listener (PROTOCOL.md, section 9).
pub const DEFAULT_PATH: &str = "/ws";

/// The longest upgrade request or response head a peer may send before it counts as broken.
pub(crate) const MAX_HEAD: usize = 16 * 1024;

/// The close codes of PROTOCOL.md, section 9.
pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
pub const CLOSE_POLICY: u16 = 1008;
pub const CLOSE_TRY_AGAIN_LATER: u16 = 1013;

/// The kinds of frame RFC 6455 defines (others are refused when parsed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    fn to_tungstenite(self) -> OpCode {
        match self {
            Opcode::Continuation => OpCode::Data(Data::Continue),
            Opcode::Text => OpCode::Data(Data::Text),
            Opcode::Binary => OpCode::Data(Data::Binary),
            Opcode::Close => OpCode::Control(Control::Close),
            Opcode::Ping => OpCode::Control(Control::Ping),
            Opcode::Pong => OpCode::Control(Control::Pong),
        }
    }

    fn from_tungstenite(op: OpCode) -> Result<Opcode, String> {
        Ok(match op {
            OpCode::Data(Data::Continue) => Opcode::Continuation,
            OpCode::Data(Data::Text) => Opcode::Text,
            OpCode::Data(Data::Binary) => Opcode::Binary,
            OpCode::Control(Control::Close) => Opcode::Close,
            OpCode::Control(Control::Ping) => Opcode::Ping,
            OpCode::Control(Control::Pong) => Opcode::Pong,
            other => return Err(format!("a frame with the reserved opcode {other}")),
        })
    }

    /// Control frames (close, ping, pong) may come between the fragments of a message.
    pub fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// One whole frame at the front of a buffer, as [`parse_frame`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameAt {
    /// The last frame of its message.
    pub fin: bool,
    pub opcode: Opcode,
    /// The masking key (client frames have one, server frames must not).
    pub mask: Option<[u8; 4]>,
    /// Where the payload starts, and how long it is: the frame is `header + payload` bytes.
    pub header: usize,
    pub payload: usize,
}

impl FrameAt {
    /// The whole frame's length (header and payload).
    pub fn frame_len(&self) -> usize {
        self.header + self.payload
    }
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    /// The frame was well formed but its payload is over the limit (a server answers that
    /// with `line_too_long`, not with a protocol error).
    pub too_long: bool,
    pub reason: String,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl From<FrameError> for String {
    fn from(e: FrameError) -> String {
        e.reason
    }
}

fn broken(reason: impl Into<String>) -> FrameError {
    FrameError {
        too_long: false,
        reason: reason.into(),
    }
}

/// Parses the frame at the front of `buf`: `Ok(None)` while it has not fully arrived, an error
/// for a frame no peer may send (a reserved opcode or bit, a fragmented or oversized control
/// frame) or one whose payload is over `max_payload` (known from its header, before the
/// payload arrives).
pub fn parse_frame(buf: &[u8], max_payload: usize) -> Result<Option<FrameAt>, FrameError> {
    let mut cursor = Cursor::new(buf);
    let (header, length) = match FrameHeader::parse(&mut cursor) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => return Ok(None),
        Err(e) => return Err(broken(format!("not a WebSocket frame ({e})"))),
    };
    if header.rsv1 || header.rsv2 || header.rsv3 {
        return Err(broken(
            "a frame with a reserved bit set (no extension was agreed)",
        ));
    }
    let opcode = Opcode::from_tungstenite(header.opcode).map_err(broken)?;
    if opcode.is_control() && (!header.is_final || length > 125) {
        return Err(broken("a fragmented or oversized control frame"));
    }
    if length > max_payload as u64 {
        return Err(FrameError {
            too_long: true,
            reason: format!("a frame of {length} bytes, over the {max_payload} allowed"),
        });
    }
    let at = FrameAt {
        fin: header.is_final,
        opcode,
        mask: header.mask,
        header: cursor.position() as usize,
        payload: length as usize,
    };
    Ok((buf.len() >= at.frame_len()).then_some(at))
}

/// One whole frame on its own (a control frame, say): [`push_frame`] into a new buffer.
pub fn frame(opcode: Opcode, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut frame = Vec::new();
    push_frame(&mut frame, opcode, true, payload, mask);
    frame
}

/// Appends one frame: the header (with `mask` when given: a client must mask, a server must
/// not) and the payload, masked with it.
pub fn push_frame(
    out: &mut Vec<u8>,
    opcode: Opcode,
    fin: bool,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    let header = FrameHeader {
        is_final: fin,
        opcode: opcode.to_tungstenite(),
        mask,
        ..FrameHeader::default()
    };
    // Formatting into a Vec cannot fail.
    let _ = header.format(payload.len() as u64, out);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(mask) = mask {
        apply_mask(&mut out[start..], mask);
    }
}

/// Masks or unmasks `buf` in place (the same operation: XOR with the key, repeated).
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = buf.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let x = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) ^ word;
        chunk.copy_from_slice(&x.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i];
    }
}

/// The payload of a close frame: the code, then the reason.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    // A control frame carries at most 125 bytes.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    payload
}

/// The code and reason of a close frame's (unmasked) payload; no code when it had none.
pub fn parse_close(payload: &[u8]) -> (Option<u16>, String) {
    match payload {
        [a, b, reason @ ..] => (
            Some(u16::from_be_bytes([*a, *b])),
            String::from_utf8_lossy(reason).into_owned(),
        ),
        _ => (None, String::new()),
    }
}

/// How a close reads in a report: `WebSocket close 1008 (policy violation: idle_timeout)`.
pub fn describe_close(code: Option<u16>, reason: &str) -> String {
    let Some(code) = code else {
        return "WebSocket close without a code".into();
    };
    let name = match code {
        CLOSE_NORMAL => "normal",
        CLOSE_GOING_AWAY => "going away",
        CLOSE_PROTOCOL_ERROR => "protocol error",
        1003 => "unsupported data",
        1007 => "invalid payload",
        CLOSE_POLICY => "policy violation",
        1009 => "message too big",
        1011 => "internal error",
        CLOSE_TRY_AGAIN_LATER => "try again later",
        _ => "other",
    };
    if reason.is_empty() {
        format!("WebSocket close {code} ({name})")
    } else {
        format!("WebSocket close {code} ({name}: {reason})")
    }
}

/// A client's upgrade request for `path` on the server at `addr`, and the key its answer must
/// prove it saw.
pub fn upgrade_request(addr: SocketAddr, path: &str) -> Result<(Vec<u8>, String), String> {
    let url = format!("ws://{addr}{path}");
    let request = url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("cannot make a WebSocket request for {url}: {e}"))?;
    generate_request(request).map_err(|e| format!("cannot make a WebSocket request for {url}: {e}"))
}

/// Reads the server's answer to an upgrade request at the front of `buf`: `Ok(None)` until the
/// whole head has arrived; `Ok(Some(len))` for a `101` whose `Sec-WebSocket-Accept` answers
/// `key` (the frames start at `len`); an error saying what the server did instead.
pub fn upgrade_response(buf: &[u8], key: &str) -> Result<Option<usize>, String> {
    let (len, response) = match Response::try_parse(buf) {
        Ok(Some(parsed)) => parsed,
        Ok(None) if buf.len() > MAX_HEAD => {
            return Err(format!("no end of the HTTP answer in {MAX_HEAD} bytes"))
        }
        Ok(None) => return Ok(None),
        Err(e) => {
            let start = String::from_utf8_lossy(&buf[..buf.len().min(60)]).into_owned();
            return Err(format!(
                "the answer to the upgrade is not HTTP ({e}): {start:?}"
            ));
        }
    };
    if response.status().as_u16() != 101 {
        return Err(format!(
            "the server answered the WebSocket upgrade with HTTP {} instead of 101",
            response.status()
        ));
    }
    let accept = response
        .headers()
        .get("Sec-WebSocket-Accept")
        .and_then(|v| v.to_str().ok());
    if accept != Some(derive_accept_key(key.as_bytes()).as_str()) {
        return Err("the server's Sec-WebSocket-Accept does not answer our key".into());
    }
    Ok(Some(len))
}

/// What a server makes of an upgrade request at the front of `buf`.
pub enum Upgrade {
    /// The head has not fully arrived.
    Incomplete,
    /// A valid upgrade for `path`: send `response` (a `101`); frames start at `len`.
    Accept {
        len: usize,
        path: String,
        response: Vec<u8>,
    },
    /// Not a WebSocket upgrade: send `response` (a `400`) and close.
    Refuse { response: Vec<u8>, why: String },
}

/// The server's side of the handshake.
pub fn accept_upgrade(buf: &[u8]) -> Upgrade {
    let refuse = |why: String| Upgrade::Refuse {
        response: format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{why}",
            why.len()
        )
        .into_bytes(),
        why,
    };
    let (len, request) = match Request::try_parse(buf) {
        Ok(Some(parsed)) => parsed,
        Ok(None) if buf.len() > MAX_HEAD => {
            return refuse(format!("no end of the request head in {MAX_HEAD} bytes"))
        }
        Ok(None) => return Upgrade::Incomplete,
        Err(e) => return refuse(format!("not an HTTP request: {e}")),
    };
    match create_response(&request) {
        Ok(response) => {
            let mut bytes = Vec::new();
            // Writing into a Vec cannot fail.
            let _ = write_response(&mut bytes, &response);
            Upgrade::Accept {
                len,
                path: request.uri().path().to_string(),
                response: bytes,
            }
        }
        Err(e) => refuse(format!("not a WebSocket upgrade: {e}")),
    }
}

/// Masking keys. RFC 6455 wants them unpredictable, so that a client's payload cannot be chosen
/// to look like something else to a proxy in between; a load generator talking to loopback
/// needs them cheap more than secret, so this is xorshift64*, seeded from the clock and the
/// process.
#[derive(Debug, Clone)]
pub struct MaskKeys(u64);

impl MaskKeys {
    pub fn new(salt: u64) -> MaskKeys {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let seed = nanos
            ^ (u64::from(std::process::id()) << 32)
            ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        MaskKeys(seed | 1)
    }

    pub fn next_key(&mut self) -> [u8; 4] {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        let key = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((key >> 32) as u32).to_ne_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked text frame parses back to its header and, unmasked, its payload; short, 16-bit
    /// and 64-bit lengths all round-trip; a frame is incomplete until its last byte.
    #[test]
    fn frames_round_trip() {
        let mut keys = MaskKeys::new(7);
        for size in [0usize, 5, 125, 126, 1000, 65_535, 65_536, 70_000] {
            let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let key = keys.next_key();
            let mut out = Vec::new();
            push_frame(&mut out, Opcode::Text, true, &payload, Some(key));
            let at = parse_frame(&out, 1 << 20)
                .expect("valid")
                .expect("complete");
            assert_eq!(
                (at.fin, at.opcode, at.mask),
                (true, Opcode::Text, Some(key))
            );
            assert_eq!(at.frame_len(), out.len());
            let mut body = out[at.header..].to_vec();
            apply_mask(&mut body, key);
            assert_eq!(body, payload, "size {size}");
            assert_eq!(parse_frame(&out[..out.len() - 1], 1 << 20), Ok(None));
        }
    }

    /// Reserved opcodes, oversized payloads and fragmented control frames are refused.
    #[test]
    fn bad_frames_are_refused() {
        assert!(
            parse_frame(&[0x83, 0x00], 100).is_err(),
            "reserved opcode 3"
        );
        assert!(
            parse_frame(&[0xC1, 0x00], 100).is_err(),
            "rsv1 without an extension"
        );
        assert!(
            parse_frame(&[0x09, 0x00], 100).is_err(),
            "a fragmented ping"
        );
        let mut big = Vec::new();
        push_frame(&mut big, Opcode::Text, true, &[b'x'; 200], None);
        assert!(parse_frame(&big, 100).is_err(), "over the limit");
        assert!(parse_frame(&big, 200).expect("fits").is_some());
    }

    /// A client's request is accepted by the server side, whose answer the client accepts; a
    /// wrong key, another status or plain HTTP are refused with a reason.
    #[test]
    fn handshake_both_sides() {
        let addr: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        let (request, key) = upgrade_request(addr, "/ws").expect("request");
        assert!(matches!(
            accept_upgrade(&request[..10]),
            Upgrade::Incomplete
        ));
        let Upgrade::Accept {
            len,
            path,
            response,
        } = accept_upgrade(&request)
        else {
            panic!("refused");
        };
        assert_eq!((len, path.as_str()), (request.len(), "/ws"));
        let mut answer = response.clone();
        answer.extend_from_slice(&[0x81, 0x00]);
        assert_eq!(upgrade_response(&answer, &key), Ok(Some(response.len())));
        assert_eq!(upgrade_response(&response[..5], &key), Ok(None));
        assert!(upgrade_response(&response, "another key").is_err());
        assert!(upgrade_response(b"HTTP/1.1 404 Not Found\r\n\r\n", &key).is_err());
        assert!(matches!(
            accept_upgrade(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Upgrade::Refuse { .. }
        ));
    }

    /// Close frames carry a code and a reason, cut to fit a control frame.
    #[test]
    fn close_codes() {
        let payload = close_payload(CLOSE_POLICY, "idle_timeout");
        assert_eq!(parse_close(&payload), (Some(1008), "idle_timeout".into()));
        assert_eq!(parse_close(&[]), (None, String::new()));
        assert!(close_payload(1000, &"é".repeat(100)).len() <= 125);
        assert_eq!(
            describe_close(Some(1013), ""),
            "WebSocket close 1013 (try again later)"
        );
    }
}

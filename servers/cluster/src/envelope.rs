//! What travels on the cluster's channels: an *envelope* around a protocol frame.
//!
//! A node publishes the exact bytes its members will receive (the frame, encoded once by the
//! node that handled the request), preceded by one line of routing header that says what the
//! frame is and whom it concerns:
//!
//! ```text
//! {"kind":"broadcast","node":"n1","conn":12,"seq":7}\n
//! {"type":"broadcast","from":"ada","room":"lobby","content":"hi","ts":1795377116615}\n
//! ```
//!
//! Every node that receives it passes the second line to its local members as it is (a `Bytes`
//! slice of the payload: no re-encoding, no copy per member). The header lets the node
//! recognise its *own* publications coming back: the sender's copy of a broadcast, and the
//! `joined` that marks where a joiner's history starts (see `relay.rs`).

use bytes::Bytes;
use chat_core::Frame;
use serde::{Deserialize, Serialize};

/// What an envelope carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A room's `broadcast`.
    Broadcast,
    /// `joined`: on a room channel it also marks where the joiner's membership begins.
    Joined,
    /// `left`: on a room channel it also marks where a mover's membership ends.
    Left,
    /// `renamed`.
    Renamed,
    /// A `private`, on the recipient's node channel.
    Private,
    /// On a node channel: its connection `conn` was replaced by a newer connection of the same
    /// WebSocket session, which took the nickname over (`bus::scripts::JOIN`); the frame is
    /// what to tell the old connection before closing it.
    Replaced,
}

/// The routing line of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// What the frame is.
    pub kind: Kind,
    /// The node of the connection the event is about (for `private`: the recipient's node).
    pub node: String,
    /// That connection's id on its node (for `private`: the recipient).
    pub conn: u64,
    /// The request that caused it, per connection: lets the node match its own echo with the
    /// request waiting for it, and ignore a late echo of a request given up on.
    #[serde(default)]
    pub seq: u64,
}

/// Builds the payload to publish: the header line, then the frame (which ends with `\n`).
pub fn seal(header: &Header, frame: &[u8]) -> Bytes {
    let mut payload = serde_json::to_vec(header).expect("a Header always serializes");
    payload.push(b'\n');
    payload.extend_from_slice(frame);
    Bytes::from(payload)
}

/// Splits a received payload into its header and frame; `None` if it is not an envelope (a
/// stranger publishing on our channels: ignored, never a crash).
pub fn open(payload: Bytes) -> Option<(Header, Frame)> {
    let newline = memchr(b'\n', &payload)?;
    let header: Header = serde_json::from_slice(&payload[..newline]).ok()?;
    let frame = payload.slice(newline + 1..);
    if frame.last() != Some(&b'\n') {
        return None;
    }
    Some((header, frame))
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_gives_back_header_and_frame() {
        let header = Header {
            kind: Kind::Broadcast,
            node: "n1".into(),
            conn: 12,
            seq: 7,
        };
        let frame = b"{\"type\":\"broadcast\",\"content\":\"a\\nb\"}\n";
        let (opened, body) = open(seal(&header, frame)).expect("an envelope");
        assert_eq!(opened, header);
        assert_eq!(&body[..], &frame[..]);
    }

    #[test]
    fn foreign_payloads_are_refused() {
        assert!(open(Bytes::from_static(b"hello")).is_none());
        assert!(open(Bytes::from_static(b"{}\n{\"type\":\"x\"}\n")).is_none());
        let header = br#"{"kind":"left","node":"n","conn":1}"#;
        let mut no_newline = header.to_vec();
        no_newline.extend_from_slice(b"\n{\"type\":\"left\"}");
        assert!(open(Bytes::from(no_newline)).is_none());
    }
}

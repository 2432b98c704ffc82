//! How a connection's bytes become frames: the one thing in which a WebSocket connection
//! differs from a TCP one on the way in.
//!
//! TCP delivers a stream of bytes, so the frames are cut out of it at the newlines (chat-core's
//! [`LineDecoder`]): the decoder must look for the `\n`, hold an unfinished line between
//! reads, and judge `--max-line` on a line whose end it has not seen yet. WebSocket delivers
//! *messages*: every frame of RFC 6455 starts with its length, so the decoder knows the size of
//! a message before reading it, and a message is a protocol frame (`websocket/decoder.rs`). Both
//! decoders are fed the bytes the reader task read, and hand out [`Decoded`] items one at a time;
//! the reader task (`connection.rs`) is the same for both.

use chat_core::{Inbound, LineDecoder};
use std::collections::VecDeque;

/// What a decoder found in the bytes it was fed.
#[derive(Debug)]
pub enum Decoded {
    /// A complete frame: a request, or why it is not one (`bad_request`, `line_too_long`).
    Frame(Inbound),
    /// The client ended the connection with a WebSocket close handshake (already answered).
    /// Over TCP the end of the stream says that, and the reader sees it itself.
    Closed,
    /// The client broke the transport's own rules (an unmasked or malformed WebSocket frame):
    /// the connection is closed, with this reason.
    Broken(String),
}

/// Cuts frames out of the bytes a connection reads.
pub trait Decoder: Send + 'static {
    /// Takes the bytes of one read.
    fn feed(&mut self, bytes: &[u8]);

    /// The next thing found, or `None` until more bytes are fed. Called once per item, after
    /// the previous one was handled: a decoder that answers the client itself (WebSocket's pong
    /// and close) thereby answers after the replies to the requests before.
    fn next(&mut self) -> Option<Decoded>;
}

/// The TCP decoder: lines, by chat-core's [`LineDecoder`].
#[derive(Debug)]
pub struct Lines {
    decoder: LineDecoder,
    /// Lines cut out of the last read, not yet handed out.
    ready: VecDeque<Inbound>,
}

impl Lines {
    pub fn new(decoder: LineDecoder) -> Self {
        Lines {
            decoder,
            ready: VecDeque::new(),
        }
    }
}

impl Decoder for Lines {
    fn feed(&mut self, bytes: &[u8]) {
        self.ready.extend(self.decoder.feed(bytes));
    }

    fn next(&mut self) -> Option<Decoded> {
        self.ready.pop_front().map(Decoded::Frame)
    }
}

//! Line framing: turns an arbitrary stream of byte chunks into protocol lines.
//!
//! TCP delivers a byte stream, not messages: one `read` may return half a line, or ten lines and
//! the start of an eleventh. The [`LineDecoder`] keeps the unfinished tail between reads and
//! hands out one [`Inbound`] per complete line.
//!
//! Two limits protect the server:
//! - a line may be at most `max_line` bytes *including* its `\n`, and the decoder never buffers
//!   more than that: as soon as an unfinished line reaches the limit it reports `line_too_long`
//!   without waiting for a newline that may never come (a peer streaming garbage cannot make us
//!   allocate without bound);
//! - after `line_too_long` the decoder is finished: the server closes the connection.
//!
//! Lines that fit entirely inside one read are parsed straight out of the read buffer; only a
//! line split across reads is copied.

use crate::protocol::{parse_request, ErrorCode, Inbound, Rejection};

/// The default `--max-line` (`PROTOCOL.md`, section 7).
pub const DEFAULT_MAX_LINE: usize = 65536;

/// Incremental decoder for one connection.
#[derive(Debug)]
pub struct LineDecoder {
    /// The start of a line whose newline has not arrived yet. Never longer than `max_line - 1`.
    partial: Vec<u8>,
    /// The longest line allowed, newline included.
    max_line: usize,
    /// Set once a line was too long: the stream can no longer be framed, nothing more comes out.
    failed: bool,
}

impl LineDecoder {
    /// A decoder enforcing `max_line` (bytes, newline included; at least 2 to fit `{}`-sized
    /// nothing plus `\n`, values below are raised to 2).
    pub fn new(max_line: usize) -> Self {
        LineDecoder {
            partial: Vec::new(),
            max_line: max_line.max(2),
            failed: false,
        }
    }

    /// Feeds one chunk of bytes; the returned iterator yields one [`Inbound`] per complete line.
    ///
    /// Consume the iterator fully: bytes after the last yielded line are only kept once the
    /// iterator has walked past them. (Stopping early is fine when the connection is closing.)
    pub fn feed<'a>(&'a mut self, input: &'a [u8]) -> Lines<'a> {
        Lines {
            decoder: self,
            input,
        }
    }

    /// Bytes held for an unfinished line.
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// Whether a `line_too_long` was reported (the connection must be closed).
    pub fn has_failed(&self) -> bool {
        self.failed
    }

    fn too_long(&mut self) -> Inbound {
        self.failed = true;
        self.partial = Vec::new();
        Err(Rejection::new(
            ErrorCode::LineTooLong,
            format!(
                "line longer than {} bytes; closing the connection",
                self.max_line
            ),
        ))
    }
}

/// The lines found in one chunk, see [`LineDecoder::feed`].
pub struct Lines<'a> {
    decoder: &'a mut LineDecoder,
    /// The part of the chunk not yet looked at.
    input: &'a [u8],
}

impl Iterator for Lines<'_> {
    type Item = Inbound;

    fn next(&mut self) -> Option<Inbound> {
        let decoder = &mut *self.decoder;
        loop {
            if decoder.failed || self.input.is_empty() {
                return None;
            }
            let Some(newline) = memchr::memchr(b'\n', self.input) else {
                // No newline: keep the tail for the next read, unless it is already too long
                // (adding the newline would make it `max_line + 1` bytes or more).
                if decoder.partial.len() + self.input.len() >= decoder.max_line {
                    self.input = &[];
                    return Some(decoder.too_long());
                }
                decoder.partial.extend_from_slice(self.input);
                self.input = &[];
                return None;
            };
            let piece = &self.input[..newline];
            self.input = &self.input[newline + 1..];
            if decoder.partial.len() + piece.len() + 1 > decoder.max_line {
                return Some(decoder.too_long());
            }
            // Zero-copy when the whole line arrived in this chunk.
            let line: &[u8] = if decoder.partial.is_empty() {
                piece
            } else {
                decoder.partial.extend_from_slice(piece);
                &decoder.partial
            };
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let parsed = if line.is_empty() {
                None // blank lines are ignored
            } else {
                Some(parse_request(line))
            };
            decoder.partial.clear();
            if let Some(parsed) = parsed {
                return Some(parsed);
            }
        }
    }
}

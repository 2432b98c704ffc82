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
//! line split across reads is copied. [`LineDecoder::feed_ref`] goes one step further: the
//! requests it yields point into the read buffer (see [`RequestRef`]).

use crate::protocol::{
    parse_request, parse_request_ref, ErrorCode, Inbound, InboundRef, Rejection, Request,
    RequestRef,
};
use std::borrow::Cow;

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
        Framed::new(self, input)
    }

    /// [`feed`](Self::feed), with each request borrowing its strings from `input` (see
    /// [`RequestRef`]): what a server that hands each line to the Hub at
    /// once uses. A line that began in an earlier chunk is parsed from the decoder's own copy,
    /// which the next line overwrites, so its request gets strings of its own.
    pub fn feed_ref<'d, 'a>(&'d mut self, input: &'a [u8]) -> LinesRef<'d, 'a> {
        Framed::new(self, input)
    }

    /// [`feed`](Self::feed) without the parsing: each complete line as bytes (without its
    /// `\n` and a final `\r`), or the `line_too_long` that ends the stream. For a server whose
    /// lines are not all chat-core requests (the extensions exercise parses its own): the same
    /// framing rules, not a second copy of them. A line that came whole in `input` is borrowed
    /// from it; one that spanned reads is copied out of the decoder's buffer.
    pub fn feed_lines<'d, 'a>(&'d mut self, input: &'a [u8]) -> RawLines<'d, 'a> {
        Framed::new(self, input)
    }

    /// Bytes held for an unfinished line.
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// Whether a `line_too_long` was reported (the connection must be closed).
    pub fn has_failed(&self) -> bool {
        self.failed
    }

    fn too_long(&mut self) -> Rejection {
        self.failed = true;
        self.partial = Vec::new();
        Rejection::new(
            ErrorCode::LineTooLong,
            format!(
                "line longer than {} bytes; closing the connection",
                self.max_line
            ),
        )
    }
}

/// Where the next complete line is.
enum Next<'a> {
    /// Entirely inside the chunk: parse it from there.
    InInput(&'a [u8]),
    /// Its start came in an earlier chunk: it is in `partial`, to be parsed, then cleared.
    InPartial,
    /// Over `--max-line`: the decoder has failed.
    TooLong(Rejection),
}

impl LineDecoder {
    /// Finds the next complete, non-blank line in `input` (and advances `input` past it), or
    /// keeps the unfinished tail in `partial`. The one place the framing rules live; [`Framed`]
    /// hands what it finds to an [`Interpret`], the one thing the three ways of feeding differ in.
    fn next_line<'a>(&mut self, input: &mut &'a [u8]) -> Option<Next<'a>> {
        loop {
            if self.failed || input.is_empty() {
                return None;
            }
            let Some(newline) = memchr::memchr(b'\n', input) else {
                // No newline: keep the tail for the next read, unless it is already too long
                // (adding the newline would make it `max_line + 1` bytes or more).
                if self.partial.len() + input.len() >= self.max_line {
                    *input = &[];
                    return Some(Next::TooLong(self.too_long()));
                }
                self.partial.extend_from_slice(input);
                *input = &[];
                return None;
            };
            let piece = &input[..newline];
            *input = &input[newline + 1..];
            if self.partial.len() + piece.len() + 1 > self.max_line {
                return Some(Next::TooLong(self.too_long()));
            }
            // Zero-copy when the whole line arrived in this chunk.
            let next = if self.partial.is_empty() {
                Next::InInput(strip_cr(piece))
            } else {
                self.partial.extend_from_slice(piece);
                if self.partial.last() == Some(&b'\r') {
                    self.partial.pop();
                }
                Next::InPartial
            };
            let blank = match next {
                Next::InInput(line) => line.is_empty(),
                _ => self.partial.is_empty(),
            };
            if !blank {
                return Some(next);
            }
            // Blank lines are ignored.
        }
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A decoder with the default `--max-line`: what `std::mem::take` leaves in a connection while
/// its own decoder is lent out.
impl Default for LineDecoder {
    fn default() -> Self {
        LineDecoder::new(DEFAULT_MAX_LINE)
    }
}

/// The lines found in one chunk, each one made into what `I` makes of it (see [`Interpret`]).
pub struct Framed<'d, 'a, I> {
    decoder: &'d mut LineDecoder,
    /// The part of the chunk not yet looked at.
    input: &'a [u8],
    interpret: std::marker::PhantomData<I>,
}

impl<'d, 'a, I> Framed<'d, 'a, I> {
    fn new(decoder: &'d mut LineDecoder, input: &'a [u8]) -> Self {
        Framed {
            decoder,
            input,
            interpret: std::marker::PhantomData,
        }
    }
}

/// What an iterator makes of each complete line.
pub trait Interpret<'a> {
    type Value;
    /// A line that came whole in the chunk: it may borrow from it.
    fn whole(line: &'a [u8]) -> Result<Self::Value, Rejection>;
    /// A line that spanned reads, in the decoder's buffer, which is reused for the next one.
    fn split(line: &[u8]) -> Result<Self::Value, Rejection>;
}

/// [`LineDecoder::feed`]: requests with strings of their own.
pub enum Owned {}
/// [`LineDecoder::feed_ref`]: requests borrowing from the chunk where they can.
pub enum Borrowed {}
/// [`LineDecoder::feed_lines`]: the lines themselves.
pub enum Raw {}

impl Interpret<'_> for Owned {
    type Value = Request;
    fn whole(line: &[u8]) -> Inbound {
        parse_request(line)
    }
    fn split(line: &[u8]) -> Inbound {
        parse_request(line)
    }
}

impl<'a> Interpret<'a> for Borrowed {
    type Value = RequestRef<'a>;
    fn whole(line: &'a [u8]) -> InboundRef<'a> {
        parse_request_ref(line)
    }
    fn split(line: &[u8]) -> InboundRef<'a> {
        // Owned: the decoder's buffer is reused for the next unfinished line.
        parse_request(line).map(RequestRef::from)
    }
}

impl<'a> Interpret<'a> for Raw {
    type Value = Cow<'a, [u8]>;
    fn whole(line: &'a [u8]) -> Result<Cow<'a, [u8]>, Rejection> {
        Ok(Cow::Borrowed(line))
    }
    fn split(line: &[u8]) -> Result<Cow<'a, [u8]>, Rejection> {
        Ok(Cow::Owned(line.to_vec()))
    }
}

/// See [`LineDecoder::feed`].
pub type Lines<'a> = Framed<'a, 'a, Owned>;
/// See [`LineDecoder::feed_ref`].
pub type LinesRef<'d, 'a> = Framed<'d, 'a, Borrowed>;
/// See [`LineDecoder::feed_lines`].
pub type RawLines<'d, 'a> = Framed<'d, 'a, Raw>;

impl<'a, I: Interpret<'a>> Iterator for Framed<'_, 'a, I> {
    type Item = Result<I::Value, Rejection>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(match self.decoder.next_line(&mut self.input)? {
            Next::InInput(line) => I::whole(line),
            Next::InPartial => {
                let item = I::split(&self.decoder.partial);
                self.decoder.partial.clear();
                item
            }
            Next::TooLong(rejection) => Err(rejection),
        })
    }
}

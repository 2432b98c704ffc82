//! Cutting a connection's byte stream into lines, with the `--max-line` limit of PROTOCOL.md.
//!
//! chat-core's `LineDecoder` does this *and* parses each line into a request; the extensions need
//! the line itself (a `password`, a `history`, a `file` are not requests chat-core knows), so
//! this server frames the lines and lets the extension layer decide who parses them.

use chat_core::{ErrorCode, Rejection};

/// One connection's unfinished line, between two reads.
#[derive(Debug)]
pub struct Framing {
    /// The start of a line whose newline has not come yet (less than `max_line` bytes).
    partial: Vec<u8>,
    /// The longest line allowed, newline included.
    max_line: usize,
    /// A line was too long: the stream cannot be framed any more, nothing else comes out.
    failed: bool,
}

/// A complete line (without `\n` and a final `\r`), or `line_too_long`.
pub type Line = Result<Vec<u8>, Rejection>;

impl Framing {
    pub fn new(max_line: usize) -> Self {
        Framing {
            partial: Vec::new(),
            max_line: max_line.max(2),
            failed: false,
        }
    }

    /// The complete lines in `bytes`, in order (blank lines are skipped); what is left of an
    /// unfinished line is kept for the next call. A line over the limit ends the stream with one
    /// `line_too_long`, as soon as the limit is passed, without waiting for its newline.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Vec<Line> {
        let mut lines = Vec::new();
        while !self.failed && !bytes.is_empty() {
            let Some(newline) = bytes.iter().position(|&b| b == b'\n') else {
                if self.partial.len() + bytes.len() >= self.max_line {
                    lines.push(Err(self.too_long()));
                } else {
                    self.partial.extend_from_slice(bytes);
                }
                break;
            };
            let (piece, rest) = (&bytes[..newline], &bytes[newline + 1..]);
            bytes = rest;
            if self.partial.len() + piece.len() + 1 > self.max_line {
                lines.push(Err(self.too_long()));
                break;
            }
            let mut line = std::mem::take(&mut self.partial);
            line.extend_from_slice(piece);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if !line.is_empty() {
                lines.push(Ok(line));
            }
        }
        lines
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines split across reads come out whole; `\r\n` and blank lines are handled; a line past
    /// the limit is refused before its newline arrives, and nothing comes out after it.
    #[test]
    fn frames_lines_within_the_limit() {
        let mut framing = Framing::new(8);
        assert!(framing.feed(b"ab").is_empty());
        let lines = framing.feed(b"c\r\n\nde\n");
        assert_eq!(lines, [Ok(b"abc".to_vec()), Ok(b"de".to_vec())]);
        // Seven bytes may still end with their newline (8 bytes, the limit); eight cannot.
        assert!(framing.feed(b"1234567").is_empty());
        let lines = framing.feed(b"8");
        assert!(matches!(&lines[..], [Err(r)] if r.code == ErrorCode::LineTooLong));
        assert!(framing.feed(b"x\n").is_empty());
        let mut framing = Framing::new(8);
        assert_eq!(framing.feed(b"1234567\n"), [Ok(b"1234567".to_vec())]);
    }
}

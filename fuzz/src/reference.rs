//! The reference line splitter the decoder target compares `LineDecoder` with.
//!
//! It sees the whole stream at once, so it needs no buffer and no state between reads: it is
//! the spec's framing rules written as plainly as possible.
//!
//! - A line ends at `\n`; one `\r` right before it is dropped; empty lines are ignored.
//! - A line may be at most `max_line` bytes including its `\n`. A line is too long as soon as
//!   `max_line` of its bytes arrived without a newline among them: that is the point at which
//!   the spec wants `line_too_long`, and nothing is framed after it.

/// What the stream turns into, in order.
#[derive(Debug)]
pub enum Piece {
    /// A non-empty line (without its `\n` and final `\r`), complete once `end` bytes of the
    /// stream (its `\n` included) have arrived.
    Line { bytes: Vec<u8>, end: usize },
    /// A line reached the limit once `at` bytes of the stream had arrived.
    TooLong { at: usize },
}

impl Piece {
    /// How many bytes of the stream must have arrived for this piece to come out.
    pub fn complete_at(&self) -> usize {
        match self {
            Piece::Line { end, .. } => *end,
            Piece::TooLong { at, .. } => *at,
        }
    }
}

/// The stream, split.
#[derive(Debug)]
pub struct Split {
    pub pieces: Vec<Piece>,
    /// Where a line became too long, if one did.
    pub too_long_at: Option<usize>,
    /// The offset just past every `\n` that ended a line (blank ones too) before any overflow.
    line_ends: Vec<usize>,
}

impl Split {
    /// Where the line that is unfinished after `offset` bytes started (0, or just past the last
    /// `\n` within the first `offset` bytes).
    pub fn line_start_before(&self, offset: usize) -> usize {
        self.line_ends
            .iter()
            .rev()
            .find(|&&end| end <= offset)
            .copied()
            .unwrap_or(0)
    }
}

/// Splits `stream` as a server with `--max-line max_line` must (values below 2 count as 2, as
/// `LineDecoder::new` documents).
pub fn split(stream: &[u8], max_line: usize) -> Split {
    let max_line = max_line.max(2);
    let mut pieces = Vec::new();
    let mut line_ends = Vec::new();
    let mut start = 0;
    loop {
        // The newline must come within the line's first `max_line` bytes.
        let window_end = (start + max_line).min(stream.len());
        match stream[start..window_end].iter().position(|&b| b == b'\n') {
            Some(at) => {
                let newline = start + at;
                let mut line = &stream[start..newline];
                if let Some(stripped) = line.strip_suffix(b"\r") {
                    line = stripped;
                }
                if !line.is_empty() {
                    pieces.push(Piece::Line {
                        bytes: line.to_vec(),
                        end: newline + 1,
                    });
                }
                start = newline + 1;
                line_ends.push(start);
            }
            None if start + max_line <= stream.len() => {
                let at = start + max_line;
                pieces.push(Piece::TooLong { at });
                return Split {
                    pieces,
                    too_long_at: Some(at),
                    line_ends,
                };
            }
            None => {
                return Split {
                    pieces,
                    too_long_at: None,
                    line_ends,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The boundary: `max_line - 1` bytes plus `\n` fit; `max_line` bytes without a newline do
    /// not, and the overflow is known at that byte, before any newline.
    #[test]
    fn limit_counts_the_newline() {
        let split4 = split(b"abc\nabcd\n", 4);
        assert!(matches!(&split4.pieces[0], Piece::Line { bytes, end: 4 } if bytes == b"abc"));
        assert!(matches!(split4.pieces[1], Piece::TooLong { at: 8 }));
        assert_eq!(split4.too_long_at, Some(8));
        let partial = split(b"ab\r\n\n\r\nxyz", 4);
        assert_eq!(partial.pieces.len(), 1);
        assert_eq!(partial.too_long_at, None);
        assert_eq!(partial.line_start_before(10), 7);
    }
}

//! Fuzz target: `chat_core::LineDecoder` against a reference line splitter.
//!
//! The fuzzer picks a `--max-line`, a byte stream and the sizes of the reads that deliver it.
//! The same stream is cut into lines by [`reference::split`], a few obvious lines of code that
//! know nothing about reads, and after *every* read the decoder must agree with it:
//!
//! - the same lines, in the same order, each parsed exactly as `parse_request` parses the
//!   reference's line (blank lines skipped, one final `\r` dropped): the split into reads
//!   changes nothing;
//! - `line_too_long` exactly when the spec says: as soon as the bytes of one line reach
//!   `--max-line` without its newline (a line may be `--max-line` bytes *including* the `\n`),
//!   not earlier, not later, and nothing after it;
//! - it never buffers `--max-line` bytes or more, and holds exactly the unfinished line's bytes.

#![no_main]

use arbitrary::Arbitrary;
use chat_core::{parse_request, ErrorCode, LineDecoder};
use chat_core_fuzz::reference::{self, Piece};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    /// `--max-line`, reduced to 0..300 so the limit is hit often (0 and 1 are raised to 2 by
    /// the decoder; the reference does the same).
    max_line: u16,
    /// The sizes of the reads, used in turn (0: an empty read; none: one read of everything).
    reads: Vec<u16>,
    /// The bytes the peer sends.
    stream: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let max_line = usize::from(input.max_line % 300);
    let expected = reference::split(input.stream, max_line);
    let mut decoder = LineDecoder::new(max_line);
    let mut next = 0; // the next expected piece
    let mut offset = 0; // stream bytes fed so far
    for read in reads(&input.reads, input.stream.len()) {
        let end = offset + read;
        for got in decoder.feed(&input.stream[offset..end]) {
            let Some(want) = expected.pieces.get(next) else {
                panic!("the decoder yielded {got:?} after every expected line");
            };
            assert!(
                want.complete_at() <= end,
                "yielded {got:?} after {end} bytes, but its line is only complete at {}",
                want.complete_at()
            );
            match want {
                Piece::Line { bytes, .. } => assert_eq!(got, parse_request(bytes), "line {next}"),
                Piece::TooLong { .. } => assert!(
                    matches!(&got, Err(r) if r.code == ErrorCode::LineTooLong),
                    "expected line_too_long, got {got:?}"
                ),
            }
            next += 1;
        }
        offset = end;
        // Everything complete by now has come out: nothing is held back for a later read.
        if let Some(want) = expected.pieces.get(next) {
            assert!(
                want.complete_at() > offset,
                "after {offset} bytes the decoder still holds back {want:?}"
            );
        }
        let failed = expected.too_long_at.is_some_and(|at| at <= offset);
        assert_eq!(
            decoder.has_failed(),
            failed,
            "has_failed after {offset} bytes"
        );
        let held = if failed {
            0
        } else {
            offset - expected.line_start_before(offset)
        };
        assert_eq!(decoder.buffered(), held, "bytes held after {offset} bytes");
        assert!(
            decoder.buffered() < max_line.max(2),
            "holds {} bytes with --max-line {max_line}",
            decoder.buffered()
        );
    }
    assert_eq!(offset, input.stream.len());
    assert_eq!(next, expected.pieces.len(), "lines missing at the end");
});

/// The read sizes that deliver `total` bytes: `sizes` in turn (each below 512), or one read.
fn reads(sizes: &[u16], total: usize) -> Vec<usize> {
    let sizes: Vec<usize> = sizes.iter().map(|&s| usize::from(s % 512)).collect();
    if sizes.iter().all(|&s| s == 0) {
        return vec![total];
    }
    let mut out = Vec::new();
    let mut left = total;
    for &size in sizes.iter().cycle() {
        if left == 0 {
            break;
        }
        let size = size.min(left);
        out.push(size);
        left -= size;
    }
    out
}

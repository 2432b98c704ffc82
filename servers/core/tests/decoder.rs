//! The line decoder: partial reads, many frames per read, `\r\n`, blank lines, the size limit.

use chat_core::{ErrorCode, Inbound, LineDecoder, Request, RequestRef};
use proptest::prelude::*;
use std::borrow::Cow;

/// Feeds `chunks` in order to one decoder, collecting what `feed` takes out of each.
fn through<T>(
    max_line: usize,
    chunks: &[&[u8]],
    mut feed: impl FnMut(&mut LineDecoder, &[u8], &mut Vec<T>),
) -> Vec<T> {
    let mut decoder = LineDecoder::new(max_line);
    let mut out = Vec::new();
    for chunk in chunks {
        feed(&mut decoder, chunk, &mut out);
    }
    out
}

fn decode_chunks(max_line: usize, chunks: &[&[u8]]) -> Vec<Inbound> {
    through(max_line, chunks, |decoder, chunk, out| {
        out.extend(decoder.feed(chunk))
    })
}

/// The same with `feed_ref`, each borrowed request turned owned.
fn decode_chunks_ref(max_line: usize, chunks: &[&[u8]]) -> Vec<Inbound> {
    through(max_line, chunks, |decoder, chunk, out| {
        out.extend(
            decoder
                .feed_ref(chunk)
                .map(|l| l.map(RequestRef::into_owned)),
        )
    })
}

/// The same chunks through `feed_lines`: the lines themselves, owned.
fn lines_of_chunks(max_line: usize, chunks: &[&[u8]]) -> Vec<Result<Vec<u8>, ErrorCode>> {
    through(max_line, chunks, |decoder, chunk, out| {
        out.extend(
            decoder
                .feed_lines(chunk)
                .map(|l| l.map(Cow::into_owned).map_err(|r| r.code)),
        )
    })
}

const PING: &[u8] = b"{\"type\":\"ping\"}";

/// Many frames in one read, `\r\n` endings, blank lines skipped.
#[test]
fn many_frames_per_read_crlf_and_blank_lines() {
    let input = b"{\"type\":\"ping\",\"id\":1}\r\n\n\r\n{\"type\":\"quit\"}\n{\"type\":\"ping\"";
    let out = decode_chunks(1024, &[input]);
    assert_eq!(out.len(), 2);
    assert!(matches!(out[1], Ok(Request::Quit)));
}

/// A line split over reads (byte by byte) is reassembled; the tail waits for its newline.
#[test]
fn partial_reads_are_reassembled() {
    let mut decoder = LineDecoder::new(1024);
    let mut frames = Vec::new();
    for byte in PING {
        frames.extend(decoder.feed(std::slice::from_ref(byte)));
    }
    assert!(frames.is_empty());
    assert_eq!(decoder.buffered(), PING.len());
    frames.extend(decoder.feed(b"\n"));
    assert_eq!(frames, vec![Ok(Request::Ping { id: None })]);
    assert_eq!(decoder.buffered(), 0);
}

/// A line of exactly `max_line` bytes (newline included) passes; one byte more fails.
#[test]
fn limit_includes_the_newline() {
    let pad = |len: usize| {
        let mut line = b"{\"type\":\"ping\",\"x\":\"".to_vec();
        line.resize(len - 3, b'a');
        line.extend_from_slice(b"\"}\n");
        line
    };
    let exact = pad(100);
    assert_eq!(exact.len(), 100);
    assert!(decode_chunks(100, &[&exact])[0].is_ok());
    let over = pad(101);
    let out = decode_chunks(100, &[&over]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].as_ref().unwrap_err().code, ErrorCode::LineTooLong);
}

/// An over-long line is reported before its newline arrives, and nothing beyond the limit is
/// ever buffered; after that the decoder yields nothing more.
#[test]
fn overlong_line_reported_without_newline_and_never_buffered() {
    let mut decoder = LineDecoder::new(64);
    let out: Vec<_> = decoder.feed(&[b'x'; 40]).collect();
    assert!(out.is_empty());
    assert_eq!(decoder.buffered(), 40);
    let out: Vec<_> = decoder.feed(&[b'x'; 40]).collect();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].as_ref().unwrap_err().code, ErrorCode::LineTooLong);
    assert!(decoder.has_failed());
    assert_eq!(decoder.buffered(), 0);
    assert!(decoder.feed(b"{\"type\":\"ping\"}\n").next().is_none());
}

/// Invalid UTF-8 spoils only its own line.
#[test]
fn invalid_utf8_is_reported_per_line() {
    let out = decode_chunks(1024, &[b"\xff\xfe\n{\"type\":\"ping\"}\n"]);
    assert_eq!(out[0].as_ref().unwrap_err().code, ErrorCode::BadRequest);
    assert_eq!(out[1], Ok(Request::Ping { id: None }));
}

proptest! {
    /// Any split of a byte stream into chunks decodes to the same frames as the whole stream.
    #[test]
    fn any_split_decodes_the_same(
        lines in prop::collection::vec(
            prop_oneof![
                Just(b"{\"type\":\"ping\",\"id\":1}".to_vec()),
                Just(b"{\"type\":\"message\",\"content\":\"h\xc3\xa9llo \xf0\x9f\xa6\x80\"}".to_vec()),
                Just(b"".to_vec()),
                Just(b"garbage\xff".to_vec()),
                Just(b"{\"type\":\"quit\"}\r".to_vec()),
                prop::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..40),
            ],
            0..20,
        ),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
    ) {
        let stream: Vec<u8> = lines.iter().flat_map(|l| l.iter().copied().chain([b'\n'])).collect();
        let whole = decode_chunks(64, &[&stream]);
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        points.sort();
        let mut chunks = Vec::new();
        let mut start = 0;
        for p in points {
            chunks.push(&stream[start..p]);
            start = p;
        }
        chunks.push(&stream[start..]);
        prop_assert_eq!(decode_chunks(64, &chunks), whole.clone());
        prop_assert_eq!(decode_chunks_ref(64, &chunks), whole.clone());
        // Unparsed, the same lines: one per frame, each the request's bytes.
        let lines = lines_of_chunks(64, &chunks);
        prop_assert_eq!(lines.clone(), lines_of_chunks(64, &[&stream]));
        prop_assert_eq!(lines.len(), whole.len());
        for (line, frame) in lines.iter().zip(&whole) {
            match (line, frame) {
                (Ok(bytes), parsed) => {
                    prop_assert_eq!(&chat_core::protocol::parse_request(bytes), parsed)
                }
                (Err(code), Err(rejection)) => prop_assert_eq!(*code, rejection.code),
                (Err(code), Ok(request)) => prop_assert!(false, "{code:?} for {request:?}"),
            }
        }
    }
}

/// `feed_ref` borrows a line that came whole in one read, and copies only one that spanned two
/// reads (its bytes sat in the decoder, which the next line reuses).
#[test]
fn feed_ref_borrows_whole_lines_and_owns_split_ones() {
    let mut decoder = LineDecoder::new(1024);
    let chunk = b"{\"type\":\"message\",\"content\":\"whole\"}\n{\"type\":\"message\",\"con";
    let lines: Vec<_> = decoder.feed_ref(chunk).collect();
    assert!(matches!(
        &lines[..],
        [Ok(RequestRef::Message {
            content: Cow::Borrowed("whole"),
            ..
        })]
    ));
    let lines: Vec<_> = decoder.feed_ref(b"tent\":\"split\"}\n").collect();
    assert!(matches!(
        &lines[..],
        [Ok(RequestRef::Message { content: Cow::Owned(c), .. })] if c == "split"
    ));
}

/// `feed_lines` hands out the lines themselves: split across reads, `\r\n` and blank lines
/// handled, a line past the limit refused before its newline comes, and nothing after it.
#[test]
fn feed_lines_frames_without_parsing() {
    let mut decoder = LineDecoder::new(8);
    assert_eq!(decoder.feed_lines(b"ab").count(), 0);
    let lines: Vec<_> = decoder.feed_lines(b"c\r\n\nnojson\n").collect();
    assert!(matches!(&lines[..], [Ok(Cow::Owned(a)), Ok(Cow::Borrowed(b"nojson"))] if a == b"abc"));
    // Seven bytes may still end with their newline (8 bytes, the limit); eight cannot.
    assert_eq!(decoder.feed_lines(b"1234567").count(), 0);
    let lines: Vec<_> = decoder.feed_lines(b"8\nnext\n").collect();
    assert!(
        matches!(&lines[..], [Err(r)] if r.code == ErrorCode::LineTooLong),
        "{lines:?}"
    );
    assert_eq!(decoder.feed_lines(b"more\n").count(), 0);
}

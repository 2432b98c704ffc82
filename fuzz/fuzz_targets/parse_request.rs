//! Fuzz target: `chat_core::parse_request` on any bytes.
//!
//! - It never panics, and it agrees with `chat_core_fuzz::spec::judge_request`, the spec's
//!   order of checks written independently on plain JSON values: the same request, or the same
//!   error code (a non-object is `bad_request`; a well-formed object with an unknown `type` is
//!   `unknown_type` whatever its other fields; a known type with a bad field is
//!   `bad_request`).
//! - What parses round-trips: `Request::to_line` gives one line that parses back to the same
//!   request.
//! - A rejection's message is short (client text is never echoed at length) and makes a valid
//!   `error` frame.

#![no_main]

use chat_core::{error_frame, parse_request};
use chat_core_fuzz::events::check_frame;
use chat_core_fuzz::spec::judge_request;
use libfuzzer_sys::fuzz_target;

/// The longest rejection message: a fixed text plus at most 64 bytes of the client's `type`.
const MAX_MESSAGE: usize = 200;

fuzz_target!(|line: &[u8]| {
    let got = parse_request(line);
    let want = judge_request(line);
    match (&got, &want) {
        (Ok(request), Ok(expected)) => {
            assert_eq!(request, expected);
            let encoded = request.to_line();
            let body = encoded.strip_suffix(b"\n").expect("to_line ends with \\n");
            assert!(!body.contains(&b'\n'), "to_line is one line: {encoded:?}");
            assert_eq!(parse_request(body).as_ref(), Ok(request), "round trip");
        }
        (Err(rejection), Err(code)) => {
            assert_eq!(rejection.code, *code, "{rejection:?}");
            assert!(!rejection.code.closes_connection());
            assert!(
                !rejection.message.is_empty() && rejection.message.len() <= MAX_MESSAGE,
                "message of {} bytes: {:?}",
                rejection.message.len(),
                rejection.message
            );
            let frame = error_frame(rejection.code, &rejection.message);
            if let Err(why) = check_frame(&frame) {
                panic!("the error frame is invalid: {why}: {frame:?}");
            }
        }
        _ => panic!("parse_request gave {got:?}, the spec says {want:?}"),
    }
});

//! Which scenarios run over which transport (`--transport tcp|ws`).
//!
//! Most scenarios are about the protocol and run unchanged over both: `wire.rs` makes a line a
//! text message. A few are about TCP's byte stream itself — how a line is cut out of it — and
//! have no WebSocket meaning, since there the frame *is* the message: they are skipped over
//! WebSocket, each with its reason, and the `ws.*` scenarios (`websocket.rs`) check what
//! WebSocket has instead. Every name here is checked against the scenario list by a test.

/// Scenarios skipped over WebSocket: a name (or a prefix ending in `.`) and why.
pub(crate) const TCP_ONLY: &[(&str, &str)] = &[
    (
        "framing.crlf",
        "`\\r\\n` line ends are TCP framing; over WebSocket a message has no line end",
    ),
    (
        "framing.blank_lines_ignored",
        "blank lines are TCP framing; over WebSocket there are no lines between messages",
    ),
    (
        "framing.several_frames_one_write",
        "coalesced lines are TCP framing; over WebSocket each message is framed on its own",
    ),
    (
        "framing.byte_by_byte",
        "a line split over many writes is TCP framing; WebSocket frames carry their length",
    ),
    (
        "framing.line_at_limit",
        "the line limit in bytes, newline and `\\r` included, is TCP's; ws.message_at_limit checks \
         a message",
    ),
    (
        "framing.line_over_limit",
        "the line limit is TCP's; ws.message_over_limit_closes_1008 checks a message",
    ),
    (
        "framing.long_line_without_newline",
        "a line without its newline is TCP framing; a WebSocket frame announces its length",
    ),
    (
        "framing.line_over_limit_while_sending",
        "the line limit is TCP's, and so is a reset; a WebSocket close frame ends a connection \
         on purpose",
    ),
    (
        "close.half_close_gets_every_reply",
        "half-close (shutdown(SHUT_WR)) is TCP's; a WebSocket close frame ends both directions \
         (RFC 6455, section 5.5.1)",
    ),
    (
        "limits.slowloris",
        "dribbling the bytes of a line attacks the line decoder; over WebSocket the frame decoder \
         is the library's",
    ),
    (
        "echo.split_line",
        "a line split over many writes is TCP framing",
    ),
    (
        "echo.coalesced_lines",
        "coalesced lines are TCP framing",
    ),
    (
        "echo.half_close",
        "half-close (shutdown(SHUT_WR)) is TCP's; a WebSocket close frame ends both directions",
    ),
];

/// Why `name` is skipped over WebSocket, if it is.
pub(crate) fn tcp_only(name: &str) -> Option<&'static str> {
    TCP_ONLY
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, why)| *why)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name in the list is a real scenario (a renamed scenario must not silently run over
    /// WebSocket).
    #[test]
    fn every_tcp_only_name_is_a_scenario() {
        use super::super::{all_scenarios, Profile};
        let mut names: Vec<&str> = all_scenarios(true, true, Profile::Chat, &[])
            .iter()
            .map(|s| s.name)
            .collect();
        names.extend(
            all_scenarios(false, true, Profile::Echo, &[])
                .iter()
                .map(|s| s.name),
        );
        for (name, _) in TCP_ONLY {
            assert!(names.contains(name), "{name} is not a scenario");
        }
    }
}

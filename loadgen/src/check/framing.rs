//! Framing: how bytes become lines. `\r\n`, blank lines, several frames in one write, one frame
//! over many writes, unknown fields, the `--max-line` limit, binary garbage.

use super::client::{expect_ts_near_now, Client, Line};
use super::{Ctx, Need, Scenario};
use serde_json::json;
use std::net::Shutdown;
use std::time::{Duration, Instant};

pub(crate) fn scenarios() -> Vec<Scenario> {
    use Need::MaxLine;
    let s = |name, needs, run| Scenario { name, needs, run };
    vec![
        s("framing.crlf", &[], crlf),
        s("framing.blank_lines_ignored", &[], blank_lines),
        s(
            "framing.several_frames_one_write",
            &[],
            several_frames_one_write,
        ),
        s("framing.byte_by_byte", &[], byte_by_byte),
        s("framing.unknown_fields_ignored", &[], unknown_fields),
        s("framing.garbage_bytes", &[], garbage_bytes),
        s("framing.line_at_limit", &[MaxLine], line_at_limit),
        s("framing.line_over_limit", &[MaxLine], line_over_limit),
        s(
            "framing.long_line_without_newline",
            &[MaxLine],
            long_line_without_newline,
        ),
        s(
            "framing.line_over_limit_while_sending",
            &[MaxLine],
            line_over_limit_while_sending,
        ),
    ]
}

fn crlf(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "crlf")?;
    client.send_raw(b"{\"type\":\"ping\",\"id\":1}\r\n")?;
    client.expect(&json!({"type": "pong", "id": 1}))?;
    let (nickname, room) = (ctx.fresh("crlf"), ctx.fresh("room"));
    let join = format!(
        "{}\r\n",
        json!({"type": "join", "nickname": nickname, "room": room})
    );
    client.send_raw(join.as_bytes())?;
    // The `\r` must not end up in the nickname or the room.
    client.expect(&json!({"type": "welcome", "nickname": nickname, "room": room}))?;
    Ok(())
}

fn blank_lines(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "blank")?;
    client.send_raw(b"\n\r\n\n")?;
    client.expect_silence(Duration::from_millis(300))?;
    client.send_raw(b"\n\n\r\n\n{\"type\":\"ping\",\"id\":\"after-blanks\"}\n\r\n")?;
    // Blank lines get no reply at all: the pong is the first frame, and nothing follows it.
    client.expect(&json!({"type": "pong", "id": "after-blanks"}))?;
    client.still_works()
}

fn several_frames_one_write(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "batch")?;
    let (nickname, room) = (ctx.fresh("batch"), ctx.fresh("room"));
    let mut bytes = String::new();
    bytes += &format!("{}\n", json!({"type": "ping", "id": 1}));
    bytes += &format!(
        "{}\n",
        json!({"type": "join", "nickname": nickname, "room": room})
    );
    bytes += &format!(
        "{}\n",
        json!({"type": "message", "content": "in one write", "id": 2})
    );
    bytes += &format!("{}\n", json!({"type": "ping", "id": 3}));
    client.send_raw(bytes.as_bytes())?;
    client.expect(&json!({"type": "pong", "id": 1}))?;
    client.expect(&json!({"type": "welcome", "nickname": nickname}))?;
    client.expect(&json!({"type": "broadcast", "content": "in one write", "id": 2}))?;
    client.expect(&json!({"type": "pong", "id": 3}))?;
    Ok(())
}

fn byte_by_byte(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "trickle")?;
    let (nickname, room) = (ctx.fresh("trickle"), ctx.fresh("room"));
    let line = format!(
        "{}\r\n{}\n",
        json!({"type": "join", "nickname": nickname, "room": room}),
        json!({"type": "message", "content": "slow 李雷 🦀", "id": "split"})
    );
    // One byte per write (with TCP_NODELAY, most become separate segments), which also splits
    // the multi-byte characters and the `\r\n`.
    for (i, byte) in line.as_bytes().iter().enumerate() {
        client.send_raw(&[*byte])?;
        if i % 16 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    client.expect(&json!({"type": "welcome", "nickname": nickname, "room": room}))?;
    client.expect(&json!({"type": "broadcast", "content": "slow 李雷 🦀", "id": "split"}))?;
    Ok(())
}

fn unknown_fields(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "future")?;
    client.send(&json!({"type": "ping", "id": 5, "extra": [1, 2], "nested": {"x": null}}))?;
    client.expect(&json!({"type": "pong", "id": 5}))?;
    let (nickname, room) = (ctx.fresh("future"), ctx.fresh("room"));
    client.send(&json!({"type": "join", "nickname": nickname, "room": room, "color": "blue"}))?;
    client.expect(&json!({"type": "welcome", "nickname": nickname, "room": room}))?;
    client.send(&json!({"type": "message", "content": "hi", "from": "someone-else", "ts": 1}))?;
    // `from` is always the sender's registered nickname: a client cannot speak as someone else.
    let frame = client.expect(&json!({"type": "broadcast", "from": nickname, "content": "hi"}))?;
    expect_ts_near_now(&frame) // the server's clock, not the client's `ts`
}

fn garbage_bytes(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "garbage")?;
    // Every byte value except the newline, in a scrambled order, as one line.
    let garbage: Vec<u8> = (0..=255u8)
        .map(|b| b.wrapping_mul(167).wrapping_add(13))
        .filter(|&b| b != b'\n')
        .collect();
    for _ in 0..3 {
        let mut line = garbage.clone();
        line.push(b'\n');
        client.send_raw(&line)?;
        client.expect_error("bad_request")?;
    }
    client.still_works()
}

/// A ping padded with an unknown field to exactly `len` bytes, `\n` included.
fn padded_ping(len: usize, id: &str) -> Result<Vec<u8>, String> {
    let bare = format!("{{\"type\":\"ping\",\"id\":\"{id}\",\"pad\":\"\"}}\n");
    let pad = len.checked_sub(bare.len()).ok_or_else(|| {
        format!(
            "--max-line {len} is too small to test with (at least {} needed)",
            bare.len()
        )
    })?;
    Ok(format!(
        "{{\"type\":\"ping\",\"id\":\"{id}\",\"pad\":\"{}\"}}\n",
        "x".repeat(pad)
    )
    .into_bytes())
}

fn max_line(ctx: &Ctx) -> usize {
    ctx.config.max_line.unwrap_or(usize::MAX)
}

fn line_at_limit(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "long")?;
    client.send_raw(&padded_ping(max_line(ctx), "at-limit")?)?;
    client.expect(&json!({"type": "pong", "id": "at-limit"}))?;
    // With `\r\n`, the same length is still within the limit (the `\r` is part of the line).
    let mut line = padded_ping(max_line(ctx) - 1, "crlf-limit")?;
    line.insert(line.len() - 1, b'\r');
    client.send_raw(&line)?;
    client.expect(&json!({"type": "pong", "id": "crlf-limit"}))?;
    Ok(())
}

fn line_over_limit(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "long")?;
    client.send_raw(&padded_ping(max_line(ctx) + 1, "over")?)?;
    client.expect_error("line_too_long")?;
    client.expect_closed()
}

/// Connects and sends one byte more than the limit, with no newline.
fn send_unfinished_line(ctx: &Ctx, label: &str) -> Result<Client, String> {
    let mut client = Client::connect(ctx, label)?;
    let mut line = padded_ping(max_line(ctx) + 2, label)?;
    line.pop();
    client.send_raw(&line)?;
    Ok(client)
}

fn long_line_without_newline(ctx: &Ctx) -> Result<(), String> {
    // One byte more than the limit and no newline: the server must not wait for one.
    let mut client = send_unfinished_line(ctx, "endless")?;
    client
        .expect_error("line_too_long")
        .map_err(|e| format!("{e} (a line past the limit must be refused before its newline)"))?;
    client.expect_closed()
}

/// A client still sending when its line is refused (the rest of a long line) reads the
/// `line_too_long`, then an orderly EOF: no reset. A server that closes a socket whose input it
/// has not read makes the kernel answer with a reset, and a reset can overtake the error line
/// (`nc` then prints nothing). So the server half-closes and reads on, dropping what it reads,
/// until the client hangs up: a lingering close.
fn line_over_limit_while_sending(ctx: &Ctx) -> Result<(), String> {
    let mut client = send_unfinished_line(ctx, "flood")?;
    // More of the same line, well past what the server reads before it answers, a little at a
    // time, so that a reset (if the server sends one) arrives while the client is still sending.
    let more = vec![b'x'; 8192];
    for _ in 0..32 {
        client.send_raw(&more).map_err(|e| {
            format!("{e} (the server reset the connection while the client was still sending)")
        })?;
        std::thread::sleep(Duration::from_millis(5));
    }
    client.expect_error("line_too_long")?;
    client
        .writer()?
        .shutdown(Shutdown::Write)
        .map_err(|e| format!("flood: shutdown(SHUT_WR) failed: {e}"))?;
    let deadline = Instant::now() + client.timeout();
    match client.next_line(deadline)? {
        Line::Closed(how) if how == "EOF" => Ok(()),
        Line::Closed(how) => Err(format!(
            "flood: after `line_too_long`, the connection ended with \"{how}\" instead of an \
             orderly EOF: a close with the client's input unread sends a reset, which can \
             overtake the error line"
        )),
        Line::Timeout => Err(format!(
            "flood: the connection stayed open {} ms after `line_too_long` and the client's \
             FIN",
            client.timeout().as_millis()
        )),
        Line::Bytes(bytes) => Err(format!(
            "flood: after `line_too_long`, expected the connection to close, got {}",
            String::from_utf8_lossy(&bytes)
        )),
    }
}

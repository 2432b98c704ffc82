//! What WebSocket adds to the protocol (PROTOCOL.md, section 9), checked with `--transport ws`:
//! a text message is one frame, a binary message or text that is not UTF-8 is a `bad_request`,
//! `--max-line` bounds a message, control frames follow RFC 6455, and the server's closes
//! carry the close code of their reason (1000 `quit`, 1008 `idle_timeout` and `line_too_long`,
//! 1013 `server_full`; 1001 `shutting_down` needs the process, see `process.rs`).

use super::client::Client;
use super::limits::fill_to_max_conns;
use super::{Ctx, Need, Scenario};
use crate::ws::{self, Opcode};
use serde_json::json;
use std::time::Instant;

pub(crate) fn scenarios() -> Vec<Scenario> {
    use Need::{IdleTimeout, MaxConns, MaxLine, WebSocket};
    let s = |name, needs, run| Scenario { name, needs, run };
    vec![
        s("ws.fragmented_message", &[WebSocket], fragmented_message),
        s(
            "ws.binary_message_is_bad_request",
            &[WebSocket],
            binary_message,
        ),
        s("ws.invalid_utf8_is_bad_request", &[WebSocket], invalid_utf8),
        s("ws.ping_gets_pong", &[WebSocket], control_ping),
        s(
            "ws.message_at_limit",
            &[WebSocket, MaxLine],
            message_at_limit,
        ),
        s(
            "ws.message_over_limit_closes_1008",
            &[WebSocket, MaxLine],
            message_over_limit,
        ),
        s("ws.quit_closes_1000", &[WebSocket], quit_closes_1000),
        s("ws.client_close_is_answered", &[WebSocket], client_close),
        s(
            "ws.idle_timeout_closes_1008",
            &[WebSocket, IdleTimeout],
            idle_timeout_closes_1008,
        ),
        s(
            "ws.server_full_closes_1013",
            &[WebSocket, MaxConns],
            server_full_closes_1013,
        ),
    ]
}

/// The server ended the connection with close code `code`.
fn expect_close_code(client: &mut Client, code: u16) -> Result<(), String> {
    client.expect_closed()?;
    match client.close_code() {
        Some(got) if got == code => Ok(()),
        got => Err(format!(
            "{}: expected the WebSocket close code {code}, got {}",
            client.label,
            got.map_or("no close frame".to_string(), |c| c.to_string())
        )),
    }
}

/// One request sent as three fragments (text, continuation, continuation) is one request.
fn fragmented_message(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "fragments")?;
    let mut writer = client.writer()?;
    let line = json!({"type": "ping", "id": "in three pieces"}).to_string();
    let (a, rest) = line.as_bytes().split_at(5);
    let (b, c) = rest.split_at(7);
    let mut frames = Vec::new();
    let mut keys = ws::MaskKeys::new(3);
    ws::push_frame(&mut frames, Opcode::Text, false, a, Some(keys.next_key()));
    ws::push_frame(
        &mut frames,
        Opcode::Continuation,
        false,
        b,
        Some(keys.next_key()),
    );
    ws::push_frame(
        &mut frames,
        Opcode::Continuation,
        true,
        c,
        Some(keys.next_key()),
    );
    writer
        .write_whole(&frames)
        .map_err(|e| format!("sending fragments failed: {e}"))?;
    client.expect(&json!({"type": "pong", "id": "in three pieces"}))?;
    Ok(())
}

/// A binary message gets `bad_request`, and the connection goes on.
fn binary_message(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "binary")?;
    let mut writer = client.writer()?;
    let ping = json!({"type": "ping", "id": 1}).to_string();
    writer
        .send_frame(Opcode::Binary, ping.as_bytes())
        .map_err(|e| format!("sending a binary message failed: {e}"))?;
    client.expect_error("bad_request")?;
    client.still_works()
}

/// A text message that is not UTF-8 gets `bad_request`, like a line that is not, and the
/// connection goes on.
fn invalid_utf8(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "latin1")?;
    client.send_raw(b"{\"type\":\"ping\",\"id\":\"caf\xe9\"}")?;
    client.expect_error("bad_request")?;
    client.still_works()
}

/// A WebSocket ping (a control frame, not the protocol's `ping`) gets a pong with its payload;
/// it is no request, so nothing else comes.
fn control_ping(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "control")?;
    let mut raw = client.writer()?;
    raw.send_frame(Opcode::Ping, b"are you there")
        .map_err(|e| format!("sending a ping frame failed: {e}"))?;
    let pong = client.expect_control_pong(Instant::now() + ctx.timeout())?;
    if pong != b"are you there" {
        return Err(format!(
            "the pong carried {:?}, not the ping's payload",
            String::from_utf8_lossy(&pong)
        ));
    }
    client.still_works()
}

/// A `ping` padded to `len` bytes of JSON.
fn padded_ping(len: usize, id: &str) -> Result<Vec<u8>, String> {
    let bare = json!({"type": "ping", "id": id, "pad": ""})
        .to_string()
        .len();
    if len < bare {
        return Err(format!("--max-line {len} is too small for this scenario"));
    }
    Ok(
        json!({"type": "ping", "id": id, "pad": "x".repeat(len - bare)})
            .to_string()
            .into_bytes(),
    )
}

/// A message just inside `--max-line` is served. (Whether the limit counts a newline a
/// WebSocket message does not have is the server's choice: one byte under the limit is
/// inside either way.)
fn message_at_limit(ctx: &Ctx) -> Result<(), String> {
    let max_line = ctx.config.max_line.unwrap_or(0);
    let mut client = Client::connect(ctx, "long")?;
    client.send_raw(&padded_ping(max_line - 1, "at-limit")?)?;
    client.expect(&json!({"type": "pong", "id": "at-limit"}))?;
    Ok(())
}

/// A message over `--max-line` gets `line_too_long`, then the close code 1008.
fn message_over_limit(ctx: &Ctx) -> Result<(), String> {
    let max_line = ctx.config.max_line.unwrap_or(0);
    let mut client = Client::connect(ctx, "long")?;
    client.send_raw(&padded_ping(max_line + 1, "over")?)?;
    client.expect_error("line_too_long")?;
    expect_close_code(&mut client, ws::CLOSE_POLICY)
}

/// `quit` is answered `bye`, then the close code 1000.
fn quit_closes_1000(ctx: &Ctx) -> Result<(), String> {
    let mut client = Client::connect(ctx, "leaver")?;
    client.send(&json!({"type": "quit"}))?;
    client.expect_event("bye")?;
    expect_close_code(&mut client, ws::CLOSE_NORMAL)
}

/// A client's close frame is answered with a close frame (the closing handshake), and the
/// client's room hears `left`.
fn client_close(ctx: &Ctx) -> Result<(), String> {
    let room = ctx.fresh("room");
    let mut members = super::client::join_group(ctx, &room, &["closer", "witness"])?;
    let mut closer = members.remove(0);
    let mut witness = members.remove(0);
    let mut raw = closer.writer()?;
    raw.send_frame(Opcode::Close, &ws::close_payload(ws::CLOSE_NORMAL, "bye"))
        .map_err(|e| format!("sending a close frame failed: {e}"))?;
    expect_close_code(&mut closer, ws::CLOSE_NORMAL)?;
    witness.expect(&json!({"type": "left", "nickname": closer.label, "room": room}))?;
    Ok(())
}

/// A silent client gets `idle_timeout`, then the close code 1008.
fn idle_timeout_closes_1008(ctx: &Ctx) -> Result<(), String> {
    let idle = ctx.config.idle_timeout.unwrap_or_default();
    let mut client = Client::connect(ctx, "sleeper")?;
    client.set_timeout(idle * 2 + ctx.timeout());
    client.expect_error("idle_timeout")?;
    expect_close_code(&mut client, ws::CLOSE_POLICY)
}

/// One connection past `--max-conns` gets `server_full`, then the close code 1013.
fn server_full_closes_1013(ctx: &Ctx) -> Result<(), String> {
    let _full = fill_to_max_conns(ctx, "ws")?;
    let mut extra = Client::connect_to(ctx, ctx.first(), "one-too-many")?;
    extra.expect_error("server_full")?;
    expect_close_code(&mut extra, ws::CLOSE_TRY_AGAIN_LATER)
}

//! The test server's WebSocket front: a second listener whose connections upgrade at `/ws` and
//! then carry one protocol frame per text message, into the same Hub as the TCP clients
//! (PROTOCOL.md, section 9).
//!
//! The writer side is `conn.rs`'s, which frames each outgoing line as a text message and ends a
//! connection the Hub closed with the close code of its reason. This file is the rest: the
//! handshake, and a reader that turns the client's (masked) frames into requests, answers
//! pings, and takes part in the closing handshake.

use super::conn::{self, Connection, Shared};
use crate::ws::{self, Opcode, Upgrade};
use chat_core::{CloseReason, ConnId, ErrorCode, Outbox, Rejection};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a client may take to send its upgrade request.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a closed connection keeps reading (and discarding), as on TCP.
const LINGER: Duration = Duration::from_secs(2);

/// Accepts WebSocket clients until the server stops; each upgrade runs on its own thread.
pub(super) fn accept_loop(listener: TcpListener, shared: &Arc<Shared>) {
    loop {
        let accepted = listener.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok((stream, _)) = accepted else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let shared = Arc::clone(shared);
        let _ = std::thread::Builder::new()
            .name("testkit-ws-upgrade".into())
            .stack_size(256 * 1024)
            .spawn(move || upgrade(stream, &shared));
    }
}

/// Reads the upgrade request, answers it, and hands the connection to the Hub.
fn upgrade(mut stream: TcpStream, shared: &Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT));
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match ws::accept_upgrade(&head) {
            Upgrade::Incomplete => {}
            Upgrade::Refuse { response, .. } => {
                let _ = stream.write_all(&response);
                return;
            }
            Upgrade::Accept {
                len,
                path,
                response,
            } => {
                if path != ws::DEFAULT_PATH {
                    let _ = stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    return;
                }
                if stream.write_all(&response).is_err() {
                    return;
                }
                let _ = stream.set_read_timeout(None);
                let early = head.split_off(len);
                if let Err(e) = conn::spawn_with(stream, shared, Some(early)) {
                    eprintln!("testkit: cannot start a WebSocket connection's threads: {e}");
                }
                return;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Reads frames and hands each whole text message to the Hub as one request, until the peer
/// goes away or closes; after the Hub closed the connection it keeps discarding input for
/// [`LINGER`].
pub(super) fn read_loop(
    mut stream: TcpStream,
    early: Vec<u8>,
    id: ConnId,
    conn: &Connection,
    shared: &Shared,
) {
    let mut buf = early;
    let mut chunk = vec![0u8; 16 * 1024];
    // The message being put together from its fragments, and whether it is binary.
    let mut message: Vec<u8> = Vec::new();
    let mut binary = None;
    // After line_too_long, a protocol error or a close: input is only discarded.
    let mut done = false;
    let mut closed_at: Option<Instant> = None;
    loop {
        while !done {
            let frame = match ws::parse_frame(&buf, shared.max_line) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) if e.too_long => {
                    // Known from the header: answer before the payload arrives.
                    let rejection = Rejection::new(
                        ErrorCode::LineTooLong,
                        format!("message longer than {} bytes; closing", shared.max_line),
                    );
                    hand_to_hub(shared, id, Err(rejection));
                    done = true;
                    break;
                }
                Err(e) => {
                    conn.push_control(control(
                        Opcode::Close,
                        &ws::close_payload(ws::CLOSE_PROTOCOL_ERROR, &e.reason),
                    ));
                    done = true;
                    break;
                }
            };
            let Some(mask) = frame.mask else {
                conn.push_control(control(
                    Opcode::Close,
                    &ws::close_payload(ws::CLOSE_PROTOCOL_ERROR, "client frames must be masked"),
                ));
                done = true;
                break;
            };
            let mut payload = buf[frame.header..frame.frame_len()].to_vec();
            ws::apply_mask(&mut payload, mask);
            buf.drain(..frame.frame_len());
            match frame.opcode {
                Opcode::Text | Opcode::Binary | Opcode::Continuation => {
                    if frame.opcode != Opcode::Continuation {
                        binary = Some(frame.opcode == Opcode::Binary);
                        message.clear();
                    }
                    message.extend_from_slice(&payload);
                    if !frame.fin {
                        continue;
                    }
                    let inbound = if binary == Some(true) {
                        Err(Rejection::new(
                            ErrorCode::BadRequest,
                            "a binary message; every request is a JSON object in a text message",
                        ))
                    } else if message.len() + 1 > shared.max_line {
                        done = true;
                        Err(Rejection::new(
                            ErrorCode::LineTooLong,
                            format!("message longer than {} bytes; closing", shared.max_line),
                        ))
                    } else {
                        chat_core::parse_request(&message)
                    };
                    hand_to_hub(shared, id, inbound);
                }
                Opcode::Ping => conn.push_control(control(Opcode::Pong, &payload)),
                Opcode::Pong => {}
                Opcode::Close => {
                    // The closing handshake: answer with the same code, then the room hears
                    // `left` and the connection ends.
                    let (code, _) = ws::parse_close(&payload);
                    let answer = ws::close_payload(code.unwrap_or(ws::CLOSE_NORMAL), "");
                    conn.push_control(control(Opcode::Close, &answer));
                    done = true;
                }
            }
        }
        if done && closed_at.is_none() {
            closed_at = Some(Instant::now());
            let _ = stream.set_read_timeout(Some(LINGER));
            disconnect(shared, id);
            conn.close_after_flush();
        }
        if closed_at.is_some_and(|at| at.elapsed() >= LINGER) {
            break;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) if !done => buf.extend_from_slice(&chunk[..n]),
            Ok(_) => {}
        }
    }
    disconnect(shared, id);
    conn.close_after_flush();
    let _ = stream.shutdown(Shutdown::Read);
}

/// One request (or its rejection) through the Hub, its actions carried out.
fn hand_to_hub(shared: &Shared, id: ConnId, inbound: chat_core::Inbound) {
    let mut state = shared.lock();
    let mut out = Outbox::new();
    let super::State { hub, conns } = &mut *state;
    chat_core::handle_lines(hub, id, [inbound], Instant::now(), &mut out, conns);
}

/// The peer is gone: the Hub forgets it (a no-op when the Hub closed it itself).
fn disconnect(shared: &Shared, id: ConnId) {
    let mut state = shared.lock();
    let mut out = Outbox::new();
    state.hub.disconnect(id, &mut out);
    state.dispatch(&mut out);
}

/// A server's control frame: a server does not mask.
fn control(opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    ws::frame(opcode, payload, None)
}

/// An outgoing protocol line as one text message (without its newline).
pub(super) fn text_frame(line: &[u8]) -> Vec<u8> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let mut frame = Vec::with_capacity(line.len() + 4);
    ws::push_frame(&mut frame, Opcode::Text, true, line, None);
    frame
}

/// The close frame that ends a connection the Hub closed (PROTOCOL.md, section 9).
pub(super) fn close_frame(reason: CloseReason) -> Vec<u8> {
    let (code, text) = match reason {
        CloseReason::Quit => (ws::CLOSE_NORMAL, "quit"),
        CloseReason::ShuttingDown => (ws::CLOSE_GOING_AWAY, "shutting_down"),
        CloseReason::IdleTimeout => (ws::CLOSE_POLICY, "idle_timeout"),
        CloseReason::LineTooLong => (ws::CLOSE_POLICY, "line_too_long"),
        CloseReason::ServerFull => (ws::CLOSE_TRY_AGAIN_LATER, "server_full"),
    };
    control(Opcode::Close, &ws::close_payload(code, text))
}

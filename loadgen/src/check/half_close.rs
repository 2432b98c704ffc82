//! Half-close (`PROTOCOL.md`, guarantee 7): a client that sends its requests and then shuts down
//! its write side (`shutdown(SHUT_WR)`, what `printf ... | nc -N` does) still receives every
//! reply and every broadcast due to it; then the server closes, and its room hears `left`.
//!
//! An event loop that reads the requests and the EOF in the same turn, and treats the EOF as
//! "close now", loses the replies it had not written yet.

use super::client::join_group;
use super::{Ctx, Scenario};
use serde_json::json;
use std::net::Shutdown;

/// Requests of each kind the half-closing client sends before its FIN.
const REQUESTS: usize = 20;

pub(crate) fn scenarios() -> Vec<Scenario> {
    vec![Scenario {
        name: "close.half_close_gets_every_reply",
        needs: &[],
        run: half_close_gets_every_reply,
    }]
}

fn half_close_gets_every_reply(ctx: &Ctx) -> Result<(), String> {
    let room = ctx.fresh("room");
    // With a one-client-at-a-time server, the client is alone in its room.
    let bases: &[&str] = if ctx.config.single {
        &["closer"]
    } else {
        &["closer", "witness"]
    };
    let mut group = join_group(ctx, &room, bases)?;
    let mut witness = (group.len() > 1).then(|| group.remove(1));
    let mut closer = group.remove(0);
    let closer_name = closer.label.clone();

    // A broadcast the server has handled (its sender got its echo) before the closer's FIN is
    // due to the closer.
    if let Some(witness) = &mut witness {
        witness.send(&json!({"type": "message", "content": "before", "id": "w"}))?;
        witness.expect(&json!({"type": "broadcast", "id": "w"}))?;
    }

    // Pings and messages, all in one write, then our FIN.
    let requests: String = (0..REQUESTS)
        .flat_map(|i| {
            [
                json!({"type": "ping", "id": i}),
                json!({"type": "message", "content": "bye for now", "id": i}),
            ]
        })
        .map(|request| format!("{request}\n"))
        .collect();
    closer.send_raw(requests.as_bytes())?;
    closer
        .writer()?
        .shutdown(Shutdown::Write)
        .map_err(|e| format!("{closer_name}: shutdown(SHUT_WR) failed: {e}"))?;

    if witness.is_some() {
        closer.expect(&json!({"type": "broadcast", "id": "w", "content": "before"}))?;
    }
    for i in 0..REQUESTS {
        closer.expect(&json!({"type": "pong", "id": i}))?;
        closer.expect(&json!({"type": "broadcast", "from": closer_name, "id": i}))?;
    }
    closer.expect_closed().map_err(|e| {
        format!("{e} (after every reply to a client that half-closed, the server closes)")
    })?;

    if let Some(witness) = &mut witness {
        for i in 0..REQUESTS {
            witness.expect(&json!({"type": "broadcast", "from": closer_name, "id": i}))?;
        }
        witness.expect(&json!({"type": "left", "nickname": closer_name, "room": room}))?;
        witness.still_works()?;
    }
    Ok(())
}

//! Fuzz target: the Hub, driven by a sequence of operations decoded from the fuzzer's bytes.
//!
//! Each operation is what a server does: accept a connection, hand the Hub a line (a request
//! built from arbitrary fields, or arbitrary bytes through `parse_request`, or the decoder's
//! `line_too_long`), report a disconnect, let time pass and tick, shut down. After every one,
//! `chat_core_fuzz::model::Model` judges the Outbox (see its docs for the full list): every
//! frame a valid event for an open connection, nothing after a `Close`, exactly one reply per
//! line and the right one, notifications to exactly the right members, member lists and counts
//! as the model tracked them, nicknames unique ignoring case, idle timeouts exactly on time.

#![no_main]

use chat_core::{ConnId, Hub, Outbox};
use chat_core_fuzz::hub_input::{Input, Op};
use chat_core_fuzz::model::Model;
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

fuzz_target!(|input: Input<'_>| {
    let config = input.config.hub_config();
    let mut hub = Hub::new(config.clone());
    let mut model = Model::new(&config, Instant::now());
    let mut ids: Vec<ConnId> = Vec::new(); // every id handed out, open or not
    let mut out = Outbox::new();
    for (step, op) in input.ops.iter().enumerate() {
        let now = model.now;
        let verdict = match op {
            Op::Connect => {
                let id = hub.connect(now, &mut out);
                ids.push(id);
                model
                    .collect(out.actions(), Some(id))
                    .and_then(|got| model.on_connect(id, &got))
            }
            Op::Request { conn, .. } | Op::Line { conn, .. } | Op::LineTooLong { conn } => {
                let Some(&id) = pick(&ids, *conn) else {
                    continue;
                };
                let Some(inbound) = op.inbound() else {
                    continue;
                };
                hub.handle(id, inbound.clone(), now, &mut out);
                model
                    .collect(out.actions(), None)
                    .and_then(|got| model.on_handle(id, &inbound, &got))
            }
            Op::Disconnect { conn } => {
                let Some(&id) = pick(&ids, *conn) else {
                    continue;
                };
                hub.disconnect(id, &mut out);
                model
                    .collect(out.actions(), None)
                    .and_then(|got| model.on_disconnect(id, &got))
            }
            Op::Tick { advance_ms } => {
                model.now += Duration::from_millis(u64::from(*advance_ms));
                let next = hub.tick(model.now, &mut out);
                model
                    .collect(out.actions(), None)
                    .and_then(|got| model.on_tick(next, &got))
            }
            Op::Shutdown => {
                hub.shutdown(&mut out);
                model
                    .collect(out.actions(), None)
                    .and_then(|got| model.on_shutdown(&got))
            }
        };
        let verdict = verdict.and_then(|()| model.check_hub(&hub, &ids));
        if let Err(why) = verdict {
            panic!("step {step}, {op:?}: {why}");
        }
        out.drain();
    }
});

/// The connection an operation addresses: any id handed out so far (closed ones too, to test
/// late input).
fn pick(ids: &[ConnId], index: u8) -> Option<&ConnId> {
    if ids.is_empty() {
        return None;
    }
    ids.get(usize::from(index) % ids.len())
}

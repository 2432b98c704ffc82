//! The CPU side, on the rayon pool: split each peer's bytes into lines, parse each line into a
//! request, run the chat rules.
//!
//! A reactor hands over [`Batch`]es: everything it read from one peer since that peer's last
//! batch, *together with the peer's [`LineDecoder`]*. Moving the decoder is how "one batch in
//! flight per connection" is enforced by the type system rather than by discipline: while a
//! worker owns the decoder, the reactor has none to give to a second worker, so it keeps
//! buffering until the decoder comes back in [`Mail::BatchesDone`]. Two workers can therefore
//! never handle the same connection's lines at once, and replies leave in request order
//! (guarantee 1).
//!
//! A hand-off is not free: the job is allocated and queued, a sleeping worker is woken (a
//! `futex` call and a context switch), and the replies come back through a channel and another
//! wake-up. So a reactor hands off once per *loop turn*, not once per peer: all the batches of
//! the turn, split into at most `--workers` jobs. Under load a turn has many ready peers and
//! the cost is shared by all of them (the same idea as one `writev` for all of a peer's frames).
//!
//! What runs where, and why:
//! - splitting and JSON parsing run *outside* the lock, on as many workers as there are: this
//!   is the part that grows with the size of the requests, and the part that parallelises;
//! - the Hub calls run *inside* the lock, one job at a time: they are short, and serialising
//!   them is what gives every room one order (guarantee 2). (The Hub encodes each event as it
//!   decides it, so encoding happens under the lock too; a broadcast is encoded once per room,
//!   not once per member.)

use crate::shared::{Mail, Shared};
use chat_core::{ConnId, InboundRef, LineDecoder};
use mio::Token;
use std::sync::Arc;
use std::time::Instant;

/// One peer's input on its way to a worker.
pub struct Batch {
    pub token: Token,
    pub id: ConnId,
    /// The peer's decoder: it holds the unfinished line from the previous batch.
    pub decoder: LineDecoder,
    /// Bytes read since the previous batch.
    pub bytes: Vec<u8>,
}

/// Sends one loop turn's batches to the pool, in at most `--workers` jobs. The decoders come
/// back to `reactor`'s mailbox.
pub fn spawn_jobs(
    shared: &Arc<Shared>,
    pool: &rayon::ThreadPool,
    reactor: usize,
    mut batches: Vec<Batch>,
) {
    let per_job = batches.len().div_ceil(pool.current_num_threads());
    while !batches.is_empty() {
        let rest = batches.split_off(per_job.min(batches.len()));
        let job = std::mem::replace(&mut batches, rest);
        let shared = Arc::clone(shared);
        pool.spawn(move || {
            let decoders = run_batches(&shared, job);
            // Sent after `run_batches` posted the replies, from this same thread: the reactor
            // gets the replies first, then the decoders.
            shared.mail(reactor, Mail::BatchesDone(decoders));
        });
    }
}

/// Parses every batch, runs the chat rules for all of them, and returns the decoders. Runs on
/// a worker, or on the reactor itself when a hand-off would cost more than it saves.
pub fn run_batches(shared: &Shared, mut batches: Vec<Batch>) -> Vec<(Token, ConnId, LineDecoder)> {
    // Parsing first, without the lock: each worker parses its own peers' lines at once. The
    // requests borrow their strings from the batches' bytes.
    let parsed: Vec<(ConnId, Vec<InboundRef<'_>>)> = batches
        .iter_mut()
        .map(|batch| (batch.id, batch.decoder.feed_ref(&batch.bytes).collect()))
        .collect();
    shared.handle(parsed, Instant::now());
    batches
        .into_iter()
        .map(|batch| (batch.token, batch.id, batch.decoder))
        .collect()
}

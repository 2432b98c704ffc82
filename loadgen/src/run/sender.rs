//! The sending half of a connection: open loop on a fixed schedule (the default), or closed
//! loop, one message in flight.

use super::codec::Outgoing;
use super::driver::{Plan, Shared};
use super::stats::Counters;
use super::workload::MsgId;
use super::Workload;
use std::sync::atomic::Ordering;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::WriteHalf;
use tokio::sync::Notify;

/// Sends on schedule until `send_until_us`; returns why it stopped early, if it did.
pub(crate) async fn send_loop(
    shared: &Shared,
    plan: &Plan,
    conn: u32,
    mut socket: WriteHalf<'_>,
    ack: &Notify,
) -> Option<String> {
    let layout = &shared.layout;
    let room = layout.room_name(layout.room_of(conn as usize));
    let partner = plan
        .membership
        .partner(layout, conn)
        .map(|p| layout.nickname(p as usize));
    let target = match shared.workload {
        Workload::Idle => return None,
        Workload::Chat => Outgoing::Room(&room),
        Workload::Ping => Outgoing::Ping,
        Workload::Private => match &partner {
            Some(nick) => Outgoing::Private(nick),
            None => return None, // alone in its room: nobody to write to
        },
    };
    let copies = plan.copies_per_message(shared, conn);
    let mut batch = Batch {
        shared,
        plan,
        conn,
        target,
        copies,
        buf: Vec::new(),
        id: String::new(),
        lags: Vec::new(),
        measured: 0,
        count: 0,
    };
    match shared.rate {
        Some(rate) => open_loop(&mut batch, &mut socket, rate).await,
        None => closed_loop(&mut batch, &mut socket, ack).await,
    }
}

/// Open loop (wrk2's discipline): message k of connection c is due at
/// `start + phase(c) + k / rate`, whatever happened to the previous ones. A generator that
/// falls behind sends the overdue messages at once, each stamped with the time it was *due*, so
/// the delay it suffered is measured instead of hidden (coordinated omission).
async fn open_loop(batch: &mut Batch<'_>, socket: &mut WriteHalf<'_>, rate: f64) -> Option<String> {
    let (shared, plan) = (batch.shared, batch.plan);
    let interval = 1e6 / rate;
    // Spread the connections' phases evenly over one interval: no thundering herd.
    let phase = interval * batch.conn as f64 / shared.layout.conns as f64;
    let due = |k: u64| plan.start_us + (phase + k as f64 * interval) as u64;
    let mut k = 0u64;
    while due(k) < plan.send_until_us {
        let intended = due(k);
        if intended > shared.clock.now_us() {
            tokio::time::sleep_until(shared.clock.instant(intended).into()).await;
        }
        let now = shared.clock.now_us();
        if now >= plan.send_until_us {
            break;
        }
        while due(k) <= now && due(k) < plan.send_until_us {
            batch.push(k, due(k), now);
            k += 1;
        }
        if let Err(e) = batch.flush(socket, k).await {
            return Some(e);
        }
    }
    // Messages of the measured window the generator never got out: it could not keep up.
    let unsent = (k..)
        .map(due)
        .take_while(|&t| t < plan.send_until_us)
        .filter(|&t| plan.measured(t))
        .count();
    Counters::add(&shared.counters.unsent_measured, unsent as u64);
    None
}

/// Closed loop: one message in flight per connection; the next leaves when the previous one's
/// acknowledgement arrives. Maximum throughput, but a stalled server simply receives fewer
/// messages, and the stall hides in a handful of samples.
async fn closed_loop(
    batch: &mut Batch<'_>,
    socket: &mut WriteHalf<'_>,
    ack: &Notify,
) -> Option<String> {
    let (shared, plan) = (batch.shared, batch.plan);
    tokio::time::sleep_until(shared.clock.instant(plan.start_us).into()).await;
    let until = shared.clock.instant(plan.send_until_us);
    let mut k = 0u64;
    loop {
        let now = shared.clock.now_us();
        if now >= plan.send_until_us {
            return None;
        }
        batch.push(k, now, now);
        k += 1;
        if let Err(e) = batch.flush(socket, k).await {
            return Some(e);
        }
        tokio::select! {
            _ = ack.notified() => {}
            _ = tokio::time::sleep_until(until.into()) => return None,
        }
    }
}

/// Messages encoded but not yet written, and their bookkeeping.
struct Batch<'a> {
    shared: &'a Shared,
    plan: &'a Plan,
    conn: u32,
    target: Outgoing<'a>,
    copies: u64,
    buf: Vec<u8>,
    id: String,
    lags: Vec<u64>,
    measured: u64,
    count: u64,
}

impl Batch<'_> {
    fn push(&mut self, seq: u64, intended_us: u64, now_us: u64) {
        self.id.clear();
        MsgId {
            sender: self.conn,
            seq,
            intended_us,
            sent_us: now_us,
        }
        .write_to(&mut self.id);
        let codec = self.shared.codec;
        codec.encode(&mut self.buf, self.target, &self.id, &self.shared.padding);
        if self.plan.measured(intended_us) {
            self.measured += 1;
            // Send lag only means something against a schedule (open loop).
            if self.shared.rate.is_some() {
                self.lags.push(now_us - intended_us);
            }
        }
        self.count += 1;
    }

    /// Writes the batch in one go and counts it; `sent_so_far` is the next sequence number.
    async fn flush(&mut self, socket: &mut WriteHalf<'_>, sent_so_far: u64) -> Result<(), String> {
        let counters = &self.shared.counters;
        // Expect the copies before writing: a fast server may answer before we count.
        Counters::add(&counters.expected, self.count * self.copies);
        let written = socket.write_all(&self.buf).await;
        self.buf.clear();
        if let Err(e) = written {
            return Err(format!("write failed: {e}"));
        }
        Counters::add(&counters.sent, self.count);
        Counters::add(&counters.sent_measured, self.measured);
        self.shared.sent[self.conn as usize].store(sent_so_far, Ordering::Relaxed);
        if !self.lags.is_empty() {
            let mut rec = self.shared.recorders.shard(self.conn as usize);
            for &lag in &self.lags {
                rec.send_lag.record(lag);
            }
        }
        self.lags.clear();
        self.measured = 0;
        self.count = 0;
        Ok(())
    }
}

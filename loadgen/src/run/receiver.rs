//! The reading half of a connection: decode what arrives, check each sender's sequence,
//! record latencies.

use super::codec::Incoming;
use super::connect;
use super::driver::{Plan, Shared};
use super::sequence::StreamCheck;
use super::stats::Counters;
use bytes::BytesMut;
use std::collections::HashMap;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::ReadHalf;
use tokio::sync::{watch, Notify};

/// Reads until stopped; returns the per-sender streams and why the connection ended early.
pub(crate) async fn read_loop(
    shared: &Shared,
    plan: &Plan,
    conn: u32,
    mut socket: ReadHalf<'_>,
    (leftover, pending): (&mut BytesMut, Vec<Incoming>),
    ack: &Notify,
    mut stop: watch::Receiver<bool>,
) -> (HashMap<u32, StreamCheck>, Option<String>) {
    let mut receiver = Receiver {
        shared,
        plan,
        conn,
        streams: HashMap::new(),
        round_trips: Vec::new(),
        fanouts: Vec::new(),
        errors: Vec::new(),
    };
    let mut frames = pending;
    let mut buf = std::mem::take(leftover);
    let ended = loop {
        if let Err(e) = shared.codec.decode(&mut buf, &mut frames) {
            break Some(format!("unreadable stream: {e}"));
        }
        receiver.take(&mut frames, ack);
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break None,
            read = socket.read_buf(&mut buf) => match read {
                Ok(0) => break Some("closed by the server".to_string()),
                Ok(_) => {}
                Err(e) => break Some(format!("{} ({e})", connect::io_kind(&e))),
            },
        }
    };
    (receiver.streams, ended)
}

/// The receiving side's bookkeeping for one connection.
struct Receiver<'a> {
    shared: &'a Shared,
    plan: &'a Plan,
    conn: u32,
    streams: HashMap<u32, StreamCheck>,
    /// Samples of this read, recorded under one lock: (corrected, uncorrected) µs.
    round_trips: Vec<(u64, u64)>,
    fanouts: Vec<(u64, u64)>,
    errors: Vec<String>,
}

impl Receiver<'_> {
    fn take(&mut self, frames: &mut Vec<Incoming>, ack: &Notify) {
        if frames.is_empty() {
            return;
        }
        let now = self.shared.clock.now_us();
        let counters = &self.shared.counters;
        let (mut acked, mut acked_measured, mut delivered, mut delivered_measured) = (0, 0, 0, 0);
        let mut unparsed = 0;
        for frame in frames.drain(..) {
            match frame {
                Incoming::Tagged(id) => {
                    self.streams.entry(id.sender).or_default().observe(id.seq);
                    let measured = self.plan.measured(id.intended_us);
                    let sample = (
                        now.saturating_sub(id.intended_us),
                        now.saturating_sub(id.sent_us),
                    );
                    if id.sender == self.conn {
                        acked += 1;
                        if measured {
                            acked_measured += 1;
                            self.round_trips.push(sample);
                        }
                        ack.notify_one();
                    } else {
                        delivered += 1;
                        if measured {
                            delivered_measured += 1;
                            self.fanouts.push(sample);
                        }
                    }
                }
                Incoming::Error(code) => self.errors.push(code),
                Incoming::Unparsed => unparsed += 1,
                Incoming::Ready | Incoming::Other => {}
            }
        }
        Counters::add(&counters.acked, acked);
        Counters::add(&counters.acked_measured, acked_measured);
        Counters::add(&counters.delivered, delivered);
        Counters::add(&counters.delivered_measured, delivered_measured);
        Counters::add(&counters.unparsed, unparsed);
        if self.round_trips.is_empty() && self.fanouts.is_empty() && self.errors.is_empty() {
            return;
        }
        let mut rec = self.shared.recorders.shard(self.conn as usize);
        for (corrected, uncorrected) in self.round_trips.drain(..) {
            rec.round_trip.record(corrected);
            rec.round_trip_uncorrected.record(uncorrected);
        }
        for (corrected, uncorrected) in self.fanouts.drain(..) {
            rec.fanout.record(corrected);
            rec.fanout_uncorrected.record(uncorrected);
        }
        for code in self.errors.drain(..) {
            *rec.errors.entry(code).or_default() += 1;
        }
    }
}

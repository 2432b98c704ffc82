//! One engine thread: a `polling` event loop over its share of the connections.
//!
//! Each turn of the loop does what is due by the clock, then waits for readiness until the next
//! thing is due, then handles what became ready:
//!
//! 1. **Time.** Start the connections the ramp has reached, fail those whose connect or
//!    handshake took too long (`lifecycle.rs`), mark the measured window, and send every
//!    message that is due (`traffic.rs`). Nothing here is a task or a timer object: the ramp is a cursor over the
//!    thread's connections, the timeouts are two queues in deadline order, and the sends are
//!    the ring of `schedule.rs`.
//! 2. **Wait.** For readiness, with a timeout that ends when the next thing is due, in
//!    nanoseconds rather than `epoll_wait`'s whole milliseconds (the ~1 ms late send of a
//!    millisecond timer wheel is what this engine exists to avoid): a short wait is one
//!    `epoll_pwait2` on the poller's descriptor, a long one polling's own (`wait.rs` says why).
//!    Waking up still takes the scheduler a few microseconds; `--spin-us` can wake that much
//!    early and spin to the due time, at the cost of CPU, which the report shows, and the
//!    thread asks for a short scheduler slice so that it need not wait for a busy server's to
//!    end (`slice.rs`).
//! 3. **Readiness.** Finish connects, read what arrived, write what a full socket held back;
//!    between two sockets, send anything that fell due meanwhile, so a long batch of reads
//!    never makes a send late.
//!
//! Sockets are registered level-triggered: one read per readiness (into the thread's one read
//! buffer), and if more is left the next wait reports the socket again, so no read is spent
//! just to hear `EAGAIN`.

use super::codec::{Incoming, MAX_FRAME};
use super::conn::{Churn, Conn, Sends, State};
use super::outcome::ThreadResult;
use super::schedule::Schedule;
use super::shard::{Plan, Shared};
use super::stats::{Live, Recorder, Snapshot, Tally};
use super::wait::Waiter;
use super::workload::clock_ns;
use crate::ws::MaskKeys;
use polling::{Event, Poller};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// The thread's read buffer: room for a frame's unfinished tail plus a large read.
const READ_BUF: usize = MAX_FRAME + 64 * 1024;
/// Readiness events taken per wait.
const EVENTS: usize = 1024;
/// Connects or sends done in one go before the loop looks at the sockets again: a generator
/// that fell far behind must still keep reading.
pub(super) const BATCH: usize = 256;
/// After sending ends, how often a thread checks whether every copy has arrived.
const DRAIN_TICK_US: u64 = 2_000;
/// Once the plan is out, a deadline further away than this needs no timer of the thread's own:
/// the shard's coordinating thread wakes every poller at each boundary of the plan (start,
/// measured window, end), and a wait without a timeout arms no timer when it sleeps. That
/// matters in closed loop, where nothing else is ever due.
const COARSE_US: u64 = 5_000;

/// Runs one engine thread over `conns` (indices in the run) until its share is done.
pub(crate) fn run_thread(
    shared: Arc<Shared>,
    poller: Arc<Poller>,
    conns: Vec<u32>,
) -> Result<ThreadResult, String> {
    let mut lp = EventLoop::new(shared, poller, conns);
    let outcome = lp.run();
    let result = lp.finish();
    outcome.map(|()| result)
}

/// CPU time of the calling thread, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// The CPU figures of the measured window.
#[derive(Debug, Default)]
pub(super) struct Window {
    /// Thread CPU time when the window opened, and how much it used by the time it closed.
    cpu_start_ns: Option<u64>,
    pub(super) cpu_ns: Option<u64>,
    /// Time spent spinning (`--spin-us`) inside the window.
    pub(super) spin_ns: u64,
}

/// One engine thread's state. The fields are shared with `lifecycle.rs` (connecting, joining,
/// failing), `traffic.rs` (sending, receiving) and `outcome.rs` (the thread's result), the
/// other parts of its `impl`.
pub(super) struct EventLoop {
    pub(super) shared: Arc<Shared>,
    pub(super) poller: Arc<Poller>,
    /// This thread's connections in index order; a connection's position is its poller key.
    pub(super) conns: Vec<Conn>,
    /// The next connection the ramp starts.
    pub(super) ramp_next: usize,
    /// Connects and handshakes in progress, by deadline (they start in order, so the queues
    /// stay sorted): (deadline µs, slot).
    pub(super) connecting: VecDeque<(u64, usize)>,
    pub(super) joining: VecDeque<(u64, usize)>,
    /// When the last connection attempt finished.
    pub(super) last_attempt_us: u64,
    /// The thread's one read buffer, one output buffer, one id buffer, one frame list.
    pub(super) read_buf: Box<[u8]>,
    pub(super) out: Vec<u8>,
    pub(super) id_buf: Vec<u8>,
    pub(super) frames: Vec<Incoming>,
    /// WebSocket: the lines of the text messages just read, and the frames about to be written.
    pub(super) lines: Vec<u8>,
    pub(super) ws_out: Vec<u8>,
    /// WebSocket: the masking keys of the frames this thread writes.
    pub(super) mask_keys: MaskKeys,
    /// `--churn`: the churners' turns, and those leaving by deadline (deadline µs, slot,
    /// incarnation).
    pub(super) churn: Option<Schedule>,
    pub(super) leaving: VecDeque<(u64, usize, u32)>,
    /// The first reason a churner could not reconnect, for the report.
    pub(super) churn_failure_example: Option<String>,
    pub(super) tally: Tally,
    pub(super) rec: Recorder,
    /// What this thread has already added to the shard's live counters.
    flushed: (Snapshot, u64),
    pub(super) plan: Option<Arc<Plan>>,
    /// Open loop: the senders' ring.
    pub(super) schedule: Option<Schedule>,
    /// Closed loop: the next connection to send its first message at the start.
    pub(super) closed_start: Option<usize>,
    /// Sending is over for this thread (its `expected` count is final).
    pub(super) done_sending: bool,
    pub(super) window: Window,
    /// How the thread waits (`wait.rs`).
    waiter: Waiter,
    /// The scheduler slice the kernel granted the thread (`slice.rs`), or why not; `None`: it
    /// did not ask.
    pub(super) slice: Option<Result<u64, String>>,
    /// The events of the last wait, kept apart so handling them may borrow the loop.
    ready: Vec<Event>,
}

impl EventLoop {
    /// Made on the engine thread itself: the waiter sets that thread's timer slack, and the
    /// thread asks for its scheduler slice here.
    fn new(shared: Arc<Shared>, poller: Arc<Poller>, indices: Vec<u32>) -> EventLoop {
        let addrs = shared.config.addrs.len();
        let conns: Vec<Conn> = indices
            .iter()
            .map(|&i| {
                let slot = shared
                    .layout
                    .addr_slot(i as usize, addrs, shared.config.spread);
                let mut conn = Conn::new(i, slot);
                if shared.churns(i) {
                    conn.churn = Some(Churn::default());
                }
                conn
            })
            .collect();
        let salt = indices.first().map_or(0, |&i| u64::from(i));
        EventLoop {
            conns,
            ramp_next: 0,
            connecting: VecDeque::new(),
            joining: VecDeque::new(),
            last_attempt_us: 0,
            read_buf: vec![0; READ_BUF].into_boxed_slice(),
            out: Vec::with_capacity(64 * 1024),
            id_buf: Vec::with_capacity(64),
            frames: Vec::with_capacity(256),
            lines: Vec::new(),
            ws_out: Vec::new(),
            mask_keys: MaskKeys::new(salt),
            churn: None,
            leaving: VecDeque::new(),
            churn_failure_example: None,
            tally: Tally::new(addrs),
            rec: Recorder::new(addrs),
            flushed: (Snapshot::default(), 0),
            plan: None,
            schedule: None,
            closed_start: None,
            done_sending: false,
            window: Window::default(),
            waiter: Waiter::new(EVENTS),
            slice: (shared.config.slice_us > 0)
                .then(|| super::slice::ask_for_slice(shared.config.slice_us)),
            ready: Vec::with_capacity(EVENTS),
            poller,
            shared,
        }
    }

    pub(super) fn now_us(&self) -> u64 {
        self.shared.clock.now_us()
    }

    fn run(&mut self) -> Result<(), String> {
        loop {
            if self.plan.is_none() {
                if let Some(plan) = self.shared.plan.get() {
                    self.start_plan(Arc::clone(plan));
                }
            }
            let now = self.now_us();
            self.on_time(now);
            self.flush_live();
            if self.finished(now) {
                return Ok(());
            }
            let deadline = self.next_deadline(now);
            self.wait(now, deadline)?;
            self.on_ready();
        }
    }

    /// Everything due by `now`.
    fn on_time(&mut self, now: u64) {
        self.on_ramp(now);
        self.on_leave_timeouts(now);
        let Some(plan) = self.plan.clone() else {
            return;
        };
        if now >= plan.times.measure_from_us && self.window.cpu_start_ns.is_none() {
            self.window.cpu_start_ns = Some(thread_cpu_ns());
        }
        if now >= plan.times.send_until_us {
            if self.window.cpu_ns.is_none() {
                let start = self.window.cpu_start_ns.unwrap_or_else(thread_cpu_ns);
                self.window.cpu_ns = Some(thread_cpu_ns().saturating_sub(start));
            }
            if !self.done_sending {
                self.end_sending(&plan);
            }
        } else if now >= plan.times.start_us {
            self.send_due(now);
            self.churn_due(now);
        }
    }

    /// The plan arrived: give every joined connection its role and build the schedule.
    fn start_plan(&mut self, plan: Arc<Plan>) {
        let mut ring = Vec::new();
        for slot in 0..self.conns.len() {
            if !self.conns[slot].is_joined() {
                continue;
            }
            let (sends, copies, streams) = self.shared.role(&plan, self.conns[slot].index);
            let conn = &mut self.conns[slot];
            if !matches!(sends, Sends::Nothing) {
                ring.push((slot, conn.index));
            }
            (conn.sends, conn.copies, conn.streams) = (sends, copies, streams);
        }
        let t = plan.times;
        match self.shared.config.rate {
            Some(rate) => {
                self.schedule = Some(Schedule::new(
                    t.start_us..t.send_until_us,
                    rate,
                    self.shared.layout.conns,
                    ring,
                ));
            }
            None => self.closed_start = Some(0),
        }
        self.churn = self.churn_schedule(&plan);
        self.plan = Some(plan);
    }

    /// Sending is over: count what the schedule wanted but never went out.
    fn end_sending(&mut self, plan: &Plan) {
        self.done_sending = true;
        if let Some(schedule) = &self.schedule {
            for conn in &self.conns {
                if matches!(conn.sends, Sends::Nothing) {
                    continue;
                }
                let away = conn.churn.is_some() && !conn.is_sending();
                if !conn.is_joined() && !away {
                    continue;
                }
                let (all, measured) =
                    schedule.remaining(conn.index, conn.next_slot, plan.times.measure_from_us);
                if away {
                    // A churner on its way out or back at the end: its turns are skipped.
                    self.tally.churn.skipped += all;
                    continue;
                }
                self.tally.unsent_measured += measured;
                if !conn.unsent.is_empty() || conn.was_blocked {
                    self.tally.unsent_blocked += measured;
                }
            }
        }
        // Publish the final `expected` before saying this thread is done with it.
        self.flush_live();
        Live::add(&self.shared.live.done_sending, 1);
    }

    /// Whether this thread's share is over.
    fn finished(&self, now: u64) -> bool {
        if self.shared.abort.load(std::sync::atomic::Ordering::Relaxed) {
            return true;
        }
        let Some(plan) = &self.plan else {
            return false;
        };
        if !self.done_sending {
            return false;
        }
        let live = &self.shared.live;
        let all_sent = Live::get(&live.done_sending) == self.shared.threads as u64;
        let all_arrived =
            Live::get(&live.acked) + Live::get(&live.delivered) >= Live::get(&live.expected);
        (all_sent && all_arrived) || now >= plan.times.drain_until_us
    }

    /// When the next thing is due (µs), or `None` when only the sockets (or the parent's plan,
    /// or the shard's wake-up at a boundary of the plan) can bring news.
    fn next_deadline(&self, now: u64) -> Option<u64> {
        let mut next: Option<u64> = None;
        let mut at = |t: u64| next = Some(next.map_or(t, |n: u64| n.min(t)));
        if let Some(conn) = self.conns.get(self.ramp_next) {
            at(self.ramp_due(conn.index, self.shared.config.connect_rate));
        }
        if let Some(&(deadline, _)) = self.connecting.front() {
            at(deadline);
        }
        if let Some(&(deadline, _)) = self.joining.front() {
            at(deadline);
        }
        if let Some(&(deadline, _, _)) = self.leaving.front() {
            at(deadline);
        }
        let Some(plan) = &self.plan else {
            return next;
        };
        let t = plan.times;
        if self.done_sending {
            at((now + DRAIN_TICK_US).min(t.drain_until_us));
        } else if now >= t.start_us {
            if self.closed_start.is_some() {
                at(now);
            } else if let Some(due) = self.schedule.as_ref().and_then(Schedule::next_due) {
                at(due);
            }
            if let Some(due) = self.churn.as_ref().and_then(Schedule::next_due) {
                at(due);
            }
        }
        // The plan's boundaries: the shard wakes every thread at each of them, so a far one
        // needs no timer here (see `COARSE_US`).
        let boundary = if now < t.start_us {
            Some(t.start_us)
        } else if self.window.cpu_start_ns.is_none() {
            Some(t.measure_from_us)
        } else if !self.done_sending {
            Some(t.send_until_us)
        } else {
            None
        };
        if let Some(b) = boundary.filter(|&b| b.saturating_sub(now) <= COARSE_US) {
            at(b);
        }
        next
    }

    /// Waits for readiness until `deadline`, waking `--spin-us` early and spinning the rest.
    fn wait(&mut self, now: u64, deadline: Option<u64>) -> Result<(), String> {
        let spin = self.shared.config.spin_us;
        let timeout = deadline.map(|d| Duration::from_micros(d.saturating_sub(now + spin)));
        self.ready.clear();
        self.waiter
            .wait(&self.poller, timeout, &mut self.ready)
            .map_err(|e| format!("the poller failed: {e}"))?;
        let spin_to = deadline.filter(|&d| {
            spin > 0 && self.ready.is_empty() && d.saturating_sub(self.now_us()) <= spin
        });
        if let Some(due) = spin_to {
            let spin_start = thread_cpu_ns();
            while self.now_us() < due {
                std::hint::spin_loop();
            }
            if self.window.cpu_start_ns.is_some() && self.window.cpu_ns.is_none() {
                self.window.spin_ns += thread_cpu_ns().saturating_sub(spin_start);
            }
        }
        Ok(())
    }

    /// Handles the sockets that became ready, sending whatever falls due in between.
    fn on_ready(&mut self) {
        let ready = std::mem::take(&mut self.ready);
        for event in &ready {
            let slot = event.key;
            if slot >= self.conns.len() {
                continue;
            }
            match self.conns[slot].state {
                State::Connecting { started_us } => self.on_connected(slot, started_us),
                State::Upgrading { .. } | State::Joining { .. } | State::Joined => {
                    if event.writable {
                        self.on_writable(slot);
                    }
                    if event.readable {
                        self.on_readable(slot);
                    }
                }
                State::Waiting | State::Failed(_) | State::Dropped(_) => {}
            }
            if self.schedule.is_some() && !self.done_sending {
                let now = self.now_us();
                if let Some(plan) = &self.plan {
                    if now >= plan.times.start_us && now < plan.times.send_until_us {
                        self.send_due(now);
                    }
                }
            }
        }
        self.ready = ready;
    }

    /// Adds this thread's progress to the shard's live counters.
    fn flush_live(&mut self) {
        let t = &self.tally;
        let now = Snapshot {
            connected: t.connected,
            failed: t.failed,
            dropped: t.dropped,
            sent: t.sent,
            acked: t.acked,
            delivered: t.delivered,
            expected: t.expected,
        };
        let (before, attempts_before) = self.flushed;
        if now == before && t.attempted == attempts_before {
            return;
        }
        let live = &self.shared.live;
        Live::add(&live.connected, now.connected - before.connected);
        Live::add(&live.failed, now.failed - before.failed);
        Live::add(&live.dropped, now.dropped - before.dropped);
        Live::add(&live.sent, now.sent - before.sent);
        Live::add(&live.acked, now.acked - before.acked);
        Live::add(&live.delivered, now.delivered - before.delivered);
        Live::add(&live.expected, now.expected - before.expected);
        // Attempts last: the shard reads it to know the counts above are complete.
        Live::add(&live.attempts_done, t.attempted - attempts_before);
        self.flushed = (now, t.attempted);
    }
}

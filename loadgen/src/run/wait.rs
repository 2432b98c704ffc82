//! One system call per wait.
//!
//! `polling`'s `Poller::wait` is portable, and on Linux it pays for that around every
//! `epoll_wait`: before it, it arms its timerfd and registers it again (two system calls, even
//! for a wait with no timeout); after it, it reads its wake-up eventfd and registers that again
//! (two more). An engine thread waits once for every handful of copies it reads, so at a heavy
//! paced load those four calls were a large part of its CPU, and arming a hardware timer on
//! every wait is dearer still in a virtual machine (benches/results/2026-12-04-threads-slice-wait
//! has the profile).
//!
//! So the engine waits by itself, on the poller's own epoll descriptor, with `epoll_pwait2`
//! (Linux 5.11): one system call, and a timeout in nanoseconds, which is what polling's timerfd
//! was for (`epoll_wait` counts whole milliseconds). The kernel arms a timer only if the thread
//! actually goes to sleep. Two things stay with polling: registering the sockets, and the
//! wake-up (`Poller::notify`, which the shard's coordinator uses at each boundary of the plan).
//! When a wait reports the wake-up, a zero-timeout `Poller::wait` lets polling clear it and arm
//! it again. On a kernel without `epoll_pwait2` every wait is polling's.
//!
//! The kernel also lets a sleep end a little late, to wake several sleepers at once: by the
//! thread's *timer slack* (50 µs by default), or by 0.1 % of the timeout if that is more (0.5 %
//! for a thread with a positive nice value, at most 100 ms), which is 5 ms on a 5 s wait. A
//! generator's job is to be on time, so an engine thread sets its slack to 1 ns, which settles
//! the short waits, the ones a heavy load makes by the thousand. A wait longer than a
//! millisecond ([`EPOLL_UP_TO`]) asks the kernel for less than it wants, by as much as the
//! kernel may add ([`ask_for`]), and waits the rest, now short, if nothing came. (This engine's
//! first `epoll_pwait2` took every wait as it was, and sent late by milliseconds where sends
//! were seconds apart; its second sent the long waits through polling's timerfd, whose four
//! extra calls then came with every wait of a closed-loop run: a connection's join timeout,
//! seconds away, was the next thing due.)

use polling::{Event, Events, Poller};
use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// The longest wait asked of `epoll_pwait2` as it is: its slack is then at most a microsecond
/// (5 for a niced thread). A longer one is asked to end early ([`ask_for`]).
const EPOLL_UP_TO: Duration = Duration::from_millis(1);

/// The most the kernel adds to a sleep (`MAX_SLACK` in its `select_estimate_accuracy`).
const MAX_SLACK: Duration = Duration::from_millis(100);

/// What to ask `epoll_pwait2` for so that a wait of `t` cannot end after `t`: a short wait as it
/// is; a longer one less the most the kernel may add to what is asked (0.5 % of it, the niced
/// thread's share, which covers the 0.1 % of any other; at most [`MAX_SLACK`]).
fn ask_for(t: Duration) -> Duration {
    if t <= EPOLL_UP_TO {
        t
    } else {
        t - (t / 200).min(MAX_SLACK)
    }
}

/// The key polling registers its wake-up under (`usize::MAX`, its `NOTIFY_KEY`); the
/// connections' keys are their slots, far below it.
const NOTIFY_KEY: u64 = u64::MAX;

/// One engine thread's way of waiting; make it on the thread that waits (it sets that thread's
/// timer slack).
pub(super) struct Waiter {
    /// What `epoll_pwait2` fills in.
    buf: Vec<libc::epoll_event>,
    /// What polling's own wait fills in (the wake-up, and every wait on an older kernel).
    events: Events,
    /// `false` once the kernel said it has no `epoll_pwait2`.
    pwait2: bool,
}

impl Waiter {
    /// A waiter taking at most `capacity` events a wait.
    pub(super) fn new(capacity: usize) -> Waiter {
        // SAFETY: PR_SET_TIMERSLACK takes a plain integer and changes only this thread.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
        let capacity = capacity.max(1);
        Waiter {
            buf: Vec::with_capacity(capacity),
            events: Events::with_capacity(capacity.try_into().expect("non-zero")),
            pwait2: true,
        }
    }

    /// Waits until a registered socket is ready, the poller is notified, or `timeout` passes
    /// (`None`: no timeout), and puts what became ready in `ready` (after what it holds). One
    /// `epoll_pwait2`; a long wait that nothing interrupts, a second (see [`ask_for`]).
    pub(super) fn wait(
        &mut self,
        poller: &Poller,
        timeout: Option<Duration>,
        ready: &mut Vec<Event>,
    ) -> io::Result<()> {
        if !self.pwait2 {
            return self.polling_wait(poller, timeout, ready);
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let ask = left.map(ask_for);
            match self.pwait2(poller, ask) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                    self.pwait2 = false;
                    return self.polling_wait(poller, left, ready);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
                Err(e) => return Err(e),
            }
            let events = self.buf.len();
            if self.take(ready) {
                // Let polling clear its wake-up and arm it again.
                return self.polling_wait(poller, Some(Duration::ZERO), ready);
            }
            if events > 0 || ask == left {
                return Ok(());
            }
            // A long wait, asked to end early so as not to end late: wait what is left of it.
        }
    }

    /// `epoll_pwait2` on the poller's descriptor, into `buf`.
    fn pwait2(&mut self, poller: &Poller, timeout: Option<Duration>) -> io::Result<()> {
        let ts = timeout.map(|t| libc::timespec {
            tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: t.subsec_nanos() as libc::c_long,
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        self.buf.clear();
        // SAFETY: the kernel writes at most `capacity` events into `buf`'s spare room, and reads
        // `ts` (or nothing, when null); both live across the call. No signal mask is passed.
        let n = unsafe {
            libc::syscall(
                libc::SYS_epoll_pwait2,
                poller.as_raw_fd(),
                self.buf.as_mut_ptr(),
                self.buf.capacity() as libc::c_int,
                ts_ptr,
                std::ptr::null::<libc::sigset_t>(),
                0usize,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel initialised the first `n` (at most `capacity`) events.
        unsafe { self.buf.set_len(n as usize) };
        Ok(())
    }

    /// Moves the events of `buf` into `ready`, as polling would report them; `true` if the
    /// wake-up was among them.
    fn take(&mut self, ready: &mut Vec<Event>) -> bool {
        const READ: u32 = (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR | libc::EPOLLPRI) as u32;
        const WRITE: u32 = (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) as u32;
        let mut notified = false;
        for ev in &self.buf {
            // Copied out: the struct is packed on x86-64.
            let (flags, key) = (ev.events, ev.u64);
            if key == NOTIFY_KEY {
                notified = true;
            } else {
                ready.push(Event::new(
                    key as usize,
                    flags & READ != 0,
                    flags & WRITE != 0,
                ));
            }
        }
        notified
    }

    /// polling's own wait, into `ready`.
    fn polling_wait(
        &mut self,
        poller: &Poller,
        timeout: Option<Duration>,
        ready: &mut Vec<Event>,
    ) -> io::Result<()> {
        self.events.clear();
        match poller.wait(&mut self.events, timeout) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        ready.extend(self.events.iter());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use polling::PollMode;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;
    use std::time::Instant;

    /// A connected pair of loopback sockets.
    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        (client, server)
    }

    fn keys(ready: &[Event]) -> Vec<(usize, bool, bool)> {
        ready
            .iter()
            .map(|e| (e.key, e.readable, e.writable))
            .collect()
    }

    /// A socket with data to read is reported readable under its key, one with room to write
    /// writable, and a wait with nothing ready ends at its timeout, reporting nothing.
    #[test]
    fn reports_readiness_under_the_keys_polling_registered() {
        let poller = Poller::new().expect("poller");
        let mut waiter = Waiter::new(16);
        let (mut a, b) = pair();
        // SAFETY (polling's contract): `b` is deleted from the poller before it is dropped.
        unsafe { poller.add_with_mode(&b, Event::readable(7), PollMode::Level) }.expect("add");
        let mut ready = Vec::new();
        waiter
            .wait(&poller, Some(Duration::from_millis(5)), &mut ready)
            .expect("wait");
        assert!(ready.is_empty(), "nothing was sent yet: {:?}", keys(&ready));

        a.write_all(b"hello\n").expect("write");
        waiter
            .wait(&poller, Some(Duration::from_secs(5)), &mut ready)
            .expect("wait");
        assert_eq!(keys(&ready), vec![(7, true, false)]);

        ready.clear();
        poller
            .modify_with_mode(&b, Event::all(7), PollMode::Level)
            .expect("modify");
        waiter
            .wait(&poller, Some(Duration::from_secs(5)), &mut ready)
            .expect("wait");
        assert_eq!(
            keys(&ready),
            vec![(7, true, true)],
            "level-triggered: still readable"
        );
        poller.delete(&b).expect("delete");
    }

    /// `Poller::notify` wakes a wait with no timeout, and does so again the next time: the
    /// wake-up is cleared and armed again after each one, as polling's own wait would.
    #[test]
    fn a_notify_wakes_every_wait_not_just_the_first() {
        let poller = Arc::new(Poller::new().expect("poller"));
        let mut waiter = Waiter::new(16);
        for round in 0..3 {
            let notifier = Arc::clone(&poller);
            let wake = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                notifier.notify().expect("notify");
            });
            let start = Instant::now();
            let mut ready = Vec::new();
            waiter
                .wait(&poller, Some(Duration::from_secs(10)), &mut ready)
                .expect("wait");
            let waited = start.elapsed();
            wake.join().expect("notifier");
            assert!(ready.is_empty(), "round {round}: a wake-up is no event");
            assert!(
                waited >= Duration::from_millis(15),
                "round {round}: woken by a wake-up left over, after {waited:?}"
            );
            assert!(
                waited < Duration::from_secs(9),
                "round {round}: the notify did not wake the wait"
            );
        }
    }

    /// A long wait, asked of the kernel shorter than it is, still lasts its whole timeout when
    /// nothing comes, and a notify after it wakes the next wait.
    #[test]
    fn a_long_wait_lasts_its_timeout_and_the_next_notify_still_wakes() {
        let poller = Arc::new(Poller::new().expect("poller"));
        let (done, finished) = std::sync::mpsc::channel();
        let waiting = Arc::clone(&poller);
        std::thread::spawn(move || {
            let mut waiter = Waiter::new(16);
            let mut ready = Vec::new();
            let start = Instant::now();
            waiter
                .wait(&waiting, Some(Duration::from_millis(30)), &mut ready)
                .expect("wait");
            let long = (start.elapsed(), ready.len());
            let start = Instant::now();
            waiter.wait(&waiting, None, &mut ready).expect("wait");
            let _ = done.send((long, start.elapsed(), ready.len()));
        });
        std::thread::sleep(Duration::from_millis(100));
        poller.notify().expect("notify");
        let ((long, long_ready), short, short_ready) = finished
            .recv_timeout(Duration::from_secs(10))
            .expect("the notify did not wake the wait after a long one");
        assert!(
            long >= Duration::from_millis(30),
            "ended before its timeout: {long:?}"
        );
        assert_eq!((long_ready, short_ready), (0, 0), "a wake-up is no event");
        assert!(
            short >= Duration::from_millis(40),
            "a wake-up left over: {short:?}"
        );
    }

    /// What a long wait asks for, plus the most the kernel may add to that (0.1 %, or 0.5 % for
    /// a niced thread, at most 100 ms), never passes the wait's own end; a short one is asked
    /// as it is.
    #[test]
    fn a_long_wait_asks_for_less_by_the_kernels_slack() {
        let ms = Duration::from_millis;
        assert_eq!(ask_for(ms(1)), ms(1));
        assert_eq!(
            ask_for(Duration::from_micros(30)),
            Duration::from_micros(30)
        );
        for t in [
            ms(2),
            ms(30),
            ms(999),
            ms(5_000),
            ms(20_000),
            ms(21_000),
            ms(600_000),
        ] {
            let ask = ask_for(t);
            for share in [1000, 200] {
                let latest = ask + (ask / share).min(MAX_SLACK);
                assert!(latest <= t, "{t:?}: asked {ask:?}, may end at {latest:?}");
            }
            let early = t - ask;
            assert!(
                early <= t / 200 && early <= MAX_SLACK,
                "{t:?}: asked {early:?} early, more than the kernel may add"
            );
        }
    }

    /// The engine thread's timer slack is 1 ns once it made its waiter.
    #[test]
    fn the_waiting_thread_has_no_timer_slack() {
        let slack = std::thread::spawn(|| {
            let _waiter = Waiter::new(1);
            // SAFETY: PR_GET_TIMERSLACK takes no pointer and returns the slack.
            unsafe { libc::prctl(libc::PR_GET_TIMERSLACK, 0, 0, 0, 0) }
        })
        .join()
        .expect("thread");
        assert_eq!(slack, 1);
    }
}

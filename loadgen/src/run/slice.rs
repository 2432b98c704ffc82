//! The engine threads ask the scheduler for a short time slice, so a due send is not kept
//! waiting behind the server.
//!
//! On a machine that runs the server too, a paced send is late when its engine thread wakes up
//! (its timer fired) and finds the core taken: by the server, busy with the last messages, or
//! by the kernel's loopback work. Linux's fair scheduler (EEVDF, since 6.6) orders runnable
//! threads by a virtual deadline, their fair share so far plus their *slice*, and the thread
//! holding a core keeps it until its slice is used up unless the woken one's deadline comes
//! first. The default slice is the same for every thread, so the woken engine thread often
//! waits out the rest of the server's: the milliseconds in the send lag's tail.
//!
//! Since Linux 6.12 a thread may ask for a slice of its own (`sched_setattr` with
//! `sched_runtime`: 100 µs to 100 ms, no privilege needed), and a thread with a shorter slice
//! may preempt on wake-up. That is what a paced sender wants: run soon and briefly. It buys no
//! extra CPU (the share stays fair; the thread just runs in shorter pieces, sooner), and it does
//! not touch the thread's nice value or a real-time policy someone chose with `chrt`. An older
//! kernel accepts the call and keeps its own slice, which the report then shows.
//!
//! `--slice-us` sets the slice (0 leaves the kernel's); the report carries the slice the kernel
//! reports back (`generator.slice_us`), and `benches/results` has the side-by-side runs.

use std::io;

/// The fair-scheduling policies, the only ones a slice applies to.
const FAIR: [u32; 2] = [libc::SCHED_OTHER as u32, libc::SCHED_BATCH as u32];

/// Asks the kernel to run the calling thread in slices of `us` microseconds and returns the
/// slice it reports back, in µs (the kernel clamps the request to its own bounds, and a kernel
/// before 6.12 keeps its default). A thread under a real-time policy is left as it is.
pub(crate) fn ask_for_slice(us: u64) -> Result<u64, String> {
    let mut attr = get().map_err(|e| format!("sched_getattr: {e}"))?;
    if !FAIR.contains(&attr.sched_policy) {
        return Err(format!(
            "the thread runs under scheduling policy {}, which has no slice",
            attr.sched_policy
        ));
    }
    // Everything else as it was (policy, nice); flags 0: the call sets the slice.
    attr.sched_flags = 0;
    attr.sched_runtime = us.saturating_mul(1_000);
    set(&attr).map_err(|e| format!("sched_setattr: {e}"))?;
    let granted = get().map_err(|e| format!("sched_getattr: {e}"))?;
    Ok(granted.sched_runtime / 1_000)
}

/// The calling thread's slice as the kernel reports it, in µs.
#[cfg(test)]
fn current_slice_us() -> io::Result<u64> {
    get().map(|attr| attr.sched_runtime / 1_000)
}

/// `sched_getattr(2)` for the calling thread (glibc has no wrapper).
fn get() -> io::Result<libc::sched_attr> {
    // SAFETY: sched_attr is plain integers, for which all zeroes is a valid value.
    let mut attr: libc::sched_attr = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::sched_attr>() as libc::c_uint;
    // SAFETY: the kernel writes at most `size` bytes into `attr`, which lives across the call.
    let rc = unsafe { libc::syscall(libc::SYS_sched_getattr, 0, &mut attr, size, 0) };
    if rc == 0 {
        Ok(attr)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `sched_setattr(2)` for the calling thread.
fn set(attr: &libc::sched_attr) -> io::Result<()> {
    let mut attr = *attr;
    attr.size = std::mem::size_of::<libc::sched_attr>() as u32;
    // SAFETY: the kernel reads `attr.size` bytes from `attr`, which lives across the call.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's major and minor version, from `uname`.
    fn kernel_version() -> (u32, u32) {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
        let mut parts = release.trim().split(['.', '-']);
        let mut next = || parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        (next(), next())
    }

    /// A thread that asks for a 100 µs slice gets it (on Linux 6.12 and later, where a thread may
    /// have a slice of its own; an older kernel keeps its default, which the report shows),
    /// keeps its policy and nice value, and leaves the other threads alone.
    #[test]
    fn a_thread_gets_the_slice_it_asks_for_and_nothing_else_changes() {
        let untouched = || {
            std::thread::spawn(current_slice_us)
                .join()
                .expect("thread")
                .expect("sched_getattr")
        };
        let default = untouched();
        let (granted, in_kernel) = std::thread::spawn(|| {
            let before = get().expect("sched_getattr");
            let granted = ask_for_slice(100).expect("a slice");
            let after = get().expect("sched_getattr");
            assert_eq!(
                after.sched_nice, before.sched_nice,
                "the nice value is kept"
            );
            assert_eq!(
                after.sched_policy, before.sched_policy,
                "the policy is kept"
            );
            (granted, after.sched_runtime / 1_000)
        })
        .join()
        .expect("thread");
        assert_eq!(granted, in_kernel, "what it reports is what the kernel has");
        if kernel_version() >= (6, 12) {
            assert_eq!(granted, 100, "Linux 6.12+ grants the slice asked for");
            assert_ne!(default, 100, "a thread that did not ask has the default");
        }
        assert_eq!(untouched(), default, "another thread is not changed");
    }

    /// The kernel clamps a slice to its bounds (100 µs at least) rather than refusing it.
    #[test]
    fn a_slice_below_the_kernels_bound_is_clamped() {
        let granted = std::thread::spawn(|| ask_for_slice(1))
            .join()
            .expect("thread")
            .expect("a slice");
        if kernel_version() >= (6, 12) {
            assert_eq!(granted, 100);
        }
    }
}

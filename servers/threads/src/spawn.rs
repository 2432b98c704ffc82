//! Starting a thread without crashing the server: the kernel's limits on threads, checked before
//! we run into them.
//!
//! Most limits are reported by `thread::Builder::spawn` as an error: EAGAIN when the system runs
//! out of process ids (`/proc/sys/kernel/pid_max`), `threads-max` or `ulimit -u`. The server then
//! answers that client `server_full` and carries on. One limit is not reported: each Rust thread
//! takes four memory mappings (its stack and the alternate signal stack std uses to report a
//! stack overflow, each with a guard page), and a process may have `vm.max_map_count` of them
//! (65,530 by default). Past that, the new thread's stack is created but its signal stack cannot
//! be, and std *aborts the whole process* (it happened to this server before the count existed). So every thread is
//! counted here, and a spawn that would pass `--max-threads` fails like EAGAIN would.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::thread;

/// Memory mappings per Rust thread (measured: `/proc/PID/maps` grows by 4 per thread).
const MAPS_PER_THREAD: usize = 4;

/// Mappings left for everything else: the executable and libraries, the heap, malloc's arenas,
/// the stacks glibc keeps cached after threads exit, large allocations.
const RESERVED_MAPS: usize = 5000;

/// Threads started here and still running.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// The most threads allowed at once (`--max-threads`, or what `vm.max_map_count` allows).
static LIMIT: OnceLock<usize> = OnceLock::new();

/// Sets the limit (once, at start; `None`: derived from `vm.max_map_count`). Returns it.
pub fn set_limit(max_threads: Option<usize>) -> usize {
    *LIMIT.get_or_init(|| max_threads.unwrap_or_else(kernel_limit))
}

fn kernel_limit() -> usize {
    let max_maps = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|text| text.trim().parse::<usize>().ok())
        .unwrap_or(65_530);
    max_maps.saturating_sub(RESERVED_MAPS) / MAPS_PER_THREAD
}

/// Starts a named thread with a `stack_size`-byte stack, unless that would pass the limit.
pub fn spawn(
    name: String,
    stack_size: usize,
    body: impl FnOnce() + Send + 'static,
) -> io::Result<()> {
    let limit = set_limit(None);
    if LIVE.fetch_add(1, Ordering::SeqCst) >= limit {
        LIVE.fetch_sub(1, Ordering::SeqCst);
        return Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!("already {limit} threads (--max-threads)"),
        ));
    }
    let spawned = thread::Builder::new()
        .name(name)
        .stack_size(stack_size)
        .spawn(move || {
            let _counted = Live; // uncounts the thread when it ends, even by a panic
            body();
        });
    if spawned.is_err() {
        LIVE.fetch_sub(1, Ordering::SeqCst);
    }
    spawned.map(drop)
}

/// One running thread, uncounted when dropped.
struct Live;

impl Drop for Live {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

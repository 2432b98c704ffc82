//! CPU and memory of the servers under test, from the kernel: `/proc/<pid>/stat` (user +
//! system time in clock ticks) and `/proc/<pid>/status` (`VmRSS`, resident memory).
//!
//! The generator's own CPU is measured by its engine threads themselves
//! (`CLOCK_THREAD_CPUTIME_ID` at the edges of the measured window, see `event_loop.rs`), so
//! that a test server living in the same process is not counted as the generator. Reporting
//! the generator's CPU next to the server's is what tells you whether you measured the server
//! or the load generator.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// One reading of another process.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcSample {
    /// User plus system CPU time.
    pub cpu: Duration,
    /// Resident set size in KiB.
    pub rss_kib: u64,
}

/// Reads `/proc/<pid>`; `None` when the process is gone or this is not Linux.
pub(crate) fn sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: parse after the
    // last ')'. Fields 14 and 15 (utime, stime) are then the 12th and 13th.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let cpu = Duration::from_micros(ticks * 1_000_000 / hz);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some(ProcSample { cpu, rss_kib })
}

/// Open descriptors of `pid`: the entries of `/proc/<pid>/fd`; `None` when it cannot be read.
pub(crate) fn count_fds(pid: u32) -> Option<u64> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(dir.count() as u64)
}

/// Open descriptors of every process of `pids`, added up; `None` when none could be read.
pub(crate) fn count_all_fds(pids: &[u32]) -> Option<u64> {
    let counts: Vec<u64> = pids.iter().filter_map(|&pid| count_fds(pid)).collect();
    (!counts.is_empty()).then(|| counts.iter().sum())
}

/// CPU use over an interval as a percentage of one core (200 = two cores busy).
pub(crate) fn cpu_percent(cpu: Duration, wall: Duration) -> f64 {
    if wall.is_zero() {
        return 0.0;
    }
    (cpu.as_secs_f64() / wall.as_secs_f64() * 1000.0).round() / 10.0
}

/// Reads every process of `pids` and adds them up; `None` when none of them is there.
pub(crate) fn sample_all(pids: &[u32]) -> Option<ProcSample> {
    let samples: Vec<ProcSample> = pids.iter().filter_map(|&pid| sample(pid)).collect();
    (!samples.is_empty()).then(|| ProcSample {
        cpu: samples.iter().map(|s| s.cpu).sum(),
        rss_kib: samples.iter().map(|s| s.rss_kib).sum(),
    })
}

/// Watches the server processes during a run: a baseline before the first connection, and the
/// peak of their resident memory (added up), sampled every 100 ms by a background thread.
pub(crate) struct ServerWatch {
    pub pids: Vec<u32>,
    pub baseline: Option<ProcSample>,
    peak_rss_kib: Arc<AtomicU64>,
    /// Tells the sampler thread to stop.
    stop: Arc<AtomicBool>,
}

impl ServerWatch {
    /// Starts watching `pids`; `None` when there are none to watch.
    pub(crate) fn start(pids: &[u32]) -> Option<ServerWatch> {
        if pids.is_empty() {
            return None;
        }
        let baseline = sample_all(pids);
        let peak_rss_kib = Arc::new(AtomicU64::new(baseline.map_or(0, |s| s.rss_kib)));
        let stop = Arc::new(AtomicBool::new(false));
        let (peak, stopped, watched) =
            (Arc::clone(&peak_rss_kib), Arc::clone(&stop), pids.to_vec());
        let _ = std::thread::Builder::new()
            .name("loadgen-sysstat".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    match sample_all(&watched) {
                        Some(s) => {
                            peak.fetch_max(s.rss_kib, Ordering::Relaxed);
                        }
                        None => return, // the servers are gone
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        Some(ServerWatch {
            pids: pids.to_vec(),
            baseline,
            peak_rss_kib,
            stop,
        })
    }

    pub(crate) fn now(&self) -> Option<ProcSample> {
        let s = sample_all(&self.pids)?;
        self.peak_rss_kib.fetch_max(s.rss_kib, Ordering::Relaxed);
        Some(s)
    }

    pub(crate) fn peak_rss_kib(&self) -> u64 {
        self.peak_rss_kib.load(Ordering::Relaxed)
    }
}

impl Drop for ServerWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our own process can be read, burning CPU shows up, and several processes add up.
    #[test]
    fn reads_self() {
        let me = std::process::id();
        let before = sample(me).expect("/proc/self is readable");
        // Burn CPU until a clock tick (10 ms) of it shows, for at most 5 s.
        let burn = std::time::Instant::now();
        let mut x = 0u64;
        let mut after = before;
        while after.cpu <= before.cpu && burn.elapsed() < Duration::from_secs(5) {
            for _ in 0..1_000_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
            }
            after = sample(me).expect("/proc/self is readable");
        }
        assert!(after.cpu > before.cpu);
        assert!(after.rss_kib > 0);
        assert!(sample(u32::MAX).is_none());
        let twice = sample_all(&[me, me, u32::MAX]).expect("two of three exist");
        assert!(twice.rss_kib > after.rss_kib);
        assert!(sample_all(&[u32::MAX]).is_none());
        // Opening a file shows as one more descriptor.
        let before = count_fds(me).expect("/proc/self/fd is readable");
        let file = std::fs::File::open("/proc/self/status").expect("opens");
        assert!(count_fds(me).expect("readable") > before);
        drop(file);
        assert!(count_fds(u32::MAX).is_none());
    }
}

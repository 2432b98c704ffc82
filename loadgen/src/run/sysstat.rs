//! CPU and memory of the generator itself and of the server under test, from the kernel.
//!
//! The generator's own CPU comes from `getrusage(RUSAGE_SELF)`; the server's from
//! `/proc/<pid>/stat` (user + system time in clock ticks) and `/proc/<pid>/status` (`VmRSS`,
//! resident memory). Reporting the generator's CPU next to the server's is what tells you
//! whether you measured the server or the load generator.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// CPU time used so far by this process (all threads).
pub(crate) fn own_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return Duration::ZERO;
        }
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

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

/// CPU use over an interval as a percentage of one core (200 = two cores busy).
pub(crate) fn cpu_percent(cpu: Duration, wall: Duration) -> f64 {
    if wall.is_zero() {
        return 0.0;
    }
    (cpu.as_secs_f64() / wall.as_secs_f64() * 1000.0).round() / 10.0
}

/// Watches the server process during a run: a baseline before the first connection, and the
/// peak resident memory, sampled every 100 ms by a background task.
pub(crate) struct ServerWatch {
    pub pid: u32,
    pub baseline: Option<ProcSample>,
    peak_rss_kib: Arc<AtomicU64>,
    sampler: tokio::task::JoinHandle<()>,
}

impl ServerWatch {
    /// Starts watching `pid` (call inside the runtime).
    pub(crate) fn start(pid: u32) -> ServerWatch {
        let baseline = sample(pid);
        let peak_rss_kib = Arc::new(AtomicU64::new(baseline.map_or(0, |s| s.rss_kib)));
        let peak = Arc::clone(&peak_rss_kib);
        let sampler = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                match sample(pid) {
                    Some(s) => {
                        peak.fetch_max(s.rss_kib, Ordering::Relaxed);
                    }
                    None => return, // the server is gone
                }
            }
        });
        ServerWatch {
            pid,
            baseline,
            peak_rss_kib,
            sampler,
        }
    }

    pub(crate) fn now(&self) -> Option<ProcSample> {
        let s = sample(self.pid)?;
        self.peak_rss_kib.fetch_max(s.rss_kib, Ordering::Relaxed);
        Some(s)
    }

    pub(crate) fn peak_rss_kib(&self) -> u64 {
        self.peak_rss_kib.load(Ordering::Relaxed)
    }
}

impl Drop for ServerWatch {
    fn drop(&mut self) {
        self.sampler.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our own process can be read both ways, and burning CPU shows up.
    #[test]
    fn reads_self() {
        let before = own_cpu();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(own_cpu() > before);
        let s = sample(std::process::id()).expect("/proc/self is readable");
        assert!(s.rss_kib > 0);
        assert!(sample(u32::MAX).is_none());
    }
}

//! The run over time: the servers' and the generator's memory and open descriptors, sampled
//! every `--sample-every` (1 s) by a thread of the parent, and the verdict a soak needs.
//!
//! A short run shows a few points; a soak (`--churn`, minutes) shows whether anything grows.
//! The verdict compares the end of the warm-up with the end of sending — memory that grows
//! there, under a steady load, is a leak or a cache without a bound — and counts the servers'
//! descriptors once the generator has closed every socket: more than before the run is a
//! descriptor leak. Descriptors come from `/proc/<pid>/fd`, memory from `VmRSS`
//! (`sysstat.rs`).

use super::stats::Snapshot;
use super::sysstat::{count_all_fds, sample_all};
use super::workload::Clock;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Memory growth after warm-up above which a soak is not flat.
pub(crate) const MAX_GROWTH_PERCENT: f64 = 5.0;

/// How long the servers get, after the last socket closed, to close theirs.
pub(crate) const SETTLE: Duration = Duration::from_secs(5);

/// One point of the time series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesSample {
    /// Seconds since the first connect was due.
    pub t_s: f64,
    /// Connections the ramp opened so far (churners counted once).
    pub connected: u64,
    /// The servers' resident memory and open descriptors, added up (absent without
    /// `--server-pid`).
    pub server_rss_kib: Option<u64>,
    pub server_fds: Option<u64>,
    /// The generator's: the parent and its worker processes.
    pub generator_rss_kib: u64,
    pub generator_fds: u64,
}

/// Samples in the background until stopped.
pub(crate) struct SeriesWatch {
    samples: Arc<Mutex<Vec<SeriesSample>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SeriesWatch {
    /// Starts sampling `server_pids` and `generator_pids` every `every`, times taken on `clock`
    /// from `t0_us`; `live` holds the run's latest counters.
    pub(crate) fn start(
        server_pids: Vec<u32>,
        generator_pids: Vec<u32>,
        every: Duration,
        clock: Clock,
        t0_us: u64,
        live: Arc<Mutex<Snapshot>>,
    ) -> SeriesWatch {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (into, stopped) = (Arc::clone(&samples), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name("loadgen-series".into())
            .spawn(move || {
                let mut next = clock.now_us().max(t0_us);
                while !stopped.load(Ordering::Relaxed) {
                    let now = clock.now_us();
                    if now < next {
                        let wait = Duration::from_micros(next - now).min(Duration::from_millis(50));
                        std::thread::sleep(wait);
                        continue;
                    }
                    next += every.as_micros() as u64;
                    let server = sample_all(&server_pids);
                    let generator = sample_all(&generator_pids);
                    let connected = live.lock().map(|s| s.connected).unwrap_or(0);
                    let sample = SeriesSample {
                        t_s: round3(now.saturating_sub(t0_us) as f64 / 1e6),
                        connected,
                        server_rss_kib: server.map(|s| s.rss_kib),
                        server_fds: count_all_fds(&server_pids),
                        generator_rss_kib: generator.map_or(0, |s| s.rss_kib),
                        generator_fds: count_all_fds(&generator_pids).unwrap_or(0),
                    };
                    if let Ok(mut all) = into.lock() {
                        all.push(sample);
                    }
                }
            })
            .ok();
        SeriesWatch {
            samples,
            stop,
            thread,
        }
    }

    /// Stops sampling and hands the series back.
    pub(crate) fn finish(mut self) -> Vec<SeriesSample> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for SeriesWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The soak verdict: does the servers' memory stay flat after warm-up, and do their descriptors
/// come back to the baseline once every connection is closed?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoakReport {
    /// When (s on the series' clock) the warm-up ended and sending ended.
    pub warm_s: f64,
    pub end_s: f64,
    /// The servers' resident memory at those two moments, and the growth between them.
    pub rss_warm_kib: u64,
    pub rss_end_kib: u64,
    pub rss_growth_percent: f64,
    /// Growth below [`MAX_GROWTH_PERCENT`].
    pub rss_flat: bool,
    /// The servers' open descriptors before the first connection, at the peak, and once every
    /// connection was closed (waiting up to 5 s for the servers to close theirs).
    pub fds_baseline: u64,
    pub fds_peak: u64,
    pub fds_after: u64,
    /// `fds_after` is at most the baseline.
    pub fds_back: bool,
    /// One sentence.
    pub verdict: String,
}

/// Judges `series` between `warm_s` and `end_s`; `None` without server figures.
pub(crate) fn judge(
    series: &[SeriesSample],
    warm_s: f64,
    end_s: f64,
    fds_baseline: Option<u64>,
    fds_after: Option<u64>,
) -> Option<SoakReport> {
    let rss = |s: &SeriesSample| s.server_rss_kib;
    let warm = series.iter().find(|s| s.t_s >= warm_s).and_then(rss)?;
    let end = series
        .iter()
        .rev()
        .find(|s| s.t_s <= end_s)
        .and_then(rss)
        .unwrap_or(warm);
    let growth = if warm > 0 {
        (end as f64 - warm as f64) * 100.0 / warm as f64
    } else {
        0.0
    };
    let growth = (growth * 10.0).round() / 10.0;
    let baseline = fds_baseline?;
    let after = fds_after.unwrap_or(u64::MAX);
    let peak = series
        .iter()
        .filter_map(|s| s.server_fds)
        .max()
        .unwrap_or(baseline);
    let rss_flat = growth < MAX_GROWTH_PERCENT;
    let fds_back = after <= baseline;
    let memory = if rss_flat {
        format!("memory flat ({growth:+} % from the end of warm-up to the end)")
    } else {
        format!(
            "memory grew {growth:+} % from the end of warm-up to the end (over the \
             {MAX_GROWTH_PERCENT} % allowed)"
        )
    };
    let fds = if fds_back {
        format!("descriptors back to the baseline ({after} after the run, {baseline} before)")
    } else if after == u64::MAX {
        "the servers' descriptors could not be read after the run".to_string()
    } else {
        format!("descriptors not back: {after} after the run, {baseline} before (a leak)")
    };
    Some(SoakReport {
        warm_s,
        end_s,
        rss_warm_kib: warm,
        rss_end_kib: end,
        rss_growth_percent: growth,
        rss_flat,
        fds_baseline: baseline,
        fds_peak: peak,
        fds_after: if after == u64::MAX { 0 } else { after },
        fds_back,
        verdict: format!("{memory}; {fds}"),
    })
}

/// A line of block characters for a series of values, at most `width` wide (values are
/// averaged into buckets).
pub(crate) fn sparkline(values: &[u64], width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    if values.is_empty() || width == 0 {
        return String::new();
    }
    let buckets = values.len().min(width);
    let averaged: Vec<f64> = (0..buckets)
        .map(|b| {
            let from = b * values.len() / buckets;
            let to = ((b + 1) * values.len() / buckets).max(from + 1);
            values[from..to].iter().sum::<u64>() as f64 / (to - from) as f64
        })
        .collect();
    let lo = averaged.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = averaged.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    averaged
        .iter()
        .map(|&v| {
            if (hi - lo).abs() < f64::EPSILON {
                BARS[0]
            } else {
                BARS[(((v - lo) / (hi - lo)) * 7.0).round() as usize]
            }
        })
        .collect()
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t_s: f64, rss: u64, fds: u64) -> SeriesSample {
        SeriesSample {
            t_s,
            server_rss_kib: Some(rss),
            server_fds: Some(fds),
            ..SeriesSample::default()
        }
    }

    /// Growth is measured from the first sample after warm-up to the last before the end;
    /// descriptors must come back to the baseline.
    #[test]
    fn verdicts() {
        let series: Vec<SeriesSample> = (0..20)
            .map(|t| {
                sample(
                    t as f64,
                    10_000 + if t >= 5 { 100 * (t - 5) } else { 0 },
                    50 + t,
                )
            })
            .collect();
        let leak = judge(&series, 5.0, 15.0, Some(10), Some(12)).expect("judged");
        assert_eq!((leak.rss_warm_kib, leak.rss_end_kib), (10_000, 11_000));
        assert_eq!(leak.rss_growth_percent, 10.0);
        assert!(!leak.rss_flat && !leak.fds_back);
        assert_eq!(leak.fds_peak, 69);
        assert!(leak.verdict.contains("grew") && leak.verdict.contains("a leak"));
        let flat = judge(&series, 5.0, 6.0, Some(10), Some(10)).expect("judged");
        assert!(flat.rss_flat && flat.fds_back, "{}", flat.verdict);
        assert!(judge(&series, 5.0, 6.0, None, Some(1)).is_none());
        let no_server = vec![SeriesSample::default(); 3];
        assert!(judge(&no_server, 0.0, 1.0, Some(1), Some(1)).is_none());
    }

    /// A sparkline fits its width and spans the lowest to the highest bar.
    #[test]
    fn sparklines() {
        let line = sparkline(&(0..100).collect::<Vec<u64>>(), 20);
        assert_eq!(line.chars().count(), 20);
        assert!(line.starts_with('▁') && line.ends_with('█'));
        assert_eq!(sparkline(&[5, 5, 5], 10), "▁▁▁");
        assert_eq!(sparkline(&[], 10), "");
    }
}

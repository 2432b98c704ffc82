//! Driving the `loadgen` binary from a bench: one `loadgen run` with its JSON report read
//! back, and the line that says which machine (and how loaded) a result comes from.
//!
//! The soak, flood, cluster and redis_ratio benches run the generator as its own process
//! (release build, beside the servers), as a person would, so the bench process itself costs
//! the measurement nothing.

use loadgen::affinity::CpuSet;
use serde_json::Value;
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `loadgen run ARGS --json <json>`, printing its summary, and returns the report. A run
/// that failed its checks still writes its report (exit status 1): that is a result, not an
/// error.
pub fn run_loadgen<A: AsRef<OsStr>>(
    loadgen: &Path,
    args: &[A],
    json: &Path,
) -> anyhow::Result<Value> {
    run_loadgen_on(None, loadgen, args, json)
}

/// [`run_loadgen`], the generator (and every process it starts) running only on `cpus` when
/// given (see [`placement`](crate::placement)).
pub fn run_loadgen_on<A: AsRef<OsStr>>(
    cpus: Option<&CpuSet>,
    loadgen: &Path,
    args: &[A],
    json: &Path,
) -> anyhow::Result<Value> {
    let mut command = Command::new(loadgen);
    command
        .arg("run")
        .args(args)
        .arg("--json")
        .arg(json)
        .stdin(Stdio::null());
    if let Some(cpus) = cpus {
        cpus.pin(&mut command);
    }
    let status = command
        .status()
        .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", loadgen.display()))?;
    let text = std::fs::read(json).map_err(|e| {
        anyhow::anyhow!(
            "loadgen run ({status}) wrote no report {}: {e}",
            json.display()
        )
    })?;
    Ok(serde_json::from_slice(&text)?)
}

/// The machine a result comes from, as lessons' measured blocks name it: CPU, cores, kernel,
/// release build.
pub fn machine_line() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpu}, {cores} cores, Linux {}, release build",
        kernel.trim()
    )
}

/// [`machine_line`] and the load average at the time (a figure taken on a busy machine says
/// so).
pub fn machine() -> String {
    format!("{}, load average {}", machine_line(), load_average())
}

/// The one-minute load average, as the kernel prints it.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// A number from the report at `path` (e.g. `["latency_us", "round_trip", "p99"]`), NaN when
/// absent.
pub fn number(report: &Value, path: &[&str]) -> f64 {
    path.iter()
        .fold(report, |v, key| &v[*key])
        .as_f64()
        .unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The machine line names the cores, and the load where asked; numbers are read by path.
    #[test]
    fn machine_line_and_numbers() {
        let line = machine();
        assert!(
            line.contains("cores") && line.contains("load average"),
            "{line}"
        );
        let measured = machine_line();
        assert!(line.starts_with(&measured), "{line} / {measured}");
        assert!(!measured.contains("load average"), "{measured}");
        let report = serde_json::json!({"latency_us": {"round_trip": {"p99": 120}}});
        assert_eq!(number(&report, &["latency_us", "round_trip", "p99"]), 120.0);
        assert!(number(&report, &["nothing"]).is_nan());
    }
}

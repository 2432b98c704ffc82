//! How every custom bench (`c10k`, `cluster`, `soak`, `flood`, `redis_ratio`) starts and ends:
//! the same three decisions, kept in one place so that they cannot drift apart.

use crate::release_build::{build_release_binaries, report_dir, BUILD_LIMIT};
use loadgen::sweep::models::redis_server_path;
use std::path::PathBuf;
use std::process::ExitCode;

/// `Some(exit)` when bench `name` must not run now: `cargo test --benches` runs bench targets
/// without `--bench` (minutes of load are no test), and `cargo bench -- FILTER` passes the
/// filter to every target (asking for one criterion group must not start a sweep).
pub fn not_now(name: &str) -> Option<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("{name}: a benchmark; run it with `cargo bench -p c10k-benches --bench {name}`");
        return Some(ExitCode::SUCCESS);
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
        println!("{name}: skipped (filtered out)");
        return Some(ExitCode::SUCCESS);
    }
    None
}

/// The `redis-server` program bench `name` needs, or how to exit without it: skipped on a
/// machine without Redis, failed in CI (which installs it, so its absence is a broken CI).
pub fn redis_or_exit(name: &str) -> Result<PathBuf, ExitCode> {
    if let Some(path) = redis_server_path() {
        return Ok(path);
    }
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    if in_ci {
        eprintln!("{name}: redis-server is missing, and CI installs it");
        return Err(ExitCode::FAILURE);
    }
    println!("{name}: skipped: redis-server is not installed (apt-get install redis-server)");
    Err(ExitCode::SUCCESS)
}

/// The bench's exit status: its own verdict, or failure with the error that stopped it.
pub fn finish(name: &str, outcome: anyhow::Result<ExitCode>) -> ExitCode {
    outcome.unwrap_or_else(|e| {
        eprintln!("{name}: {e:#}");
        ExitCode::FAILURE
    })
}

/// Where bench `name` works, once the release binaries are built (up to `BUILD_LIMIT`): its
/// report folder `target/<name>/` (created) and the folder of the binaries it drives,
/// `target/release/`.
pub struct Workspace {
    /// `target/<name>/`: the bench's reports.
    pub out: PathBuf,
    /// `target/release/`: the servers and `loadgen`, freshly built.
    pub bins: PathBuf,
}

/// Builds the release binaries and makes bench `name`'s report folder.
pub fn prepare(name: &str) -> anyhow::Result<Workspace> {
    build_release_binaries(BUILD_LIMIT)?;
    let target = report_dir()
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    let out = target.join(name);
    std::fs::create_dir_all(&out)?;
    Ok(Workspace {
        out,
        bins: target.join("release"),
    })
}

//! How every custom bench (`c10k`, `cluster`, `soak`, `flood`, `redis_ratio`) starts and ends:
//! the same three decisions ([`not_now`], [`redis_or_exit`], [`finish`], put together by [`run`]
//! and [`run_with_redis`]), where it works ([`prepare`]) and how it leaves its report
//! ([`Workspace::write_results`]), kept in one place so that they cannot drift apart.

use crate::release_build::{build_release_binaries, report_dir, BUILD_LIMIT};
use loadgen::sweep::models::redis_server_path;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The whole `main` of bench `name`: nothing when it must not run now ([`not_now`]), else
/// `measure`, its verdict or its error turned into the exit status ([`finish`]).
pub fn run(name: &str, measure: impl FnOnce() -> anyhow::Result<ExitCode>) -> ExitCode {
    if let Some(exit) = not_now(name) {
        return exit;
    }
    finish(name, measure())
}

/// [`run`] for a bench that drives `redis-server`: `measure` gets the program's path, and
/// without it the bench is skipped, or failed in CI ([`redis_or_exit`]).
pub fn run_with_redis(
    name: &str,
    measure: impl FnOnce(&Path) -> anyhow::Result<ExitCode>,
) -> ExitCode {
    run(name, || match redis_or_exit(name) {
        Ok(redis) => measure(&redis),
        Err(exit) => Ok(exit),
    })
}

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

impl Workspace {
    /// Leaves bench `name`'s report: `summary` (Markdown) on stdout and in `results.md`, and
    /// `json` in `results.json`, both in [`Workspace::out`].
    pub fn write_results(&self, name: &str, summary: &str, json: &Value) -> anyhow::Result<()> {
        println!("\n{summary}");
        std::fs::write(self.out.join("results.md"), summary)?;
        std::fs::write(
            self.out.join("results.json"),
            serde_json::to_vec_pretty(json)?,
        )?;
        println!("{name}: reports in {}", self.out.display());
        Ok(())
    }
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

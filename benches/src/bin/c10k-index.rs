//! # c10k-index: a committed run's comparison page, written again from its results
//!
//! ```text
//! cargo run -p c10k-benches --bin c10k-index -- benches/results/2026-12-02-2core
//! ```
//!
//! Rewrites `DIR/index.html` from `DIR/chat/results.json` and `DIR/ping/results.json`, the
//! files a full run of the `c10k` bench wrote there (`cargo bench` writes the page itself): for
//! the runs kept in `benches/results/` when the page's generator (`c10k_benches::index_html`)
//! changes. Every figure on the page comes from those files as they were measured; only the
//! page around them is new.

use c10k_benches::index_html::{read_results, write_index};
use c10k_benches::plan::C10kPlan;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: c10k-index DIR (a folder of a full c10k run: DIR/chat/results.json, …)");
        return ExitCode::from(2);
    };
    match rewrite(&dir) {
        Ok(page) => {
            println!("c10k-index: wrote {}", page.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("c10k-index: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The page of the full plan's workloads, from their results in `dir`.
fn rewrite(dir: &Path) -> anyhow::Result<PathBuf> {
    let plan = C10kPlan::new(false);
    let mut runs = Vec::new();
    for workload in &plan.workloads {
        let results = read_results(&dir.join(workload.name).join("results.json"))?;
        runs.push((workload.clone(), results));
    }
    Ok(write_index(dir, &plan, &runs)?)
}

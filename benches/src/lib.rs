//! # c10k-benches: what `cargo bench` measures
//!
//! The bench targets live in `benches/benches/` (`cluster`, chat-cluster's, has its own docs):
//!
//! | target | harness | what it shows |
//! |---|---|---|
//! | `core` | criterion | the sans-I/O core alone: decoding and encoding throughput, the Hub's fan-out, and what encoding a broadcast once saves |
//! | `c10k` | custom | every server binary under load at growing connection counts, charted |
//! | `soak` | custom | 10,000 connections with churn for minutes: memory and descriptors over time |
//! | `flood` | custom | a connect flood past `--max-conns` beside a measured load: p99 with and without |
//! | `redis_ratio` | custom | chat-epoll, chat-async and chat-reactor against `redis-server`, side by side: the ratios |
//!
//! This library holds what the targets share, tested here so a bench can never silently
//! measure the wrong thing:
//!
//! | module | for | what |
//! |---|---|---|
//! | [`entry`] | the custom benches | when to run (`--bench`, filters), Redis or not, the exit status; the release build and the report folder, `results.md` and `results.json` |
//! | [`quick`] | all | the switch CI uses to run every bench briefly |
//! | [`fixtures`] | `core` | typical and large frames, a Hub with a full room, the timed operations |
//! | [`plan`] | `c10k` | connection levels, workloads and durations; the smoke test's verdict |
//! | [`release_build`] | [`entry`] | building the server binaries in release, where reports go |
//! | [`index_html`] | `c10k`, `c10k-index` | the page that puts every table and chart side by side, written again from a committed run's results by `cargo run -p c10k-benches --bin c10k-index -- DIR` |
//! | [`loadgen_cli`] | `soak`, `flood`, `cluster`, `redis_ratio` | `loadgen run` as a process, its JSON read back; the machine line, the load average |
//! | [`flood`] | `flood` | the connect flood |
//! | [`ratio`] | `redis_ratio` | the targets, rounds and durations; medians, ratios and the table |
//! | [`placement`] | `redis_ratio` | the server's and the generator's CPUs (`C10K_SERVER_CPUS`, `C10K_GENERATOR_CPUS`) |
//!
//! Run them with `cargo bench -p c10k-benches` (everything), `cargo bench -p c10k-benches
//! --bench core` (the micro-benchmarks), or with `C10K_BENCH_QUICK=1` for a smoke run.

pub mod entry;
pub mod fixtures;
pub mod flood;
pub mod index_html;
pub mod loadgen_cli;
pub mod placement;
pub mod plan;
pub mod quick;
pub mod ratio;
pub mod release_build;
#[cfg(test)]
mod sample_results;

pub use quick::quick_mode;

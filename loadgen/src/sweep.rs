//! Placeholder: being written (see the issue tracker).
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct SweepArgs {}

pub fn main(_args: SweepArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`loadgen sweep` is not written yet")
}

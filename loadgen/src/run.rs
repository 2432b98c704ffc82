//! Placeholder: being written (see the issue tracker).
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct RunArgs {}

pub fn main(_args: RunArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`loadgen run` is not written yet")
}

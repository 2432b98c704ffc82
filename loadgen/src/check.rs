//! Placeholder: being written (see the issue tracker).
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct CheckArgs {}

pub fn main(_args: CheckArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`loadgen check` is not written yet")
}

//! `loadgen`: the conformance checker and the load generator. See the crate docs (`lib.rs`).

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    version,
    about = "Conformance checker and load generator for the c10k-lab chat protocol"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the protocol's conformance scenarios against a server and grade it.
    Check(loadgen::check::CheckArgs),
    /// Drive N connections with a workload; report QPS, latency percentiles, loss and order.
    Run(loadgen::run::RunArgs),
    /// Run every server model at several connection counts; write tables and charts.
    Sweep(loadgen::sweep::SweepArgs),
    /// Attack a server with malformed and hostile traffic while a witness checks it still answers.
    Fuzz(loadgen::fuzz::FuzzArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(args) => loadgen::check::main(args),
        Command::Run(args) => loadgen::run::main(args),
        Command::Sweep(args) => loadgen::sweep::main(args),
        Command::Fuzz(args) => loadgen::fuzz::main(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::from(2)
        }
    }
}

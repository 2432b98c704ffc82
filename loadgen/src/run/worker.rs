//! Worker processes: a run with `--procs N` (or more connections than one process should hold)
//! re-executes the `loadgen` binary N times as `loadgen run --worker`, gives each its shard
//! (whole rooms) on stdin, and talks to it in JSON lines: commands down its stdin, reports up
//! its stdout (the messages of `link.rs`). The worker's stderr is the parent's, so its errors
//! show.
//!
//! Why processes and not more threads: a process may hold only as many sockets as its
//! open-file limit (20,000 here, hard), and the cluster is measured with 100,000.

use super::link::{Command, Report, ShardSpec};
use super::shard;
use crate::server_process::find_binary;
use anyhow::Context;
use std::io::{self, BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ExitCode, Stdio};
use std::sync::mpsc::{self, Sender};
use std::sync::Mutex;

/// The worker's side: reads its shard, runs it, reports on stdout. Exits when the shard is
/// done, or when the parent goes away (its stdin closes).
pub(crate) fn serve() -> anyhow::Result<ExitCode> {
    let mut input = BufReader::new(io::stdin());
    let mut line = String::new();
    input
        .read_line(&mut line)
        .context("reading the shard from stdin")?;
    let spec: ShardSpec = serde_json::from_str(&line).context("the shard is not valid JSON")?;
    let (commands, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in input.lines() {
            let Ok(line) = line else { return };
            let Ok(command) = serde_json::from_str::<Command>(&line) else {
                return;
            };
            if commands.send(command).is_err() {
                return;
            }
        }
    });
    let out = Mutex::new(io::stdout());
    let report = |r: Report| {
        if let Ok(json) = serde_json::to_string(&r) {
            let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(out, "{json}");
            let _ = out.flush();
        }
    };
    shard::run(spec, received, &report);
    Ok(ExitCode::SUCCESS)
}

/// The parent's side of one worker process. Killed when dropped.
pub(crate) struct Worker {
    child: Child,
    stdin: ChildStdin,
}

impl Worker {
    /// Starts a worker for `spec`; its reports arrive on `reports`, tagged with its index.
    pub(crate) fn spawn(
        spec: &ShardSpec,
        reports: Sender<(usize, Report)>,
    ) -> anyhow::Result<Worker> {
        let program = binary()?;
        let mut child = std::process::Command::new(&program)
            .args(["run", "--worker"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        let mut stdin = child.stdin.take().context("worker stdin")?;
        let stdout = child.stdout.take().context("worker stdout")?;
        writeln!(stdin, "{}", serde_json::to_string(spec)?).context("sending the shard")?;
        stdin.flush()?;
        let index = spec.index;
        std::thread::spawn(move || {
            let mut done = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let report = match serde_json::from_str::<Report>(&line) {
                    Ok(report) => report,
                    Err(e) => Report::Failed(format!("unreadable report from the worker: {e}")),
                };
                done |= matches!(report, Report::Done(_) | Report::Failed(_));
                if reports.send((index, report)).is_err() {
                    return;
                }
            }
            if !done {
                let _ = reports.send((
                    index,
                    Report::Failed("the worker process ended without its results".into()),
                ));
            }
        });
        Ok(Worker { child, stdin })
    }

    /// The worker's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends one command.
    pub(crate) fn send(&mut self, command: &Command) -> anyhow::Result<()> {
        writeln!(self.stdin, "{}", serde_json::to_string(command)?)
            .and_then(|()| self.stdin.flush())
            .context("the worker process is gone")
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // A worker that reported its results has nothing left to say and exits by itself; one
        // that did not must not outlive the run.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `loadgen` binary: this one when it is running, else the one beside the running test or
/// bench executable.
fn binary() -> anyhow::Result<PathBuf> {
    if let Ok(exe) = std::env::current_exe() {
        if exe.file_stem().is_some_and(|s| s == "loadgen") {
            return Ok(exe);
        }
    }
    find_binary("loadgen").context(
        "several generator processes need the loadgen binary, and it is not beside this \
         executable: build it (cargo build -p loadgen, --release for benches) or run with \
         --procs 1",
    )
}

//! What the `loadgen run` tests share: a short run's configuration, the verdicts its report
//! must pass, chat-epoll in its own process, and `loadgen run` on the command line with the
//! JSON report it writes.

#![allow(dead_code)] // each test file uses a part

use loadgen::run::{RunConfig, RunReport, BEHIND};
use loadgen::server_process::{ServerProcess, SpawnOptions};
use loadgen::sweep::find_or_build;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

/// A short run of `conns` connections to `addr`: rooms of 5, 20 messages a second each, 0.3 s
/// of warm-up and 1 s measured, generous timeouts for a loaded machine. A test changes what it
/// is about.
pub fn quick(addr: SocketAddr, conns: usize) -> RunConfig {
    RunConfig {
        room_size: 5,
        rate: Some(20.0),
        warmup: Duration::from_millis(300),
        duration: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(20),
        drain: Duration::from_secs(5),
        ..RunConfig::new(addr, conns)
    }
}

/// Whether everything a server controls was clean: every connection opened and stayed, and no
/// copy was lost, duplicated, reordered or unparsed. The generator's punctuality is a matter
/// for benches, not for tests on a shared machine: a run may fail *only* because the generator
/// fell behind, and then it must say so (and say nothing else).
pub fn server_clean(report: &RunReport) -> bool {
    let (c, m) = (&report.connections, &report.messages);
    let only_behind = report.generator.behind && report.problems.len() == 1;
    (report.ok || only_behind)
        && c.connected == c.attempted
        && c.dropped == 0
        && m.lost == 0
        && m.duplicated == 0
        && m.out_of_order == 0
        && m.unparsed == 0
        && m.received_copies == m.expected_copies
}

/// Asserts that no copy was lost, duplicated or delivered out of order (the headline says what
/// went wrong otherwise).
pub fn assert_nothing_lost(report: &RunReport) {
    let m = &report.messages;
    assert_eq!(
        (m.lost, m.duplicated, m.out_of_order),
        (0, 0, 0),
        "{}",
        report.headline
    );
}

/// chat-epoll in its own process, without an idle timeout (a run's quiet connections must
/// stay). Its binary is taken from beside the test executables (`cargo test --workspace`
/// builds it there), or built with cargo first (`cargo test -p loadgen` alone).
pub fn chat_epoll(options: &SpawnOptions) -> ServerProcess {
    let program = find_or_build("chat-epoll", true).expect("chat-epoll binary");
    ServerProcess::spawn_with(program, ["--idle-timeout", "0"], options).expect("chat-epoll starts")
}

/// `loadgen run` on the command line, its JSON report written into a folder of its own
/// (removed on drop).
pub struct CliRun {
    /// The folder of the JSON report, named after the test and this process.
    dir: PathBuf,
    /// What the command returned.
    pub output: Output,
    /// Its standard output, as text: the summary, verdict first.
    pub stdout: String,
}

impl CliRun {
    /// Runs `loadgen run`, then every group of `args` (one group a line of the test, as a user
    /// would group them), then `--json` into the folder `name` names.
    pub fn new(name: &str, args: &[&[&str]]) -> CliRun {
        let dir = std::env::temp_dir().join(format!("loadgen-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut command = Command::new(env!("CARGO_BIN_EXE_loadgen"));
        command.arg("run");
        for group in args {
            command.args(*group);
        }
        let output = command
            .arg("--json")
            .arg(dir.join("run.json"))
            .output()
            .expect("loadgen runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        CliRun {
            dir,
            output,
            stdout,
        }
    }

    /// Asserts that it exited 0, or 1 only because the busy test machine made the generator
    /// fall behind, which its first line then says.
    pub fn assert_ok_or_behind(&self) {
        let behind = self.stdout.starts_with(&format!("FAILED: {BEHIND} ("));
        let status = self.output.status;
        assert!(
            status.success() || (status.code() == Some(1) && behind),
            "{}\n{}",
            self.stdout,
            String::from_utf8_lossy(&self.output.stderr)
        );
    }

    /// The text of the JSON report (panics, with what the command printed, if it wrote none).
    pub fn json(&self) -> String {
        std::fs::read_to_string(self.dir.join("run.json"))
            .unwrap_or_else(|e| panic!("no JSON report ({e}):\n{}", self.stdout))
    }

    /// The report it wrote.
    pub fn report(&self) -> RunReport {
        RunReport::from_json(&self.json()).expect("a run report")
    }
}

impl Drop for CliRun {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

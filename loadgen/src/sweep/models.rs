//! The server models a sweep compares, how each is started, and where its binary comes from.

use crate::server_process::find_binary;
use crate::sweep::{Status, SweepRow};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One line of the comparison: a server binary with its model flags, Redis, or a server that is
/// already running.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    /// The name in tables and chart legends, e.g. `chat-epoll (edge)`.
    pub name: String,
    pub launch: Launch,
    /// The model's known limit, added to the reason when it fails a level. (Not being able to
    /// run on this machine at all is not a limit: see [`unavailable_here`].)
    pub limit_note: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Launch {
    /// A workspace binary (found beside the loadgen binary, or a path), started per level with
    /// these model flags plus `--idle-timeout 0 --addr 127.0.0.1:0`.
    Binary { program: String, args: Vec<String> },
    /// `redis-server` on a free port, driven with `--target redis`.
    Redis,
    /// A server someone else started (a student's server in another language, or a test's
    /// in-process one). Memory figures need its pid.
    External { addr: SocketAddr, pid: Option<u32> },
}

/// Every model of the workspace, in the order of the course. `key` selects it in `--servers`.
pub fn catalogue() -> Vec<(&'static str, ModelSpec)> {
    let bin = |name: &str, label: &str, args: &[&str], note: Option<&str>| ModelSpec {
        name: label.to_string(),
        launch: Launch::Binary {
            program: name.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
        },
        limit_note: note.map(str::to_string),
    };
    vec![
        (
            "blocking",
            bin(
                "chat-blocking",
                "chat-blocking",
                &[],
                Some("serves one connection at a time; the others wait in the listen backlog"),
            ),
        ),
        ("threads", bin("chat-threads", "chat-threads", &[], None)),
        (
            "pool",
            bin(
                "chat-pool",
                "chat-pool",
                &[],
                Some("serves at most --workers (128) connections at once, queues --queue (256)"),
            ),
        ),
        (
            "select",
            bin(
                "chat-poll",
                "chat-poll (select)",
                &["--backend", "select"],
                Some("select(2) cannot watch descriptors at or above FD_SETSIZE (1024)"),
            ),
        ),
        (
            "poll",
            bin(
                "chat-poll",
                "chat-poll (poll)",
                &["--backend", "poll"],
                None,
            ),
        ),
        (
            "epoll-level",
            bin(
                "chat-epoll",
                "chat-epoll (level)",
                &["--trigger", "level"],
                None,
            ),
        ),
        (
            "epoll-edge",
            bin(
                "chat-epoll",
                "chat-epoll (edge)",
                &["--trigger", "edge"],
                None,
            ),
        ),
        ("reactor", bin("chat-reactor", "chat-reactor", &[], None)),
        ("async", bin("chat-async", "chat-async", &[], None)),
        ("uring", bin("chat-uring", "chat-uring", &[], None)),
    ]
}

/// Server binaries that cannot run on every machine, what they need, and what that takes: each
/// answers `--probe` with exit status 0 where it can run, and a last line saying why not where
/// it cannot. chat-uring needs io_uring, which old kernels lack, `io_uring_disabled` turns off
/// and container runtimes' default seccomp profiles block.
const PROBED: &[(&str, &str, &str)] = &[(
    "chat-uring",
    "io_uring",
    "Linux 6.0 or later, not disabled by /proc/sys/kernel/io_uring_disabled, and not blocked by \
     a seccomp profile (Docker's default blocks it)",
)];

/// What every reason given by [`unavailable_here`] contains, and what [`cannot_run_here`] looks
/// for.
const UNAVAILABLE: &str = " unavailable here: ";

/// Why the server binary `program` (a catalogue name or a path), found at `path`, cannot run on
/// this machine at all: `Some("io_uring unavailable here: … (chat-uring needs io_uring: …)")`,
/// which the sweep records as a skip at every level, not a failure. `None` when it can, or has
/// no probe.
pub fn unavailable_here(program: &str, path: &Path) -> Option<String> {
    let name = Path::new(program).file_name()?.to_str()?;
    let (_, what, needs) = PROBED.iter().find(|(probed, ..)| *probed == name)?;
    let why = match Command::new(path)
        .arg("--probe")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    {
        Ok(probe) if probe.status.success() => return None,
        Ok(probe) => {
            let out = String::from_utf8_lossy(&probe.stdout);
            let last = out.lines().rev().find(|line| !line.trim().is_empty());
            let last = last.unwrap_or("its probe said nothing").trim();
            last.strip_prefix("usable: no: ")
                .unwrap_or(last)
                .to_string()
        }
        Err(e) => format!("cannot run {} --probe: {e}", path.display()),
    };
    Some(format!(
        "{what}{UNAVAILABLE}{why} ({name} needs {what}: {needs})"
    ))
}

/// Whether `row` was skipped because its model cannot run on this machine at all
/// ([`unavailable_here`]), rather than because it failed a lower level: a judge of the sweep
/// (the c10k bench's smoke test) excuses the one, never a failure of the model where it runs.
pub fn cannot_run_here(row: &SweepRow) -> bool {
    row.status == Status::Skipped
        && row
            .reason
            .as_deref()
            .is_some_and(|r| r.contains(UNAVAILABLE))
}

/// The Redis line of the comparison.
pub fn redis_model() -> ModelSpec {
    ModelSpec {
        name: "redis".to_string(),
        launch: Launch::Redis,
        limit_note: None,
    }
}

/// Parses `--servers`: `all`, or a comma-separated list of keys (`epoll` and `chat-epoll` mean
/// both triggers, `chat-poll` both backends, `chat-<x>` the same as `<x>`).
pub fn select(list: &str) -> anyhow::Result<Vec<ModelSpec>> {
    let all = catalogue();
    if list.trim() == "all" {
        return Ok(all.into_iter().map(|(_, m)| m).collect());
    }
    let mut chosen: Vec<ModelSpec> = Vec::new();
    for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let key = word.strip_prefix("chat-").unwrap_or(word);
        let matches: Vec<&ModelSpec> = all
            .iter()
            .filter(|(k, m)| {
                *k == key
                    || (key == "epoll" && k.starts_with("epoll-"))
                    || (word == "chat-poll" && matches!(*k, "select" | "poll"))
                    || m.name == word
            })
            .map(|(_, m)| m)
            .collect();
        anyhow::ensure!(
            !matches.is_empty(),
            "unknown server `{word}`; choose from all, {}",
            all.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
        );
        for m in matches {
            if !chosen.iter().any(|c| c.name == m.name) {
                chosen.push(m.clone());
            }
        }
    }
    Ok(chosen)
}

/// Finds a server binary beside the running executable; with `build`, builds the missing one
/// with cargo (same profile as the running executable) when cargo is at hand, so that
/// `cargo run --release -p loadgen -- sweep` works on a fresh checkout.
pub fn find_or_build(program: &str, build: bool) -> Result<PathBuf, String> {
    if program.contains('/') {
        let path = PathBuf::from(program);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{program} does not exist"))
        };
    }
    if let Some(path) = find_binary(program) {
        return Ok(path);
    }
    if !build {
        return Err(format!(
            "{program} is not built (run `cargo build --release --workspace` first)"
        ));
    }
    build_binary(program, Duration::from_secs(900))?;
    find_binary(program).ok_or_else(|| format!("{program} was built but is not beside loadgen"))
}

/// `cargo build [--release] -p <package>`, bounded by `limit`. The package of every server
/// binary is named like the binary.
fn build_binary(package: &str, limit: Duration) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO")
        .map(PathBuf::from)
        .ok_or_else(|| format!("{package} is not built, and cargo is not at hand to build it"))?;
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("Cargo.toml");
    let release = std::env::current_exe()
        .ok()
        .is_some_and(|exe| exe.ancestors().any(|a| a.ends_with("release")));
    eprintln!("building {package} (not found beside loadgen)…");
    let mut command = Command::new(cargo);
    command
        .args(["build", "--quiet", "-p", package, "--manifest-path"])
        .arg(manifest)
        .stdin(Stdio::null());
    if release {
        command.arg("--release");
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run cargo to build {package}: {e}"))?;
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("building {package} failed ({status})")),
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("building {package} took longer than {limit:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => return Err(format!("waiting for cargo: {e}")),
        }
    }
}

/// `redis-server` on the PATH, if installed.
pub fn redis_server_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A stand-in for a server binary: a shell script that answers `--probe` as told.
    fn fake_server(dir: &Path, name: &str, probe: &str) -> PathBuf {
        std::fs::create_dir_all(dir).expect("a temp dir");
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{probe}\n")).expect("write the script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    #[test]
    fn a_probed_server_that_cannot_run_here_says_why() {
        let dir = std::env::temp_dir().join(format!("loadgen-probe-{}", std::process::id()));
        let blocked = fake_server(
            &dir.join("blocked"),
            "chat-uring",
            "echo 'kernel 6.1'; echo 'usable: no: io_uring_setup was refused (EPERM)'; exit 1",
        );
        let why = unavailable_here("chat-uring", &blocked).expect("a reason");
        assert!(
            why.starts_with(
                "io_uring unavailable here: io_uring_setup was refused (EPERM) (chat-uring needs \
                 io_uring: Linux 6.0 or later"
            ),
            "{why}"
        );
        let fine = fake_server(
            &dir.join("fine"),
            "chat-uring",
            "echo 'usable: yes'; exit 0",
        );
        assert_eq!(unavailable_here(fine.to_str().expect("utf-8"), &fine), None);
        // A server without a probe is never asked.
        assert_eq!(unavailable_here("chat-epoll", &blocked), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The sweep skips such a model at every level, with the reason, and keeps it in the table;
    /// the skips are told apart from a failure's.
    #[test]
    fn the_sweep_skips_a_model_that_cannot_run_here() {
        let dir = std::env::temp_dir().join(format!("loadgen-skip-{}", std::process::id()));
        let blocked = fake_server(&dir, "chat-uring", "echo 'usable: no: seccomp'; exit 1");
        let model = ModelSpec {
            name: "chat-uring".into(),
            launch: Launch::Binary {
                program: blocked.to_str().expect("utf-8").into(),
                args: Vec::new(),
            },
            limit_note: None,
        };
        let config = crate::sweep::SweepConfig {
            models: vec![model],
            levels: vec![10, 50],
            run: crate::run::RunConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), 1),
            build_missing: false,
            echo: false,
        };
        let results = crate::sweep::sweep(&config).expect("a sweep");
        assert_eq!(results.rows.len(), 2);
        for row in &results.rows {
            assert_eq!(row.status, crate::sweep::Status::Skipped);
            let reason = row.reason.as_deref().unwrap_or_default();
            assert!(
                reason
                    .starts_with("io_uring unavailable here: seccomp (chat-uring needs io_uring:"),
                "{reason}"
            );
            assert!(cannot_run_here(row));
        }
        let after_a_failure =
            SweepRow::without_report("chat-uring", 50, Status::Skipped, "failed at 10".into());
        assert!(!cannot_run_here(&after_a_failure));
        let failed =
            SweepRow::without_report("chat-uring", 10, Status::Failed, "lost 3 messages".into());
        assert!(
            !cannot_run_here(&failed),
            "a failure is never excused as unavailability"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

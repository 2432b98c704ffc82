//! Building the server binaries the `c10k` bench drives.
//!
//! `cargo bench` compiles the bench itself in release, but not the workspace's other binaries,
//! and a stale `target/release/chat-epoll` would chart yesterday's code. So the bench first runs
//! `cargo build --release --workspace --bins` with the cargo that started it (cargo tells a
//! running bench its own path in `$CARGO`). It is a no-op when everything is fresh, and cargo
//! has released its build lock by the time a bench runs, so this does not deadlock.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A cold release build of the whole workspace takes a few minutes on two cores; past this,
/// something is wrong and the bench gives up.
pub const BUILD_LIMIT: Duration = Duration::from_secs(20 * 60);

/// The workspace's root manifest (this package lives in `benches/`).
pub fn workspace_manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("Cargo.toml")
}

/// The command that builds every binary of the workspace in release.
pub fn build_command(cargo: &Path, manifest: &Path) -> Command {
    let mut command = Command::new(cargo);
    command
        .args([
            "build",
            "--release",
            "--workspace",
            "--bins",
            "--manifest-path",
        ])
        .arg(manifest)
        .stdin(Stdio::null());
    command
}

/// Runs [`build_command`] with cargo's own output shown, bounded by `limit`.
pub fn build_release_binaries(limit: Duration) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("cargo"));
    let manifest = workspace_manifest();
    eprintln!("c10k: cargo build --release --workspace --bins (the servers under test)");
    let mut child = build_command(&cargo, &manifest)
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", cargo.display()))?;
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            anyhow::ensure!(
                status.success(),
                "building the server binaries failed ({status})"
            );
            return Ok(());
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("building the server binaries took longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The directory the reports go to: `<target>/c10k`, where `<target>` is the target directory
/// the running bench was built in (`target/release/deps/c10k-…` → `target`), so it follows
/// `CARGO_TARGET_DIR` too.
pub fn report_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| target_dir_of(&exe))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("c10k")
}

/// `<target>/<profile>/deps/<exe>` → `<target>`.
fn target_dir_of(exe: &Path) -> Option<PathBuf> {
    let deps = exe.parent()?;
    let profile = if deps.ends_with("deps") {
        deps.parent()?
    } else {
        deps
    };
    Some(profile.parent()?.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The build command names the whole workspace's binaries, in release, at the root manifest.
    #[test]
    fn build_command_builds_every_binary_in_release() {
        let manifest = workspace_manifest();
        assert!(manifest.is_file(), "{}", manifest.display());
        let text = std::fs::read_to_string(&manifest).expect("readable");
        assert!(text.contains("[workspace]"));
        let command = build_command(Path::new("cargo"), &manifest);
        let args: Vec<_> = command.get_args().map(|a| a.to_string_lossy()).collect();
        for flag in ["build", "--release", "--workspace", "--bins"] {
            assert!(args.iter().any(|a| a == flag), "{args:?}");
        }
    }

    /// Reports land in `<target>/c10k` whether the bench runs from `deps/` or beside it.
    #[test]
    fn report_dir_is_under_the_target_directory() {
        let target = target_dir_of(Path::new("/w/target/release/deps/c10k-123"));
        assert_eq!(target.as_deref(), Some(Path::new("/w/target")));
        let target = target_dir_of(Path::new("/w/target/release/c10k"));
        assert_eq!(target.as_deref(), Some(Path::new("/w/target")));
    }
}

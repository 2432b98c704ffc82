//! Where io_uring cannot be set up, chat-uring says why and exits with a failure, before it
//! listens. This kernel has io_uring, so the test makes `io_uring_setup` fail the way it fails
//! elsewhere, with strace's fault injection (`-e inject=io_uring_setup:error=...`).

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{program, Guard};

/// Runs `chat-uring ARGS` with `io_uring_setup` failing with `errno`; returns whether it
/// exited successfully, its stdout and its stderr. Panics if it is still running after 20 s.
fn run_without_io_uring(errno: &str, args: &[&str]) -> (bool, String, String) {
    let child = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null"])
        .arg(format!("-einject=io_uring_setup:error={errno}"))
        .arg(program())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start strace");
    let mut guard = Guard(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = guard.0.try_wait().expect("wait for chat-uring") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "chat-uring {args:?} is still running without io_uring"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut stdout) = guard.0.stdout.take() {
        let _ = stdout.read_to_string(&mut out);
    }
    if let Some(mut stderr) = guard.0.stderr.take() {
        let _ = stderr.read_to_string(&mut err);
    }
    (status.success(), out, err)
}

fn strace_available() -> bool {
    let found = Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("SKIPPED: strace is not installed (apt-get install strace), so io_uring_setup cannot be made to fail");
    }
    found
}

/// A kernel without io_uring (ENOSYS): the server logs why and exits 1, without ever printing
/// `listening on`.
#[test]
fn refuses_to_start_without_io_uring() {
    if !strace_available() {
        return;
    }
    let (ok, out, err) = run_without_io_uring("ENOSYS", &["--addr", "127.0.0.1:0"]);
    assert!(!ok, "chat-uring exited 0 without io_uring");
    assert!(!out.contains("listening on"), "it listened anyway: {out}");
    assert!(
        err.contains("io_uring is not available here") && err.contains("no io_uring"),
        "the reason is missing from its log: {err}"
    );
}

/// io_uring forbidden (EPERM, what a seccomp filter or `io_uring_disabled` gives): `--probe`
/// says it is not usable, and why, and exits 1 (which is what the other tests skip on).
#[test]
fn probe_says_why_io_uring_is_unusable() {
    if !strace_available() {
        return;
    }
    let (ok, out, _) = run_without_io_uring("EPERM", &["--probe"]);
    assert!(!ok, "--probe exited 0 without io_uring");
    assert!(out.contains("usable: no"), "no verdict in: {out}");
    assert!(
        out.contains("EPERM") || out.contains("disabled"),
        "no reason in: {out}"
    );
}

//! What every test of chat-uring needs first: the binary, whether this kernel can run it, and a
//! child process that cannot outlive its test.

use std::path::Path;
use std::process::Command;

/// The chat-uring binary under test.
pub fn program() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_chat-uring"))
}

/// Whether io_uring works here, asked of `chat-uring --probe` (the same checks the server makes
/// at start). Where it does not (an old kernel, `io_uring_disabled`, a seccomp filter), the
/// test is skipped and says why on stderr: there is nothing of chat-uring to test there.
#[allow(dead_code)] // not by `unavailable.rs`, which makes io_uring unavailable on purpose
pub fn io_uring_usable(test: &str) -> bool {
    let probe = Command::new(program())
        .arg("--probe")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} --probe: {e}", program().display()));
    if probe.status.success() {
        return true;
    }
    eprintln!(
        "SKIPPED {test}: io_uring is not available on this machine:\n{}",
        String::from_utf8_lossy(&probe.stdout)
    );
    false
}

/// A child process that is killed if the test ends first (a panic included).
#[allow(dead_code)] // not by the tests that start the server with `ServerProcess`
pub struct Guard(pub std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

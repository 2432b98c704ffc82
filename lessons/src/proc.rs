//! Running one lesson command as `bash -c` in its own process group, collecting what it prints,
//! and always stopping it (also on panic): the group is signalled, so a pipeline or a server
//! under `strace` goes away entirely. A command is also told to end when the thread that started
//! it ends (`PR_SET_PDEATHSIG`): a test run stopped from outside (Ctrl-C, `kill`), which runs no
//! destructor, does not leave the lesson's servers running, since their own process group keeps
//! Ctrl-C from reaching them.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Output kept per process; a lesson command that prints more is cut (the tests look for short
/// strings).
const OUTPUT_CAP: usize = 1 << 20;

/// A running `bash -c SCRIPT`.
pub struct Proc {
    child: Child,
    /// stdout and stderr, interleaved as they arrive.
    output: Arc<Mutex<Vec<u8>>>,
    /// stdout's first line (a server's `listening on ADDR`), once.
    first_line: Receiver<String>,
    readers: Vec<thread::JoinHandle<()>>,
    status: Option<ExitStatus>,
    /// `stop` ran: the group was already killed.
    stopped: bool,
}

impl Proc {
    /// Starts `script` with `path_dir` and its `examples` folder first on `PATH`, in `cwd`,
    /// stdin closed.
    pub fn spawn(script: &str, path_dir: &Path, cwd: &Path) -> std::io::Result<Proc> {
        let mut dirs = vec![path_dir.to_path_buf(), path_dir.join("examples")];
        if let Some(old) = std::env::var_os("PATH") {
            dirs.extend(std::env::split_paths(&old));
        }
        let path = std::env::join_paths(dirs).map_err(std::io::Error::other)?;
        let mut command = Command::new("bash");
        command
            .args(["-c", script])
            .env("PATH", path)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: prctl(2) and getppid(2) are async-signal-safe, as a `pre_exec` hook must be;
        // they touch nothing of the parent's. The death signal survives `execve`, so the server
        // that `bash -c` execs into gets it too.
        let parent = std::process::id();
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have ended before the call: then no signal would ever come.
                if libc::getppid() as u32 != parent {
                    libc::raise(libc::SIGTERM);
                }
                Ok(())
            });
        }
        let mut child = command.spawn()?;
        let output = Arc::new(Mutex::new(Vec::new()));
        let (tx, first_line) = mpsc::channel();
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            let output = output.clone();
            readers.push(thread::spawn(move || {
                let mut reader = BufReader::new(stdout);
                let mut line = Vec::new();
                let mut first = true;
                while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                    if first {
                        let _ = tx.send(String::from_utf8_lossy(&line).trim().to_string());
                        first = false;
                    }
                    append(&output, &line);
                    line.clear();
                }
            }));
        }
        if let Some(mut stderr) = child.stderr.take() {
            let output = output.clone();
            readers.push(thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stderr.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    append(&output, &buf[..n]);
                }
            }));
        }
        Ok(Proc {
            child,
            output,
            first_line,
            readers,
            status: None,
            stopped: false,
        })
    }

    /// Waits for the first stdout line `listening on ADDR`. Err: the process exited first, said
    /// something else, or was silent for `timeout`.
    pub fn wait_listening(&mut self, timeout: Duration) -> Result<SocketAddr, String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.first_line.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    return line
                        .strip_prefix("listening on ")
                        .and_then(|a| a.trim().parse().ok())
                        .ok_or_else(|| format!("first line was {line:?}, not `listening on ADDR`"))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.wait(Duration::from_secs(5));
                    return Err(format!("exited ({status:?}) without `listening on`"));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(status) = self.try_status() {
                        return Err(format!("exited ({status}) without `listening on`"));
                    }
                    if Instant::now() >= deadline {
                        return Err(format!("no `listening on` line within {timeout:?}"));
                    }
                }
            }
        }
    }

    /// Waits up to `timeout` for the exit; `None` if it is still running.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// SIGTERM to the whole group (Ctrl-C's polite cousin), then SIGKILL after `grace`.
    /// Returns the exit status of `sh` (or of the program it exec'd).
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        self.signal_group(libc::SIGTERM);
        let status = self.wait(grace);
        // Whatever is left of the group (a pipeline's other half, a child of strace) goes too.
        self.signal_group(libc::SIGKILL);
        let status = status.or_else(|| self.wait(Duration::from_secs(5)));
        self.stopped = true;
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        status
    }

    /// Sends `signal` to the whole group (`kill -STOP %1` in a lesson).
    pub fn signal(&self, signal: libc::c_int) {
        if !self.stopped {
            self.signal_group(signal);
        }
    }

    fn signal_group(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on the process group we created (pgid = the child's pid). Only `stop`
        // and `drop` call it, before the group is known to be gone.
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), signal);
        }
    }

    /// Everything printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        let bytes = self.output.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.stopped {
            self.signal_group(libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

fn append(output: &Mutex<Vec<u8>>, bytes: &[u8]) {
    let mut out = output.lock().unwrap_or_else(|e| e.into_inner());
    let room = OUTPUT_CAP.saturating_sub(out.len());
    out.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether process `pid` is gone: no such process, or a zombie nobody reaped yet.
    fn gone(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // The state follows the command name, which is in parentheses.
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
            Err(_) => true,
        }
    }

    /// A command left running by a thread that then ends, with no `stop` and no destructor (as
    /// when the test process is killed), is ended with it; one whose thread lives on keeps
    /// running.
    #[test]
    fn a_command_ends_with_the_thread_that_started_it() {
        let start = || {
            let proc = Proc::spawn("exec sleep 30", Path::new("/nonexistent"), Path::new("/"))
                .expect("bash runs");
            let pid = proc.child.id();
            std::mem::forget(proc);
            pid
        };
        let orphan = thread::spawn(start).join().expect("the thread");
        let kept = start();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !gone(orphan) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        assert!(
            gone(orphan),
            "sleep {orphan} outlived the thread that started it"
        );
        assert!(!gone(kept), "sleep {kept} ended though its thread lives");
        for pid in [orphan, kept] {
            // SAFETY: kill(2) and waitpid(2) on children this test started and forgot.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
                libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0);
            }
        }
    }
}

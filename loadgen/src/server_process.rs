//! Starting a server binary as a child process on a free port, and always stopping it.
//!
//! Used by every server's tests, by `loadgen sweep` and by the benches. The server is started
//! with `--addr 127.0.0.1:0`; the kernel picks a free port and the server prints
//! `listening on ADDR` as its first stdout line, which we read back. The child is killed when
//! the [`ServerProcess`] is dropped, also when a test panics, so no server outlives its test.

use crate::affinity::CpuSet;
use std::io::{self, BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a server may take to print its `listening on` line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Options for [`ServerProcess::spawn_with`].
#[derive(Debug, Clone, Default)]
pub struct SpawnOptions {
    /// Lower the child's open-file limit (soft *and* hard, so the server cannot raise it back)
    /// to this value before it starts: the way to test running out of descriptors.
    pub fd_limit: Option<u64>,
    /// Let the server's stderr (its logs) through to ours instead of discarding it.
    pub show_logs: bool,
    /// Run the server only on these CPUs (every thread it starts included).
    pub cpus: Option<CpuSet>,
}

/// A running server child process. Killed on drop.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    program: PathBuf,
    /// Keeps the pipe open: a server whose stdout is closed could get SIGPIPE on a later print.
    _stdout: Option<std::thread::JoinHandle<()>>,
}

impl ServerProcess {
    /// Starts `program` with `args` plus `--addr 127.0.0.1:0` and waits for its address.
    pub fn spawn<I, S>(program: impl AsRef<Path>, args: I) -> io::Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Self::spawn_with(program, args, &SpawnOptions::default())
    }

    pub fn spawn_with<I, S>(
        program: impl AsRef<Path>,
        args: I,
        options: &SpawnOptions,
    ) -> io::Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let program = program.as_ref().to_path_buf();
        let mut command = Command::new(&program);
        command
            .args(args)
            .args(["--addr", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if options.show_logs {
                Stdio::inherit()
            } else {
                Stdio::null()
            });
        if let Some(limit) = options.fd_limit {
            // SAFETY: setrlimit is async-signal-safe, as pre_exec requires.
            unsafe {
                command.pre_exec(move || {
                    let rl = libc::rlimit {
                        rlim_cur: limit as libc::rlim_t,
                        rlim_max: limit as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        if let Some(cpus) = &options.cpus {
            cpus.pin(&mut command);
        }
        let mut child = command.spawn().map_err(|e| {
            io::Error::new(e.kind(), format!("cannot start {}: {e}", program.display()))
        })?;
        let stdout = child.stdout.take().expect("stdout is piped");
        match read_listening_line(stdout) {
            Ok((addr, rest)) => Ok(ServerProcess {
                child,
                addr,
                program,
                _stdout: Some(rest),
            }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(io::Error::new(
                    e.kind(),
                    format!("{} did not start: {e}", program.display()),
                ))
            }
        }
    }

    /// The address the server is listening on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit; kills it if it does not exit.
    /// Returns the exit status, or `None` if it had to be killed.
    pub fn terminate(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        // SAFETY: kill(2) with a pid we own.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads stdout until `listening on ADDR`, then keeps draining it on a thread.
fn read_listening_line(
    stdout: ChildStdout,
) -> io::Result<(SocketAddr, std::thread::JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let first = reader.read_line(&mut line).map(|_| line.clone());
        let _ = tx.send(first);
        // Drain the rest so the server never blocks on a full pipe.
        let mut sink = [0u8; 1024];
        while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
    });
    let line = rx
        .recv_timeout(STARTUP_TIMEOUT)
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no `listening on` line"))??;
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("first stdout line was {line:?}, expected `listening on ADDR`"),
            )
        })?;
    Ok((addr, reader))
}

/// Finds a workspace binary for tests and tools: beside the running executable (`target/release`
/// or `target/debug`, and one level up from `deps/` for test binaries).
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let mut dir = exe.parent()?.to_path_buf();
    for _ in 0..2 {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Some(candidate);
        }
        dir = dir.parent()?.to_path_buf();
    }
    None
}

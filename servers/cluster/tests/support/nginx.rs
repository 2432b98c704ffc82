//! A real nginx (Debian's `nginx-light`) running `deploy/nginx.conf`, on a free port, in front
//! of the test's nodes: its own prefix under a temporary directory (pid, error log, temp
//! paths), `daemon off`, in a process group of its own that is killed on drop.

use super::{free_port, not_installed};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The committed configuration the test runs.
pub fn config_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/nginx.conf")
}

/// An nginx master and its workers, stopped on drop.
pub struct Nginx {
    /// The master process, leader of its process group.
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its prefix: the generated configuration, `logs/`, `temp/`.
    prefix: PathBuf,
}

impl Nginx {
    /// Starts nginx with `deploy/nginx.conf` on a free port, in front of `nodes` (their HTTP
    /// addresses); `None` when nginx is not installed (outside CI; in CI, which installs it,
    /// its absence fails the test).
    pub fn start(nodes: &[SocketAddr]) -> Option<Nginx> {
        if Command::new("nginx").arg("-v").output().is_err() {
            return not_installed("nginx");
        }
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let prefix = std::env::temp_dir().join(format!("c10k-nginx-{}-{port}", std::process::id()));
        for dir in ["logs", "temp"] {
            std::fs::create_dir_all(prefix.join(dir)).expect("the nginx prefix");
        }
        let original = std::fs::read_to_string(config_path()).expect("deploy/nginx.conf");
        let config = prefix.join("nginx.conf");
        std::fs::write(&config, for_test(&original, addr, nodes)).expect("write nginx.conf");
        let error_log = prefix.join("logs/error.log");
        let child = Command::new("nginx")
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&config)
            .arg("-e")
            .arg(&error_log)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // The master and its workers in one group: on drop, one signal reaches them all.
            .process_group(0)
            .spawn()
            .expect("nginx starts");
        let mut nginx = Nginx {
            child,
            addr,
            prefix,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                panic!("nginx exited ({status}):\n{}", nginx.errors());
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen: {}",
                nginx.errors()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(nginx)
    }

    /// Its error log.
    pub fn errors(&self) -> String {
        std::fs::read_to_string(self.prefix.join("logs/error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let group = self.child.id() as i32;
        // SAFETY: signals the process group created for this nginx. SIGTERM first, so the
        // master stops its workers; SIGKILL for whatever is left.
        unsafe { libc::kill(-group, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.prefix);
    }
}

/// `deploy/nginx.conf` with the test's port and nodes: its `listen` line moved to `addr`, and
/// the `server` lines of `upstream chat_nodes` replaced by one per node (with their options).
fn for_test(original: &str, addr: SocketAddr, nodes: &[SocketAddr]) -> String {
    let mut out = Vec::new();
    let mut in_upstream = false;
    let mut options = None;
    for line in original.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if trimmed.starts_with("upstream chat_nodes") {
            in_upstream = true;
        } else if in_upstream && trimmed.starts_with("server ") {
            // `server 127.0.0.1:9001 max_fails=1 fail_timeout=10s;`: keep the options.
            if options.is_none() {
                let rest = trimmed
                    .split_whitespace()
                    .skip(2)
                    .collect::<Vec<_>>()
                    .join(" ");
                options = Some(rest.clone());
                for node in nodes {
                    out.push(format!("{indent}server {node} {rest}"));
                }
            }
            continue;
        } else if in_upstream && trimmed.starts_with('}') {
            in_upstream = false;
        } else if trimmed.starts_with("listen ") {
            out.push(format!("{indent}listen {addr};"));
            continue;
        }
        out.push(line.to_string());
    }
    assert!(
        options.is_some(),
        "deploy/nginx.conf has no upstream servers"
    );
    out.join("\n") + "\n"
}

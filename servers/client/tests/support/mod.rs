//! Test helpers: the `chat` binary as a child process, and a raw-TCP peer speaking JSON lines.
//!
//! Every wait is bounded; a child is killed on drop, also when a test panics.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use chat_core::{Event, Request};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Generous: the machine is shared and the binary is a debug build.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// The `chat` binary, running.
pub struct Chat {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    /// Every stdout line so far, timestamps removed (for assertions and failure messages).
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Chat {
    /// Starts `chat --addr ADDR --nick NICK` plus `extra`, with piped stdin and stdout.
    pub fn spawn(addr: &str, nick: &str, extra: &[&str]) -> Chat {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chat"))
            .args(["--addr", addr, "--nick", nick])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the chat binary");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let stderr = Arc::clone(&stderr);
            thread::spawn(move || {
                let mut text = String::new();
                let _ = pipe.read_to_string(&mut text);
                if let Ok(mut all) = stderr.lock() {
                    all.push_str(&text);
                }
            });
        }
        Chat {
            child,
            stdin,
            stdout: rx,
            seen: Vec::new(),
            stderr,
        }
    }

    /// Types `line` (a newline is added).
    pub fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}").expect("write to chat's stdin");
        stdin.flush().expect("flush chat's stdin");
    }

    /// Types every line of `script`, then closes stdin (end of input).
    pub fn run_script(&mut self, script: &[&str]) {
        for line in script {
            self.type_line(line);
        }
        self.close_input();
    }

    pub fn close_input(&mut self) {
        self.stdin = None;
    }

    /// Waits for the next stdout line (timestamp removed); `None` at EOF or after `TIMEOUT`.
    pub fn next_line(&mut self) -> Option<String> {
        let line = self.stdout.recv_timeout(TIMEOUT).ok()?;
        let line = strip_stamp(&line);
        self.seen.push(line.clone());
        Some(line)
    }

    /// Reads lines until one satisfies `wanted`, and returns it; panics with the transcript if
    /// none does within `TIMEOUT`.
    pub fn expect(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    let line = strip_stamp(&line);
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "chat never printed {what}; it printed:\n{}\nstderr:\n{}",
                        self.seen.join("\n"),
                        self.stderr()
                    )
                }
            }
        }
    }

    /// Reads every remaining line until stdout closes, then the exit status (both bounded).
    pub fn finish(&mut self) -> (Vec<String>, ExitStatus) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => self.seen.push(strip_stamp(&line)),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!(
                    "chat did not finish; it printed:\n{}\nstderr:\n{}",
                    self.seen.join("\n"),
                    self.stderr()
                ),
            }
        }
        let status = self.wait();
        (self.seen.clone(), status)
    }

    /// Ends its input (as a user's Ctrl-D does), reads every remaining line, and asserts that it
    /// exited 0 (with what it printed otherwise); returns every line it printed.
    pub fn end_input_and_exit_zero(&mut self) -> Vec<String> {
        self.close_input();
        let (lines, status) = self.finish();
        assert!(
            status.success(),
            "exit status {status:?}\n{}",
            lines.join("\n")
        );
        lines
    }

    /// The exit status, waiting at most `TIMEOUT`.
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "chat did not exit; it printed:\n{}",
                self.seen.join("\n")
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// What it wrote to stderr so far (complete once it exited).
    pub fn stderr(&self) -> String {
        // The reader thread fills it at EOF; give it a moment after the exit.
        thread::sleep(Duration::from_millis(50));
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn transcript(&self) -> String {
        self.seen.join("\n")
    }
}

impl Drop for Chat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Removes the `[HH:MM:SS] ` prefix, checking its shape; lines without one (the `/help` list)
/// are returned as they are.
pub fn strip_stamp(line: &str) -> String {
    let bytes = line.as_bytes();
    let stamped = bytes.len() >= 11
        && bytes[0] == b'['
        && bytes[3] == b':'
        && bytes[6] == b':'
        && bytes[9] == b']'
        && bytes[10] == b' '
        && [1, 2, 4, 5, 7, 8]
            .iter()
            .all(|&i| bytes[i].is_ascii_digit());
    if stamped {
        line[11..].to_string()
    } else {
        line.to_string()
    }
}

/// A client speaking the protocol directly over TCP, to check what the `chat` binary sends.
pub struct Peer {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Peer {
    /// Connects and joins `room` as `nickname`; returns once the `welcome` arrived.
    pub fn join(addr: SocketAddr, nickname: &str, room: &str) -> Peer {
        let stream = TcpStream::connect(addr).expect("peer connects");
        stream
            .set_read_timeout(Some(TIMEOUT))
            .expect("set read timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone the stream"));
        let mut peer = Peer { stream, reader };
        peer.send(&Request::Join {
            nickname: nickname.into(),
            room: Some(room.into()),
        });
        match peer.next_event() {
            Event::Welcome { .. } => peer,
            other => panic!("{nickname} expected welcome, got {other:?}"),
        }
    }

    pub fn send(&mut self, request: &Request) {
        self.stream
            .write_all(&request.to_line())
            .expect("peer writes");
    }

    /// The next event (panics on timeout, EOF or an unparsable line).
    pub fn next_event(&mut self) -> Event {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).expect("peer reads");
        assert!(n > 0, "the server closed the peer's connection");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad event {line:?}: {e}"))
    }

    /// Asks for a `pong`, and returns every event that arrived before it: with replies in
    /// request order, that is everything the server sent this peer up to now.
    pub fn events_so_far(&mut self) -> Vec<Event> {
        let marker = chat_core::Id::Str("peer-sync".into());
        self.send(&Request::Ping {
            id: Some(marker.clone()),
        });
        let mut events = Vec::new();
        for _ in 0..10_000 {
            match self.next_event() {
                Event::Pong { id: Some(id) } if id == marker => return events,
                event => events.push(event),
            }
        }
        panic!("no pong after 10,000 events");
    }
}

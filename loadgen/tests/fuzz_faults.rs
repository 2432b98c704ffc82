//! `loadgen fuzz` catches broken servers: one that stops answering (a hang), one that dies on
//! some input (a crash), one that answers with the wrong error codes (wrong answers), while a
//! correct server passes, also through the command line.
//!
//! The correct and the broken servers are the in-process `loadgen::testkit::TestServer`, with
//! its faults; the one that dies is a TestServer behind a small proxy in this file that drops
//! everything, listener included, the moment a client sends the byte 0xFF (never valid UTF-8,
//! and something the fuzzer sends often).

use loadgen::fuzz::{fuzz, FuzzConfig, FuzzReport, ProblemKind};
use loadgen::testkit::{nothing_listens, Faults, TestServer};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A short run against `addr` (a few seconds is plenty to find these faults).
fn run(addr: SocketAddr, duration: Duration, witness_timeout: Duration) -> FuzzReport {
    let config = FuzzConfig {
        duration,
        witness_timeout,
        conns: 4,
        ..FuzzConfig::new(addr)
    };
    fuzz(&config).expect("the server is reachable at the start")
}

/// A server that stops writing for 30 s, 2 s into the run, is a hang: the witness's reply does
/// not come within its 3 s bound. The run stops at once instead of running out its time.
#[test]
fn a_server_that_stops_answering_is_a_hang() {
    let faults = Faults {
        stall: Some((Duration::from_secs(2), Duration::from_secs(30))),
        ..Faults::default()
    };
    let server = TestServer::start(faults).expect("test server");
    let report = run(
        server.addr(),
        Duration::from_secs(20),
        Duration::from_secs(3),
    );
    let text = report.render();
    assert!(!report.ok(), "{text}");
    assert_eq!(report.hangs, 1, "{text}");
    assert_eq!(report.crashes, 0, "{text}");
    assert_eq!(report.problems[0].kind, ProblemKind::Hang, "{text}");
    assert_eq!(report.problems[0].who, "witness", "{text}");
    assert!(report.problems[0].detail.contains("no reply"), "{text}");
    assert!(
        report.wall < Duration::from_secs(15),
        "it stopped early\n{text}"
    );
    assert!(text.starts_with("FAILED: 1 hang"), "{text}");
}

/// A server that dies on some input is a crash: a refused connection, or the witness cut off
/// with nobody able to connect again.
#[test]
fn a_server_that_dies_on_some_input_is_a_crash() {
    let upstream = TestServer::start(Faults::default()).expect("test server");
    let fragile = FragileProxy::start(upstream.addr());
    let report = run(
        fragile.addr,
        Duration::from_secs(20),
        Duration::from_secs(5),
    );
    let text = report.render();
    assert!(
        fragile.died.load(Ordering::SeqCst),
        "the trigger was never sent\n{text}"
    );
    assert_eq!(report.crashes, 1, "{text}");
    assert_eq!(report.hangs, 0, "{text}");
    let crash = report
        .problems
        .iter()
        .find(|p| p.kind == ProblemKind::Crash)
        .expect("the crash is listed");
    assert!(crash.detail.contains("refused"), "{text}");
    assert!(
        report.wall < Duration::from_secs(15),
        "it stopped early\n{text}"
    );
}

/// A server that answers every error with the wrong code gives wrong answers: the witness's
/// bad frames get `unknown_type` instead of the code the spec names.
#[test]
fn wrong_error_codes_are_wrong_answers() {
    let faults = Faults {
        wrong_error_codes: true,
        ..Faults::default()
    };
    let server = TestServer::start(faults).expect("test server");
    let report = run(
        server.addr(),
        Duration::from_secs(4),
        Duration::from_secs(5),
    );
    let text = report.render();
    assert_eq!((report.crashes, report.hangs), (0, 0), "{text}");
    assert!(report.wrong_answers > 0, "{text}");
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.who == "witness" && p.detail.contains("expected error `bad_request`")),
        "{text}"
    );
}

/// The command line: a correct server gets `OK` and exit status 0; a broken one `FAILED`, the
/// seed to replay, and exit status 1.
#[test]
fn command_line_verdict_and_exit_status() {
    let loadgen = env!("CARGO_BIN_EXE_loadgen");
    let good = TestServer::start(Faults::default()).expect("test server");
    let output = Command::new(loadgen)
        .args(["fuzz", "--addr", &good.addr().to_string()])
        .args(["--duration", "3s", "--seed", "7", "--conns", "4"])
        .args(["--witness-timeout", "5s"]) // a shared machine may be slow; a hang is not the point
        .output()
        .expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.starts_with("OK: no crash, no hang, no wrong answer"),
        "{stdout}"
    );
    assert!(stdout.contains("seed 7"), "{stdout}");
    assert!(stdout.contains("witness "), "{stdout}");

    let broken = TestServer::start(Faults {
        wrong_error_codes: true,
        ..Faults::default()
    })
    .expect("test server");
    let output = Command::new(loadgen)
        .args(["fuzz", "--addr", &broken.addr().to_string()])
        .args(["--duration", "3s", "--seed", "7", "--conns", "4"])
        .args(["--witness-timeout", "5s"])
        .output()
        .expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.starts_with("FAILED: "), "{stdout}");
    assert!(stdout.contains("replay with --seed 7"), "{stdout}");
}

/// Nobody listening at the start is an error (exit status 2), not a verdict.
#[test]
fn no_server_at_the_start_is_an_error() {
    let closed = nothing_listens();
    let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "fuzz",
            "--addr",
            &closed.addr().to_string(),
            "--duration",
            "1s",
        ])
        .output()
        .expect("loadgen runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot connect"), "{stderr}");
}

/// A proxy in front of a correct server that "crashes" (closes every connection and stops
/// listening) when a client sends the byte 0xFF.
struct FragileProxy {
    addr: SocketAddr,
    died: Arc<AtomicBool>,
    /// Set when the test ends: the accept loop stops.
    done: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl FragileProxy {
    fn start(upstream: SocketAddr) -> FragileProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("addr");
        let died = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let sockets: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let acceptor = {
            let (died, done) = (Arc::clone(&died), Arc::clone(&done));
            std::thread::spawn(move || {
                // Polls, so that it notices the "crash" and drops the listener (refusing all
                // later connections) without a connection to wake it.
                while !died.load(Ordering::SeqCst) && !done.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            proxy(client, upstream, &sockets, &died);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
                drop(listener);
                for socket in sockets.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                    let _ = socket.shutdown(Shutdown::Both);
                }
            })
        };
        FragileProxy {
            addr,
            died,
            done,
            acceptor: Some(acceptor),
        }
    }
}

impl Drop for FragileProxy {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Pumps bytes both ways between `client` and a new connection to `upstream`; the byte 0xFF
/// from the client kills the proxy.
fn proxy(
    client: TcpStream,
    upstream: SocketAddr,
    sockets: &Arc<Mutex<Vec<TcpStream>>>,
    died: &Arc<AtomicBool>,
) {
    let _ = client.set_nonblocking(false);
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    let handles = [client.try_clone(), server.try_clone()];
    let [Ok(client_handle), Ok(server_handle)] = handles else {
        return;
    };
    sockets
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend([client_handle, server_handle]);
    let (Ok(mut client_in), Ok(mut server_out)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let died = Arc::clone(died);
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match client_in.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if buf[..n].contains(&0xFF) {
                died.store(true, Ordering::SeqCst);
                break;
            }
            if server_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = server_out.shutdown(Shutdown::Write);
    });
    let (mut server_in, mut client_out) = (server, client);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut server_in, &mut client_out);
        let _ = client_out.shutdown(Shutdown::Write);
    });
}

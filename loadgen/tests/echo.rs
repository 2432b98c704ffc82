//! The echo workload (`loadgen run --workload echo`) and the echo profile (`loadgen check
//! --profile echo`), against small echo servers written here: a correct one (a thread per
//! client, every byte straight back), and broken ones the tools must catch.

mod support;

use loadgen::check::{run_checks, CheckConfig, Outcome, Profile};
use loadgen::run::{run, RunConfig, Workload};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How an echo server under test behaves.
#[derive(Clone, Copy, PartialEq)]
enum Echo {
    /// Every byte back, as it comes.
    Correct,
    /// Line by line, but every 50th line of a client is lost.
    DropsLines,
    /// Line by line, but each pair of lines comes back swapped (a lone line waits for its
    /// partner until the client half-closes).
    SwapsLines,
    /// Stops at EOF without echoing what it had not written yet (reads everything first).
    WaitsForEof,
}

/// An echo server on a free port, stopped (and its threads ended) when dropped.
struct EchoServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl EchoServer {
    fn start(kind: Echo) -> EchoServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let acceptor = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                std::thread::spawn(move || serve(stream, kind));
            }
        });
        EchoServer {
            addr,
            stop,
            acceptor: Some(acceptor),
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn serve(mut stream: TcpStream, kind: Echo) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut out = match stream.try_clone() {
        Ok(out) => out,
        Err(_) => return,
    };
    match kind {
        Echo::Correct => {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 || out.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
        Echo::WaitsForEof => {
            let mut all = Vec::new();
            let _ = stream.read_to_end(&mut all);
        }
        Echo::DropsLines | Echo::SwapsLines => {
            let mut held: Option<Vec<u8>> = None;
            let mut reader = BufReader::new(stream);
            let mut n = 0;
            loop {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                n += 1;
                let written = match kind {
                    Echo::DropsLines if n % 50 == 0 => Ok(()),
                    Echo::SwapsLines => match held.take() {
                        Some(first) => out.write_all(&[line, first].concat()),
                        None => {
                            held = Some(line);
                            Ok(())
                        }
                    },
                    _ => out.write_all(&line),
                };
                if written.is_err() {
                    break;
                }
            }
            if let Some(last) = held {
                let _ = out.write_all(&last);
            }
        }
    }
    let _ = out.shutdown(Shutdown::Both);
}

fn echo_config() -> CheckConfig {
    CheckConfig {
        profile: Profile::Echo,
        reply_timeout: Duration::from_secs(5),
        ..CheckConfig::default()
    }
}

/// A correct echo server passes every scenario of the profile.
#[test]
fn echo_profile_passes_a_correct_server() {
    let server = EchoServer::start(Echo::Correct);
    let report = run_checks(server.addr, &echo_config());
    println!("{report}");
    assert_eq!(report.failed(), 0, "{report}");
    assert_eq!(report.passed(), 8, "{report}");
}

/// Each broken server fails the scenario that is about its fault.
#[test]
fn echo_profile_fails_broken_servers() {
    for (kind, scenario) in [
        (Echo::DropsLines, "echo.keeps_order"),
        (Echo::SwapsLines, "echo.keeps_order"),
        (Echo::WaitsForEof, "echo.one_line"),
    ] {
        let server = EchoServer::start(kind);
        let config = CheckConfig {
            only: Some(scenario.into()),
            reply_timeout: Duration::from_secs(1),
            ..echo_config()
        };
        let report = run_checks(server.addr, &config);
        assert!(
            matches!(report.outcome(scenario), Some(Outcome::Fail(_))),
            "{scenario} should fail\n{report}"
        );
    }
}

fn echo_run(addr: SocketAddr, rate: Option<f64>) -> RunConfig {
    let mut config = RunConfig::new(addr, 50);
    config.workload = Workload::Echo;
    config.rate = rate;
    config.warmup = Duration::from_millis(300);
    config.duration = Duration::from_secs(1);
    config.connect_timeout = Duration::from_secs(20);
    config.drain = Duration::from_secs(5);
    config
}

/// The echo workload, open and closed loop: every line comes back to its sender, in order,
/// and nothing else arrives.
#[test]
fn echo_workload_open_and_closed() {
    let server = EchoServer::start(Echo::Correct);
    for rate in [Some(20.0), None] {
        let report = run(&echo_run(server.addr, rate)).expect("run");
        assert!(support::server_clean(&report), "{}", report.headline);
        let m = &report.messages;
        assert!(m.acked > 0 && m.acked == m.sent, "{m:?}");
        assert_eq!(m.deliveries, 0);
        assert_eq!(report.connections.connected, 50);
    }
}

/// A server that loses lines is caught; one that reorders them too.
#[test]
fn echo_workload_catches_lost_and_reordered_lines() {
    let server = EchoServer::start(Echo::DropsLines);
    let report = run(&echo_run(server.addr, Some(100.0))).expect("run");
    assert!(report.messages.lost > 0, "{}", report.headline);
    assert!(!report.ok);
    let server = EchoServer::start(Echo::SwapsLines);
    let report = run(&echo_run(server.addr, Some(100.0))).expect("run");
    assert!(report.messages.out_of_order > 0, "{}", report.headline);
    assert!(!report.ok);
}

/// The exact commands the course's exercise is graded with. A grade judges the student's
/// server, not the grading machine's speed, so the runs tolerate a generator that fell behind:
/// a correct server passes (exit 0) however busy the machine.
#[test]
fn grading_commands() {
    let server = EchoServer::start(Echo::Correct);
    let addr = server.addr.to_string();
    for closed in [false, true] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_loadgen"));
        command.args(["run", "--addr", &addr, "--workload", "echo"]);
        command.args(["--conns", "100", "--rate", "100", "--duration", "5s"]);
        command.arg("--tolerate-generator-lag");
        if closed {
            command.arg("--closed");
        }
        let output = command.output().expect("loadgen run runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}");
        assert!(
            stdout.contains("100 connected, 0 failed, 0 dropped"),
            "{stdout}"
        );
        assert!(
            stdout.contains(" 0 lost, 0 duplicated, 0 out of order"),
            "{stdout}"
        );
    }
    let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["check", "--addr", &addr, "--profile", "echo"])
        .output()
        .expect("loadgen check runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("8 passed, 0 failed, 0 skipped"), "{stdout}");
}

/// Churn works without a handshake too: an echo connection that leaves waits for its last
/// line, reconnects, and is ready at once.
#[test]
fn echo_workload_with_churn() {
    let server = EchoServer::start(Echo::Correct);
    let mut config = echo_run(server.addr, Some(20.0));
    config.churn = Some(10.0);
    config.duration = Duration::from_secs(2);
    let report = run(&config).expect("run");
    let churn = report.churn.as_ref().expect("churn section");
    assert!(
        churn.closes >= 5 && churn.reconnect_failures == 0,
        "{}",
        report.headline
    );
    support::assert_nothing_lost(&report);
}

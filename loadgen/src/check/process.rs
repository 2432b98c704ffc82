//! The assertions every server crate's tests call. They own the server *process*, so they can
//! start it with the limits the scenarios need, signal it, and starve it of file descriptors.

use super::client::{join_group, Client};
use super::{run_checks, CheckConfig, CheckReport, Ctx};
use crate::server_process::{ServerProcess, SpawnOptions};
use serde_json::json;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// The limits [`assert_conformance`] starts servers with. Small, so the limit scenarios are quick.
const MAX_CONNS: usize = 32;
const MAX_LINE: usize = 4096;
const IDLE_TIMEOUT_SECS: u64 = 2;
const MAX_BACKLOG: usize = 256 * 1024;
const RATE_LIMIT: u32 = 10;
const MAX_CONNS_PER_IP: usize = 4;

/// Runs the whole conformance suite against `program` (started with `model_args` plus limit
/// flags), and panics with the report if any scenario FAILs. `single`: the server serves one
/// client at a time (multi-client scenarios SKIP).
///
/// Three processes are started: one with `--max-conns 32 --max-line 4096 --idle-timeout 2
/// --max-backlog 262144` for everything else, one with `--rate-limit 10` for the rate scenario
/// (a rate limit would trip all the others), and one with `--max-conns-per-ip 4` for the
/// per-address scenario.
pub fn assert_conformance(program: &Path, model_args: &[&str], single: bool) {
    let limits = [
        "--max-conns".to_string(),
        MAX_CONNS.to_string(),
        "--max-line".into(),
        MAX_LINE.to_string(),
        "--idle-timeout".into(),
        IDLE_TIMEOUT_SECS.to_string(),
        "--max-backlog".into(),
        MAX_BACKLOG.to_string(),
    ];
    let config = CheckConfig {
        single,
        max_line: Some(MAX_LINE),
        max_conns: Some(MAX_CONNS),
        idle_timeout: Some(Duration::from_secs(IDLE_TIMEOUT_SECS)),
        max_backlog: Some(MAX_BACKLOG),
        ..CheckConfig::default()
    };
    let main = check_process(program, model_args, &limits, &config);

    // The scenarios that need a limit which would trip all the others each get a process of
    // their own; they SKIP against the first one, and their verdicts come from theirs.
    let rate = CheckConfig {
        rate_limit: Some(RATE_LIMIT),
        ..CheckConfig::default()
    };
    let per_ip = CheckConfig {
        max_conns_per_ip: Some(MAX_CONNS_PER_IP),
        ..CheckConfig::default()
    };
    let mut all = main;
    for (scenario, flag, value, config) in [
        (
            "limits.rate_limited",
            "--rate-limit",
            RATE_LIMIT as usize,
            rate,
        ),
        (
            "limits.max_conns_per_ip",
            "--max-conns-per-ip",
            MAX_CONNS_PER_IP,
            per_ip,
        ),
    ] {
        let config = CheckConfig {
            single,
            only: Some(scenario.into()),
            ..config
        };
        let own = check_process(
            program,
            model_args,
            &[flag.into(), value.to_string()],
            &config,
        );
        all.results.retain(|r| r.name != scenario);
        all.results.extend(own.results);
    }
    println!("conformance of {}:\n{all}", program.display());
    let failures: Vec<String> = all.failures().map(ToString::to_string).collect();
    assert!(
        failures.is_empty(),
        "{} is not conformant ({}):\n{}",
        program.display(),
        all.summary(),
        failures.join("\n")
    );
}

fn check_process(
    program: &Path,
    model_args: &[&str],
    limits: &[String],
    config: &CheckConfig,
) -> CheckReport {
    let limits: Vec<&str> = limits.iter().map(String::as_str).collect();
    let server = start_with(program, model_args, &limits);
    run_checks(server.addr(), config)
}

/// Starts `program` with `model_args` followed by `extra`, or panics saying what failed to start.
pub(super) fn start_with(program: &Path, model_args: &[&str], extra: &[&str]) -> ServerProcess {
    let args: Vec<&str> = model_args.iter().chain(extra).copied().collect();
    ServerProcess::spawn(program, &args)
        .unwrap_or_else(|e| panic!("cannot start {} {args:?}: {e}", program.display()))
}

/// Starts `program`, connects `clients` joined clients (1 for one-client-at-a-time servers),
/// sends SIGTERM, and asserts that every client receives `error` `shutting_down` and then EOF,
/// and that the process exits with status 0 within 2 s (plus a little slack).
pub fn assert_graceful_shutdown(program: &Path, model_args: &[&str], clients: usize) {
    let mut server = ServerProcess::spawn(program, model_args)
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let ctx = Ctx::new(server.addr(), CheckConfig::default());
    // Each in its own room, so nobody receives `joined` about the others.
    let mut joined: Vec<Client> = (0..clients)
        .map(|_| {
            join_group(&ctx, &ctx.fresh("room"), &["stayer"])
                .map(|mut group| group.remove(0))
                .unwrap_or_else(|e| panic!("before the signal: {e}"))
        })
        .collect();
    let started = Instant::now();
    let status = server
        .terminate(Duration::from_millis(2500))
        .unwrap_or_else(|e| panic!("waiting for {} failed: {e}", program.display()));
    let took = started.elapsed();
    match status {
        Some(status) => assert!(
            status.success(),
            "{} exited with {status} after SIGTERM; expected status 0",
            program.display()
        ),
        None => panic!(
            "{} did not exit within 2.5 s of SIGTERM (it was killed)",
            program.display()
        ),
    }
    for client in &mut joined {
        client
            .expect_error("shutting_down")
            .and_then(|_| client.expect_closed())
            .unwrap_or_else(|e| panic!("after SIGTERM ({took:?} to exit): {e}"));
    }
}

/// Starts `program` with an open-file limit of 64, opens ~150 connections, and asserts that the
/// server keeps serving the client it had, does not spin a core while connections wait, and
/// accepts again once the extra connections are gone.
pub fn assert_survives_fd_exhaustion(program: &Path, model_args: &[&str]) {
    let options = SpawnOptions {
        fd_limit: Some(64),
        ..SpawnOptions::default()
    };
    let server = ServerProcess::spawn_with(program, model_args, &options)
        .unwrap_or_else(|e| panic!("cannot start {} with 64 fds: {e}", program.display()));
    let config = CheckConfig {
        reply_timeout: Duration::from_secs(10),
        ..CheckConfig::default()
    };
    let ctx = Ctx::new(server.addr(), config);
    // One client, so one-at-a-time servers qualify too; it talks to itself through its room.
    let mut first = join_group(&ctx, &ctx.fresh("room"), &["first"])
        .map(|mut group| group.remove(0))
        .unwrap_or_else(|e| panic!("before the overflow: {e}"));
    // The overflow: extra ones are accepted and refused, or wait in the listen backlog.
    let overflow: Vec<TcpStream> = (0..150)
        .filter_map(|_| TcpStream::connect_timeout(&server.addr(), Duration::from_secs(1)).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    round_trip(&mut first, "during", "during the overflow");
    let busy = cpu_share(server.pid(), Duration::from_secs(1));
    assert!(
        busy < 0.5,
        "{} used {:.0}% of a core over 1 s while out of file descriptors (it spins on accept)",
        program.display(),
        busy * 100.0
    );
    round_trip(&mut first, "after", "after a second of overflow");
    drop(first);
    drop(overflow);
    // Descriptors are free again: a new client gets in. The server may still be working
    // through the closed overflow (accepting and closing each), so a refusal is retried.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match Client::join(&ctx, &ctx.fresh("late"), Some(&ctx.fresh("room"))) {
            Ok(_) => return,
            Err(e) if Instant::now() > deadline => {
                panic!("15 s after the overflow was closed, a new client still fails: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// `--linger 0` asks for closes that abort: a RST, and no `TIME-WAIT` left behind (lesson 09).
/// So a connection the server ends (here with `quit`) must be closed as soon as its last frames
/// are written, not half-closed and kept until the client's FIN: that close would end in the
/// very `TIME-WAIT` the flag is meant to avoid. The client keeps its socket open and reads
/// nothing; within 3 s, well before a lingering close gives up (`CLOSE_LINGER`, 5 s), the
/// server must hold no socket on its port but the listener.
pub fn assert_aborts_with_linger_zero(program: &Path, model_args: &[&str]) {
    let server = start_with(program, model_args, &["--linger", "0"]);
    let port = server.addr().port();
    let ctx = Ctx::new(server.addr(), CheckConfig::default());
    let (mut client, _) = Client::join(&ctx, &ctx.fresh("quitter"), None)
        .unwrap_or_else(|e| panic!("before the quit: {e}"));
    // The probe sees the connection while it is open (or it could not see it linger).
    let open = server_sockets(port);
    assert!(
        open.contains(&"ESTABLISHED"),
        "/proc/net/tcp shows no open connection on port {port}: {open:?}"
    );
    client
        .send(&json!({"type": "quit"}))
        .unwrap_or_else(|e| panic!("sending quit: {e}"));
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let left = server_sockets(port);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} {model_args:?} --linger 0 still holds the connection 3 s after `quit` \
             ({left:?}): it closes politely (FIN, then waits) instead of aborting",
            program.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(client);
}

/// The states of the TCP sockets bound to local `port`, the listener excepted (from
/// /proc/net/tcp and tcp6; the kernel's names: `ESTABLISHED`, `FIN_WAIT2`, `TIME_WAIT` ...).
fn server_sockets(port: u16) -> Vec<&'static str> {
    const STATES: [&str; 12] = [
        "?",
        "ESTABLISHED",
        "SYN_SENT",
        "SYN_RECV",
        "FIN_WAIT1",
        "FIN_WAIT2",
        "TIME_WAIT",
        "CLOSE",
        "CLOSE_WAIT",
        "LAST_ACK",
        "LISTEN",
        "CLOSING",
    ];
    let mut states = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        // `sl local_address rem_address st ...`, addresses as `HEXADDR:HEXPORT`.
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (fields.get(1), fields.get(3)) else {
                continue;
            };
            let local_port = local
                .rsplit_once(':')
                .and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok());
            let state = usize::from_str_radix(state, 16)
                .map_or("?", |n| STATES.get(n).copied().unwrap_or("?"));
            if local_port == Some(port) && state != "LISTEN" {
                states.push(state);
            }
        }
    }
    states
}

/// A message to the client's own room comes back.
fn round_trip(client: &mut Client, id: &str, when: &str) {
    client
        .send(&json!({"type": "message", "content": when, "id": id}))
        .and_then(|()| client.expect(&json!({"type": "broadcast", "content": when, "id": id})))
        .unwrap_or_else(|e| panic!("{when}: {e}"));
}

/// The fraction of one core process `pid` used over `interval` (user + system time).
fn cpu_share(pid: u32, interval: Duration) -> f64 {
    let before = cpu_ticks(pid);
    let started = Instant::now();
    std::thread::sleep(interval);
    let ticks = cpu_ticks(pid).saturating_sub(before);
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / per_second / started.elapsed().as_secs_f64()
}

/// utime + stime of `pid` in clock ticks, from /proc/<pid>/stat.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/stat: {e}"));
    // The command name (field 2) is in parentheses and may contain spaces: start after it.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of the file are utime and stime; `fields[0]` is field 3.
    let field = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(14) + field(15)
}

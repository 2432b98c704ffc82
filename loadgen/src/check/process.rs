//! The assertions every server crate's tests call. They own the server *process*, so they can
//! start it with the limits the scenarios need, signal it, and starve it of file descriptors.

use super::client::{join_group, Client};
use super::{run_checks, CheckConfig, CheckReport, Ctx};
use crate::server_process::{ServerProcess, SpawnOptions};
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
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
/// server must hold no socket for that connection.
///
/// The probe follows this one connection, by both of its ends, and not every socket on the
/// server's port: the tests bind clients to other loopback addresses too (127.0.0.x), and a
/// socket of one of those may hold the same port number (in `TIME-WAIT`, say) while a server on
/// 127.0.0.1 listens on it. Such a socket says nothing about this server.
pub fn assert_aborts_with_linger_zero(program: &Path, model_args: &[&str]) {
    let server = start_with(program, model_args, &["--linger", "0"]);
    let ctx = Ctx::new(server.addr(), CheckConfig::default());
    let (mut client, _) = Client::join(&ctx, &ctx.fresh("quitter"), None)
        .unwrap_or_else(|e| panic!("before the quit: {e}"));
    let from = client.local_addr().unwrap_or_else(|e| panic!("{e}"));
    // The probe sees the connection while it is open (or it could not see it linger).
    let open = server_side(server.addr(), from);
    assert!(
        open.contains(&"ESTABLISHED"),
        "/proc/net/tcp shows no open server socket for {} <- {from}: {open:?}",
        server.addr()
    );
    client
        .send(&json!({"type": "quit"}))
        .unwrap_or_else(|e| panic!("sending quit: {e}"));
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let left = server_side(server.addr(), from);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} {model_args:?} --linger 0 still holds the connection {} <- {from} 3 s after \
             `quit` ({left:?}): it closes politely (FIN, then waits) instead of aborting",
            program.display(),
            server.addr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(client);
}

/// The states of the server's sockets for one connection (local address `server`, remote
/// `client`). Empty once the server holds nothing for it.
fn server_side(server: SocketAddr, client: SocketAddr) -> Vec<&'static str> {
    tcp_sockets()
        .into_iter()
        .filter(|&(local, remote, _)| local == server && remote == client)
        .map(|(_, _, state)| state)
        .collect()
}

/// Every TCP socket of this network namespace, from /proc/net/tcp and tcp6: its local address,
/// its remote address and its state in the kernel's names (`ESTABLISHED`, `FIN_WAIT2`,
/// `TIME_WAIT` ...).
fn tcp_sockets() -> Vec<(SocketAddr, SocketAddr, &'static str)> {
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
    let mut sockets = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        // `sl local_address rem_address st ...`, addresses as `HEXADDR:HEXPORT`.
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(remote), Some(state)) = (
                fields.get(1).and_then(|f| proc_addr(f)),
                fields.get(2).and_then(|f| proc_addr(f)),
                fields.get(3),
            ) else {
                continue;
            };
            let state = usize::from_str_radix(state, 16)
                .map_or("?", |n| STATES.get(n).copied().unwrap_or("?"));
            sockets.push((local, remote, state));
        }
    }
    sockets
}

/// An address as /proc/net/tcp{,6} writes it: the address's 32-bit words in hex, each as the
/// machine holds it in memory (so `0100007F` is 127.0.0.1 on x86), then `:` and the port in hex.
fn proc_addr(text: &str) -> Option<SocketAddr> {
    let (hex, port) = text.rsplit_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| {
        hex.get(i * 8..i * 8 + 8)
            .and_then(|w| u32::from_str_radix(w, 16).ok())
            .map(u32::to_ne_bytes)
    };
    let ip = match hex.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            let v6 = Ipv6Addr::from(bytes);
            // A dual-stack socket shows an IPv4 peer as ::ffff:a.b.c.d.
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Shutdown, TcpListener};

    #[test]
    fn proc_addresses_read_back() {
        let v4 = u32::from_ne_bytes([127, 0, 0, 1]);
        let text = format!("{v4:08X}:1F90");
        assert_eq!(proc_addr(&text), Some("127.0.0.1:8080".parse().unwrap()));
        let loopback6 = format!(
            "{:08X}{:08X}{:08X}{:08X}:0050",
            0,
            0,
            0,
            u32::from_ne_bytes([0, 0, 0, 1])
        );
        assert_eq!(proc_addr(&loopback6), Some("[::1]:80".parse().unwrap()));
        let mapped = u32::from_ne_bytes([0, 0, 0xff, 0xff]);
        let text = format!("{:08X}{:08X}{mapped:08X}{v4:08X}:0050", 0, 0);
        assert_eq!(proc_addr(&text), Some("127.0.0.1:80".parse().unwrap()));
        assert_eq!(proc_addr("0100007F"), None);
        assert_eq!(proc_addr("0100007:0050"), None);
    }

    /// The probe finds a real connection's server end, follows it to `TIME_WAIT` when the server
    /// closes first, and does not mistake another connection on the same port for it.
    #[test]
    fn the_probe_follows_one_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        let client = TcpStream::connect(server).unwrap();
        let (accepted, from) = listener.accept().unwrap();
        assert_eq!(from, client.local_addr().unwrap());
        let other = TcpStream::connect(server).unwrap();
        let (_other_accepted, from_other) = listener.accept().unwrap();
        assert_eq!(from_other, other.local_addr().unwrap());
        assert_eq!(server_side(server, from), ["ESTABLISHED"]);
        // The server closes first, then the client: the server's end waits in TIME_WAIT.
        accepted.shutdown(Shutdown::Both).unwrap();
        drop(accepted);
        let mut buf = [0u8; 1];
        assert_eq!(std::io::Read::read(&mut &client, &mut buf).unwrap(), 0);
        drop(client);
        let deadline = Instant::now() + Duration::from_secs(5);
        while server_side(server, from) != ["TIME_WAIT"] {
            assert!(Instant::now() < deadline, "{:?}", server_side(server, from));
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(server_side(server, from_other), ["ESTABLISHED"]);
        assert!(server_side(server, "127.0.0.1:1".parse().unwrap()).is_empty());
    }

    /// What failed a CI run: a client bound to 127.0.0.2 left a `TIME_WAIT` on its port, and a
    /// server on 127.0.0.1 got that same port (the addresses differ, so the kernel allows it).
    /// The probe must not take that socket for the server's.
    #[test]
    fn a_time_wait_on_the_port_from_another_address_is_not_the_servers() {
        let elsewhere = TcpListener::bind("127.0.0.1:0").unwrap();
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&"127.0.0.2:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        socket
            .connect(&elsewhere.local_addr().unwrap().into())
            .unwrap();
        let stale: TcpStream = socket.into();
        let port = stale.local_addr().unwrap().port();
        let (accepted, _) = elsewhere.accept().unwrap();
        drop(stale); // the client closes first: its end waits in TIME_WAIT
        drop(accepted);

        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let server = listener.local_addr().unwrap();
        let client = TcpStream::connect(server).unwrap();
        let (_accepted, from) = listener.accept().unwrap();
        // The stale socket is there, on the server's port: a probe by port alone would see it.
        let stale_address = SocketAddr::from(([127, 0, 0, 2], port));
        let waiting = tcp_sockets()
            .into_iter()
            .any(|(local, _, state)| local == stale_address && state == "TIME_WAIT");
        assert!(waiting, "no TIME_WAIT for {stale_address} in /proc/net/tcp");
        assert_eq!(server_side(server, from), ["ESTABLISHED"]);
        drop(client);
    }
}

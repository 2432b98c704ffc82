//! `--max-conns-per-ip` needs each new connection's address, which chat-uring asks through the
//! ring (`SO_PEERNAME`, see `peer_name.rs`). The conformance suite checks the limit on IPv4
//! loopback; this test listens on IPv6 and takes IPv4 clients too, so the addresses come back
//! in both layouts: `::1`, and `127.0.0.1` mapped into IPv6 (`::ffff:127.0.0.1`).

mod support;

use loadgen::testkit::TestClient;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{io_uring_usable, program, Guard};

/// Starts chat-uring with `args` and returns it with the address it printed.
fn start(args: &[&str]) -> (Guard, SocketAddr) {
    let child = Command::new(program())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chat-uring");
    let mut guard = Guard(child);
    let stdout = guard.0.stdout.take().expect("stdout is piped");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the first line");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("chat-uring {args:?} did not start: {line:?}"));
    (guard, addr)
}

/// A client from `addr`'s family to the server's `port` that got its pong: served.
fn served(addr: SocketAddr, label: &str) -> TestClient {
    let mut client = TestClient::connect(addr);
    client.send(&json!({"type": "ping", "id": label}));
    let reply = client.recv();
    assert_eq!(
        reply,
        json!({"type": "pong", "id": label}),
        "{label} served"
    );
    client
}

/// One more client from an address that has its one connection: `server_full`, then closed.
fn refused(addr: SocketAddr, label: &str) {
    let mut client = TestClient::connect(addr);
    let reply = client.recv();
    assert_eq!(reply["code"], "server_full", "{label}: got {reply}");
    assert!(client.sees_eof(), "{label}: not closed after server_full");
}

/// With `--max-conns-per-ip 1` on `[::]`: one connection from `::1` and one from `127.0.0.1` are
/// both served (two addresses), a second from either gets `server_full`, and once the first
/// from `127.0.0.1` leaves, that address is served again.
#[test]
fn limits_each_address_on_a_dual_stack_listener() {
    if !io_uring_usable("limits_each_address_on_a_dual_stack_listener") {
        return;
    }
    if TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_err() {
        eprintln!("SKIPPED limits_each_address_on_a_dual_stack_listener: no IPv6 loopback here");
        return;
    }
    let (_server, addr) = start(&["--addr", "[::]:0", "--max-conns-per-ip", "1"]);
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port()));
    let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, addr.port()));

    let first_v4 = served(v4, "first from 127.0.0.1");
    let mut first_v6 = served(v6, "first from ::1");
    refused(v4, "second from 127.0.0.1");
    refused(v6, "second from ::1");

    drop(first_v4);
    // The server notices the hang-up within a turn or two: retry a while.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut client = TestClient::connect(v4);
        client.send(&json!({"type": "ping", "id": "again"}));
        let reply = client.recv();
        if reply == json!({"type": "pong", "id": "again"}) {
            break;
        }
        assert_eq!(reply["code"], "server_full", "got {reply}");
        assert!(Instant::now() < deadline, "127.0.0.1 is still refused");
        std::thread::sleep(Duration::from_millis(50));
    }
    first_v6.send(&json!({"type": "ping", "id": "still"}));
    assert_eq!(first_v6.recv(), json!({"type": "pong", "id": "still"}));
}

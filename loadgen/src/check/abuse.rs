//! Abuse limits (`PROTOCOL.md`, guarantees 6 and 8):
//! - **slowloris**: only a complete frame counts as activity, so a client that dribbles one line
//!   a byte at a time is closed with `idle_timeout` once `--idle-timeout` has passed since its
//!   last complete frame, however busy its trickle keeps the socket;
//! - **`--max-conns-per-ip N`**: the (N+1)-th connection from one address gets `server_full`
//!   and is closed, while other addresses are still served. The connections come from
//!   127.0.0.3 and 127.0.0.4 when the server is on IPv4 loopback (any 127.0.0.x reaches it on
//!   Linux), so the scenario's address is not shared with the rest of the checker.

use super::client::{Client, Next};
use super::{Ctx, Need, Scenario};
use serde_json::json;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub(crate) fn scenarios() -> Vec<Scenario> {
    use Need::{IdleTimeout, MaxConnsPerIp, TwoClients};
    let s = |name, needs, run| Scenario { name, needs, run };
    vec![
        s("limits.slowloris", &[IdleTimeout], slowloris),
        s(
            "limits.max_conns_per_ip",
            &[TwoClients, MaxConnsPerIp],
            max_conns_per_ip,
        ),
    ]
}

/// A client that joins (its last complete frame) and then sends one byte of an endless line
/// every eighth of the timeout gets `idle_timeout` between the timeout and the timeout plus some
/// slack after its `join`, then the connection closes.
fn slowloris(ctx: &Ctx) -> Result<(), String> {
    let timeout = ctx.config.idle_timeout.unwrap_or_default();
    let started = Instant::now();
    let (mut client, _) = Client::join(ctx, &ctx.fresh("loris"), Some(&ctx.fresh("room")))?;
    let slack = Duration::from_millis(1500).max(timeout / 2);

    let stop = AtomicBool::new(false);
    let mut dribble = client.writer()?;
    let frame = std::thread::scope(|scope| {
        scope.spawn(|| {
            // Never a newline, and never more than a few dozen bytes: far below --max-line.
            let line =
                b"{\"type\":\"message\",\"content\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
            for byte in line.iter().cycle().take(200) {
                if stop.load(Ordering::SeqCst) || dribble.write_all(&[*byte]).is_err() {
                    return;
                }
                std::thread::sleep(timeout / 8);
            }
        });
        let next = client.next(started + timeout + slack);
        stop.store(true, Ordering::SeqCst);
        next
    })?;
    let elapsed = started.elapsed();
    let frame = match frame {
        Next::Frame(frame) => frame,
        Next::Timeout => {
            return Err(format!(
                "a client dribbling a line one byte every {:?} was not closed within {:?} \
                 (--idle-timeout {timeout:?} plus {slack:?}): bytes of an unfinished line must \
                 not count as activity",
                timeout / 8,
                timeout + slack
            ))
        }
        Next::Closed(how) => {
            return Err(format!(
                "a dribbling client was closed ({how}) without an `idle_timeout` error first"
            ))
        }
    };
    if frame["type"] != "error" || frame["code"] != "idle_timeout" {
        return Err(format!(
            "a dribbling client: expected error `idle_timeout`, got {frame}"
        ));
    }
    if elapsed + Duration::from_millis(100) < timeout {
        return Err(format!(
            "a dribbling client got idle_timeout after {elapsed:?}, before --idle-timeout \
             {timeout:?}"
        ));
    }
    client.expect_closed()
}

/// N connections from one address are served, the next one gets `server_full` and is closed,
/// another address is still served, and once one of the N leaves, the address is served again.
fn max_conns_per_ip(ctx: &Ctx) -> Result<(), String> {
    let limit = ctx.config.max_conns_per_ip.unwrap_or(0);
    if limit == 0 || limit > 200 {
        return Err(format!(
            "--max-conns-per-ip {limit}: start the server with a small limit, e.g. 4"
        ));
    }
    let (first_ip, other_ip) = match ctx.first().ip() {
        IpAddr::V4(ip) if ip.is_loopback() => (
            Some(Ipv4Addr::new(127, 0, 0, 3).into()),
            Some(Ipv4Addr::new(127, 0, 0, 4).into()),
        ),
        _ => (None, None), // our one address, and no second one to compare with
    };
    // Connections of earlier runs from this address may still be closing: retry a while.
    let deadline = Instant::now() + ctx.timeout() * 3;
    let mut served = loop {
        let mut served = Vec::with_capacity(limit);
        for i in 0..limit {
            match ping(ctx, first_ip, &format!("same-ip{i}"))? {
                Ok(client) => served.push(client),
                Err(_) if Instant::now() < deadline => break,
                Err(refused) => {
                    return Err(format!(
                        "connection {} of --max-conns-per-ip {limit} from one address was \
                         refused: {refused}",
                        i + 1
                    ))
                }
            }
        }
        if served.len() == limit {
            break served;
        }
        drop(served);
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut extra = connect_from(ctx, first_ip, "one-too-many")?;
    extra.expect_error("server_full")?;
    extra.expect_closed()?;
    if let Some(other) = other_ip {
        ping(ctx, Some(other), "other-ip")?
            .map_err(|e| format!("a connection from {other} was refused: {e}"))?;
    }
    served[0].still_works()?;
    // One leaves: its place is free again (once the server has noticed).
    served.pop();
    let deadline = Instant::now() + ctx.timeout() * 3;
    loop {
        match ping(ctx, first_ip, "after-leaving")? {
            Ok(_) => return Ok(()),
            Err(refused) if Instant::now() > deadline => {
                return Err(format!(
                    "after one of {limit} connections from one address closed, a new one is \
                     still refused: {refused}"
                ))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Connects from `source` (any port), pings, and returns the client if it got its pong, or the
/// refusal it got instead (`Err` of the outer result: anything else).
fn ping(ctx: &Ctx, source: Option<IpAddr>, label: &str) -> Result<Result<Client, String>, String> {
    let mut client = connect_from(ctx, source, label)?;
    Ok(match client.first_ping(&json!(label))? {
        None => Ok(client),
        Some(refusal) => Err(refusal),
    })
}

/// A client whose socket is bound to `source` before it connects (`None`: the usual address).
fn connect_from(ctx: &Ctx, source: Option<IpAddr>, label: &str) -> Result<Client, String> {
    let Some(source) = source else {
        return Client::connect_to(ctx, ctx.first(), label);
    };
    // The limit is per server process: every connection of this scenario goes to the first node.
    let addr = ctx.first();
    use socket2::{Domain, Socket, Type};
    let fail = |e: std::io::Error| format!("{label}: cannot connect from {source}: {e}");
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(fail)?;
    socket
        .bind(&SocketAddr::new(source, 0).into())
        .map_err(fail)?;
    socket
        .connect_timeout(&addr.into(), ctx.timeout())
        .map_err(fail)?;
    let stream: TcpStream = socket.into();
    Client::from_stream(ctx, label, stream)
}

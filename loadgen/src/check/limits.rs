//! The limits a server is started with: `--max-conns` (`server_full`), `--idle-timeout`
//! (`idle_timeout`) and `--rate-limit` (`rate_limited`). Each runs only when the checker is told
//! the server's setting.

use super::client::{Client, Next};
use super::{Ctx, Need, Scenario};
use serde_json::json;
use std::time::{Duration, Instant};

pub(crate) fn scenarios() -> Vec<Scenario> {
    use Need::{IdleTimeout, MaxConns, RateLimit, TwoClients};
    let s = |name, needs, run| Scenario { name, needs, run };
    vec![
        s("limits.server_full", &[TwoClients, MaxConns], server_full),
        s("limits.idle_timeout", &[IdleTimeout], idle_timeout),
        s("limits.rate_limited", &[RateLimit], rate_limited),
    ]
}

/// The most connections the server_full scenario opens.
const MAX_TESTABLE_CONNS: usize = 2000;

/// `--max-conns` is per server process: every connection goes to the first node.
fn server_full(ctx: &Ctx) -> Result<(), String> {
    let mut conns = fill_to_max_conns(ctx, "conn")?;
    let mut extra = Client::connect_to(ctx, ctx.first(), "one-too-many")?;
    extra.expect_error("server_full")?;
    extra.expect_closed()?;
    conns[0].still_works()?;
    drop(conns);
    wait_until_served(ctx)
}

/// Opens `--max-conns` connections to the first node (`{label}0`, `{label}1`, …), each answered
/// (a ping, its pong), and returns them: the server is full. Used over TCP here, and over
/// WebSocket by `websocket.rs`.
pub(super) fn fill_to_max_conns(ctx: &Ctx, label: &str) -> Result<Vec<Client>, String> {
    let max = ctx.config.max_conns.unwrap_or(0);
    if max > MAX_TESTABLE_CONNS {
        return Err(format!(
            "--max-conns {max} is more than this scenario opens ({MAX_TESTABLE_CONNS}); start \
             the server with a small limit, e.g. 32"
        ));
    }
    // Connections of earlier scenarios may not be gone yet: if the server is full before we
    // opened `max`, close everything, wait a little and try again.
    let deadline = Instant::now() + ctx.timeout() * 3;
    loop {
        let mut conns = Vec::with_capacity(max);
        let mut full_too_soon = None;
        for i in 0..max {
            let mut client = Client::connect_to(ctx, ctx.first(), &format!("{label}{i}"))?;
            if client.first_ping(&json!(i))?.is_some() {
                full_too_soon = Some(i);
                break;
            }
            conns.push(client);
        }
        match full_too_soon {
            Some(_) if Instant::now() < deadline => {
                drop(conns);
                std::thread::sleep(Duration::from_millis(100));
            }
            Some(i) => {
                return Err(format!(
                    "the server said server_full at connection {} of --max-conns {max} (and \
                     earlier connections were closed {} ms ago)",
                    i + 1,
                    (ctx.timeout() * 3).as_millis()
                ))
            }
            None => return Ok(conns),
        }
    }
}

/// After closing many connections: waits until the server has noticed and serves a new one.
fn wait_until_served(ctx: &Ctx) -> Result<(), String> {
    let deadline = Instant::now() + ctx.timeout() * 3;
    loop {
        // A server that still counts the old connections refuses this one: "not yet". Anything
        // else going wrong is retried too, until the deadline.
        let mut client = Client::connect_to(ctx, ctx.first(), "after-full")?;
        let got = match client.first_ping(&json!("free?")) {
            Ok(None) => return Ok(()),
            Ok(Some(refusal)) => refusal,
            Err(why) => why,
        };
        if Instant::now() > deadline {
            return Err(format!(
                "after closing every connection, a new one still gets {got}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn idle_timeout(ctx: &Ctx) -> Result<(), String> {
    let timeout = ctx.config.idle_timeout.unwrap_or_default();
    if ctx.config.single {
        // One client at a time: the active one first, then the silent one.
        pinging_client_survives(ctx, timeout)?;
        silent_client_is_closed(ctx, timeout)
    } else {
        std::thread::scope(|scope| {
            let pinger = scope.spawn(|| pinging_client_survives(ctx, timeout));
            let silent = silent_client_is_closed(ctx, timeout);
            let pinged = pinger
                .join()
                .unwrap_or_else(|_| Err("the pinging client panicked".into()));
            silent.and(pinged)
        })
    }
}

/// A client that pings every quarter of the timeout stays connected for 1.5 timeouts.
fn pinging_client_survives(ctx: &Ctx, timeout: Duration) -> Result<(), String> {
    let (mut client, _) = Client::join(ctx, &ctx.fresh("busy"), Some(&ctx.fresh("room")))?;
    let until = Instant::now() + timeout * 3 / 2;
    while Instant::now() < until {
        std::thread::sleep(timeout / 4);
        client
            .still_works()
            .map_err(|e| format!("a client pinging every {:?}: {e}", timeout / 4))?;
    }
    Ok(())
}

/// A joined client that says nothing gets `idle_timeout` after the timeout (not before), then
/// the connection closes.
fn silent_client_is_closed(ctx: &Ctx, timeout: Duration) -> Result<(), String> {
    let slack = Duration::from_millis(1500).max(timeout / 2);
    let nickname = ctx.fresh("quiet");
    let mut client = Client::connect(ctx, &nickname)?;
    let started = Instant::now();
    client.send(&json!({"type": "join", "nickname": nickname, "room": ctx.fresh("room")}))?;
    client.expect_event("welcome")?;
    let frame = match client.next(started + timeout + slack)? {
        Next::Frame(frame) => frame,
        Next::Timeout => {
            return Err(format!(
                "a silent client got nothing within {:?} (--idle-timeout {:?} plus {:?} slack)",
                timeout + slack,
                timeout,
                slack
            ))
        }
        Next::Closed(how) => {
            return Err(format!(
                "a silent client was closed ({how}) without an `idle_timeout` error first"
            ))
        }
    };
    let elapsed = started.elapsed();
    if frame["type"] != "error" || frame["code"] != "idle_timeout" {
        return Err(format!(
            "a silent client: expected error `idle_timeout`, got {frame}"
        ));
    }
    if elapsed + Duration::from_millis(100) < timeout {
        return Err(format!(
            "a silent client got idle_timeout after {elapsed:?}, before --idle-timeout {timeout:?}"
        ));
    }
    client.expect_closed()
}

fn rate_limited(ctx: &Ctx) -> Result<(), String> {
    let rate = ctx.config.rate_limit.unwrap_or(0) as usize;
    let burst = (2 * rate + 5).min(5000);
    let mut client = Client::connect(ctx, "burst")?;
    let lines: String = (0..burst)
        .map(|id| format!("{}\n", json!({"type": "ping", "id": id})))
        .collect();
    client.send_raw(lines.as_bytes())?;
    // One reply per request, in order: its pong, or `rate_limited` for a dropped one.
    let (mut answered, mut limited) = (0, 0);
    for id in 0..burst {
        let reply = client.recv()?;
        if reply == json!({"type": "pong", "id": id}) {
            answered += 1;
        } else if reply["type"] == "error" && reply["code"] == "rate_limited" {
            limited += 1;
        } else {
            return Err(format!(
                "request {id} of a burst of {burst}: expected its pong or error `rate_limited`, \
                 got {reply}"
            ));
        }
    }
    if limited == 0 {
        return Err(format!(
            "a burst of {burst} requests with --rate-limit {rate}: none was rate_limited"
        ));
    }
    if answered < rate {
        return Err(format!(
            "a burst of {burst} requests with --rate-limit {rate}: only {answered} answered, \
             the first {rate} (the bucket's burst) should be"
        ));
    }
    // The connection stays, and after a second the bucket has refilled.
    std::thread::sleep(Duration::from_millis(1100));
    client.still_works()?;
    client.still_works()
}

//! The scenarios only a cluster has: a node dies, and the shared state (Redis) goes away and
//! comes back. They need a way to do that to the cluster under test, a [`ClusterControl`]:
//! `--cluster-ctl PROGRAM` on the command line ([`CommandControl`]), or an implementation in
//! Rust in a test that owns the processes.
//!
//! What they hold the cluster to (PROTOCOL.md, version 1.1, "Cluster" and `unavailable`):
//! - a node killed with SIGKILL is gone for the others within 10 s: its members' rooms get
//!   `left`, and their nicknames can be taken again;
//! - while Redis is down, clients stay connected, `ping` is answered, and requests that need
//!   the cluster get `unavailable`; once it is back, the same connections chat again, with
//!   their nicknames and rooms, without reconnecting.

use super::client::{compact, join_group, Client, Next};
use super::{Ctx, Need, Scenario};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

/// How soon a dead node's members must leave their rooms (PROTOCOL.md, section 9).
const NODE_DEATH_BOUND: Duration = Duration::from_secs(10);

/// How long Redis stays down in the restart scenario.
const REDIS_DOWN_FOR: Duration = Duration::from_millis(1500);

/// A client waiting this long sends a `ping`, so that an `--idle-timeout` (the conformance
/// runs use 2 s) does not close it.
const KEEPALIVE: Duration = Duration::from_millis(500);

/// How long a cluster may take to heal once Redis is back (reconnect backoff plus
/// re-registration).
const HEAL_BOUND: Duration = Duration::from_secs(15);

/// Does to the cluster what the scenarios need. Each method returns once it is done.
pub trait ClusterControl: Send + Sync + std::fmt::Debug {
    /// Kills the node serving `addr` with SIGKILL. It stays dead for the rest of the run.
    fn kill_node(&self, addr: SocketAddr) -> Result<(), String>;
    /// Stops Redis (the nodes lose their connections).
    fn stop_redis(&self) -> Result<(), String>;
    /// Starts Redis again, on the same address, and returns once it accepts connections.
    fn start_redis(&self) -> Result<(), String>;
}

/// `--cluster-ctl PROGRAM`: runs `PROGRAM kill-node ADDR`, `PROGRAM stop-redis`,
/// `PROGRAM start-redis`; each must exit 0.
#[derive(Debug, Clone)]
pub struct CommandControl {
    program: String,
}

impl CommandControl {
    pub fn new(program: String) -> Self {
        CommandControl { program }
    }

    fn run(&self, args: &[&str]) -> Result<(), String> {
        let status = Command::new(&self.program)
            .args(args)
            .status()
            .map_err(|e| format!("cannot run {} {}: {e}", self.program, args.join(" ")))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} {} exited with {status}",
                self.program,
                args.join(" ")
            ))
        }
    }
}

impl ClusterControl for CommandControl {
    fn kill_node(&self, addr: SocketAddr) -> Result<(), String> {
        self.run(&["kill-node", &addr.to_string()])
    }

    fn stop_redis(&self) -> Result<(), String> {
        self.run(&["stop-redis"])
    }

    fn start_redis(&self) -> Result<(), String> {
        self.run(&["start-redis"])
    }
}

pub(crate) fn scenarios() -> Vec<Scenario> {
    use Need::{ClusterControl, TwoClients};
    let s = |name, needs, run| Scenario { name, needs, run };
    vec![
        // Redis first: the node killed next stays dead.
        s(
            "cluster.redis_restarted",
            &[TwoClients, ClusterControl],
            redis_restarted,
        ),
        s(
            "cluster.node_killed",
            &[TwoClients, ClusterControl],
            node_killed,
        ),
    ]
}

fn control(ctx: &Ctx) -> Result<&dyn ClusterControl, String> {
    ctx.config
        .cluster
        .as_deref()
        .ok_or_else(|| "no cluster control".to_string())
}

fn redis_restarted(ctx: &Ctx) -> Result<(), String> {
    let control = control(ctx)?;
    let room = ctx.fresh("room");
    let mut group = join_group(ctx, &room, &["ana", "ben"])?;
    let names: Vec<String> = group.iter().map(|c| c.label.clone()).collect();
    exchange(&mut group, 0, "before")?;

    control.stop_redis()?;
    let outcome = while_redis_is_down(ctx, &mut group, &room);
    // Whatever happened, Redis comes back before this scenario returns.
    control.start_redis()?;
    outcome?;

    // The same connections chat again, once their nodes have reconnected and re-registered.
    let deadline = Instant::now() + HEAL_BOUND;
    send_until_served(&mut group, "healed", deadline)?;
    group[1].expect(&json!({"type": "broadcast", "from": names[0], "content": "healed"}))?;
    exchange(&mut group, 1, "after")?;
    // Their claims and places were asserted again: the room lists both, the names are taken.
    let mut users = names.clone();
    users.sort();
    group[1].send(&json!({"type": "list_users"}))?;
    group[1].expect(&json!({"type": "users", "room": room, "users": users}))?;
    let mut thief = Client::connect(ctx, "thief")?;
    thief.send(&json!({"type": "join", "nickname": names[0].to_uppercase(), "room": room}))?;
    thief.expect_error("nickname_taken")?;
    Ok(())
}

/// While Redis is down: the connections stay, `ping` works, the rest is `unavailable`.
fn while_redis_is_down(ctx: &Ctx, group: &mut [Client], room: &str) -> Result<(), String> {
    for client in group.iter_mut() {
        client.still_works()?;
    }
    // A node may take a moment to notice: until it does, a request may still be served.
    let deadline = Instant::now() + ctx.timeout() * 2;
    loop {
        group[0].send(&json!({"type": "message", "content": "into the void"}))?;
        let reply = group[0].recv()?;
        if reply["type"] == "error" && reply["code"] == "unavailable" {
            break;
        }
        if reply["type"] == "broadcast" {
            // Served before the node noticed: the other member gets it too.
            group[1].expect(&json!({"type": "broadcast", "content": "into the void"}))?;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{}: with Redis down, a message got {} (expected error `unavailable`)",
                group[0].label,
                compact(&reply)
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let newcomer = ctx.fresh("newcomer");
    let mut late = Client::connect(ctx, &newcomer)?;
    late.send(&json!({"type": "join", "nickname": newcomer, "room": room}))?;
    late.expect_error("unavailable")?;
    group[1].send(&json!({"type": "list_users"}))?;
    group[1].expect_error("unavailable")?;
    let until = Instant::now() + REDIS_DOWN_FOR;
    while Instant::now() < until {
        std::thread::sleep(KEEPALIVE);
        for client in group.iter_mut() {
            client.still_works()?;
        }
        late.still_works()?;
    }
    Ok(())
}

/// The first member sends a message with content `what` until it is served (its broadcast
/// comes back) rather than answered `unavailable`. The others ping meanwhile (idle timeouts).
fn send_until_served(group: &mut [Client], what: &str, deadline: Instant) -> Result<(), String> {
    loop {
        for other in group[1..].iter_mut() {
            other.still_works()?;
        }
        let client = &mut group[0];
        client.send(&json!({"type": "message", "content": what}))?;
        let reply = client.recv()?;
        if reply["type"] == "broadcast" && reply["content"] == what {
            return Ok(());
        }
        if reply["type"] != "error" || reply["code"] != "unavailable" {
            return Err(format!(
                "{}: after Redis came back, expected `unavailable` or the broadcast, got {}",
                client.label,
                compact(&reply)
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{}: still `unavailable` {} s after Redis came back",
                client.label,
                HEAL_BOUND.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Member `from` sends `content`; every member of the group receives it.
fn exchange(group: &mut [Client], from: usize, content: &str) -> Result<(), String> {
    group[from].send(&json!({"type": "message", "content": content}))?;
    let sender = group[from].label.clone();
    for member in group.iter_mut() {
        member.expect(&json!({"type": "broadcast", "from": sender, "content": content}))?;
    }
    Ok(())
}

fn node_killed(ctx: &Ctx) -> Result<(), String> {
    let control = control(ctx)?;
    if ctx.addrs.len() < 2 {
        return Err("needs two nodes or more (--addr A,B)".into());
    }
    let (victim, survivor) = (ctx.addrs[ctx.addrs.len() - 1], ctx.addrs[0]);
    let room = ctx.fresh("room");
    let watcher_name = ctx.fresh("watcher");
    let (mut watcher, _) = join_on(ctx, survivor, &watcher_name, &room)?;
    let mut doomed = Vec::new();
    for base in ["doomed", "lost"] {
        let nickname = ctx.fresh(base);
        doomed.push(join_on(ctx, victim, &nickname, &room)?.0);
        watcher.expect(&json!({"type": "joined", "nickname": nickname, "room": room}))?;
    }
    let names: HashSet<String> = doomed.iter().map(|c| c.label.clone()).collect();

    control.kill_node(victim)?;
    ctx.mark_dead(victim);
    let killed_at = Instant::now();
    // Every member of the dead node leaves the room, within the bound.
    let mut gone = HashSet::new();
    let deadline = killed_at + NODE_DEATH_BOUND;
    while gone != names {
        // The watcher pings while it waits, so a server's idle timeout leaves it alone.
        let frame = match watcher.next(deadline.min(Instant::now() + KEEPALIVE))? {
            Next::Frame(frame) if frame["type"] == "pong" => continue,
            Next::Frame(frame) => frame,
            Next::Timeout if Instant::now() < deadline => {
                watcher.send(&json!({"type": "ping"}))?;
                continue;
            }
            Next::Timeout => {
                return Err(format!(
                    "{} s after SIGKILL of the node at {victim}, the room has had `left` for \
                     {gone:?} of {names:?}",
                    NODE_DEATH_BOUND.as_secs()
                ))
            }
            Next::Closed(how) => return Err(format!("the watcher's connection closed ({how})")),
        };
        let nickname = frame["nickname"].as_str().unwrap_or_default().to_string();
        if frame["type"] != "left" || frame["room"] != room.as_str() || !names.contains(&nickname) {
            return Err(format!(
                "after the node's death the watcher expected `left` events, got {}",
                compact(&frame)
            ));
        }
        gone.insert(nickname);
    }
    let took = killed_at.elapsed();
    // Their nicknames are free again, on a live node. (The heirs stay connected until the
    // end, so the watcher sees only their `joined`.)
    let mut heirs = Vec::new();
    for name in &names {
        let (heir, welcome) = join_on(ctx, survivor, name, &room)
            .map_err(|e| format!("{took:?} after the kill, {name} cannot be taken again: {e}"))?;
        if !welcome["users"]
            .as_array()
            .is_some_and(|users| users.contains(&Value::from(name.as_str())))
        {
            return Err(format!(
                "a new {name} joined, but not in the list: {welcome}"
            ));
        }
        watcher.expect(&json!({"type": "joined", "nickname": name, "room": room}))?;
        heirs.push(heir);
    }
    Ok(())
}

/// Connects to `addr` and joins `room` as `nickname`; returns the client and the `welcome`.
fn join_on(
    ctx: &Ctx,
    addr: SocketAddr,
    nickname: &str,
    room: &str,
) -> Result<(Client, Value), String> {
    let mut client = Client::connect_to(ctx, addr, nickname)?;
    client.send(&json!({"type": "join", "nickname": nickname, "room": room}))?;
    let welcome = client.expect_event("welcome")?;
    Ok((client, welcome))
}

#[cfg(test)]
mod tests {
    use super::super::{CheckConfig, Ctx};
    use super::*;

    /// Clients go to the nodes in turn, so two consecutive clients are on different nodes; a
    /// node marked dead gets no more clients.
    #[test]
    fn clients_are_placed_on_the_live_nodes_in_turn() {
        let addrs: Vec<SocketAddr> = (1..=3)
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
            .collect();
        let ctx = Ctx::with_addrs(&addrs, CheckConfig::default());
        let placed: Vec<SocketAddr> = (0..6).map(|_| ctx.place()).collect();
        assert_eq!(placed, [addrs.clone(), addrs.clone()].concat());
        ctx.mark_dead(addrs[2]);
        let placed: HashSet<SocketAddr> = (0..6).map(|_| ctx.place()).collect();
        assert_eq!(placed, HashSet::from([addrs[0], addrs[1]]));
        assert_eq!(ctx.first(), addrs[0]);
    }

    /// `--cluster-ctl PROGRAM`: a program that exits 0 did it, anything else is an error
    /// that names the command.
    #[test]
    fn command_control_reports_failures() {
        assert_eq!(CommandControl::new("true".into()).stop_redis(), Ok(()));
        let failed =
            CommandControl::new("false".into()).kill_node(SocketAddr::from(([127, 0, 0, 1], 9)));
        assert!(failed.is_err_and(|e| e.contains("false kill-node 127.0.0.1:9")));
        let missing = CommandControl::new("/nonexistent/ctl".into()).start_redis();
        assert!(missing.is_err_and(|e| e.contains("cannot run")));
    }
}

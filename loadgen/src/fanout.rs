//! A correctness run for the servers' 10,000-connection tests: many connections in rooms, every
//! member sends, and every delivery is accounted for.
//!
//! Unlike `loadgen run`, which measures, this only *verifies*: it opens `conns` connections,
//! joins them in rooms of `room_size`, waits until everyone has joined (so every member is owed
//! every message), lets each member send `messages_per_conn` messages with
//! `id = "<sender>:<seq>"`, and checks each member received each broadcast of its room exactly
//! once and every sender's messages in order (PROTOCOL.md, guarantees 2 and 3).
//!
//! The server must run in another process: 10,000 connections are 10,000 descriptors on each
//! side, and a process may hold 20,000.

use anyhow::{bail, Context};
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};

/// What to run.
#[derive(Debug, Clone)]
pub struct FanoutSpec {
    /// Connections to open.
    pub conns: usize,
    /// Members per room; the last room may be smaller.
    pub room_size: usize,
    /// Messages each member sends.
    pub messages_per_conn: usize,
    /// Connection attempts (connect + join) in flight at once: a ramp, so the server's listen
    /// backlog is not flooded.
    pub connect_concurrency: usize,
    /// The whole run stops by itself after this long.
    pub deadline: Duration,
}

impl FanoutSpec {
    pub fn new(conns: usize, room_size: usize, messages_per_conn: usize) -> Self {
        FanoutSpec {
            conns,
            room_size: room_size.max(1),
            messages_per_conn,
            connect_concurrency: 256,
            deadline: Duration::from_secs(120),
        }
    }
}

/// What happened. A perfect run has `connected == conns`, `delivered == expected` and zero
/// lost, duplicated and out of order.
#[derive(Debug, Clone, Default)]
pub struct FanoutReport {
    pub conns: usize,
    pub connected: usize,
    pub failed_connects: usize,
    /// Messages sent, all members together.
    pub sent: u64,
    /// Deliveries owed: for each member, the messages of everyone in its room (itself included).
    pub expected: u64,
    /// Distinct broadcasts received.
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// The first few problems, for the panic message.
    pub errors: Vec<String>,
    pub elapsed: Duration,
}

impl FanoutReport {
    pub fn is_perfect(&self) -> bool {
        self.connected == self.conns
            && self.failed_connects == 0
            && self.delivered == self.expected
            && self.lost == 0
            && self.duplicated == 0
            && self.out_of_order == 0
    }

    /// Panics with the whole report unless the run was perfect.
    pub fn assert_perfect(&self) {
        assert!(self.is_perfect(), "fan-out run was not perfect: {self:#?}");
    }
}

/// Runs the check against a server at `addr`. Blocking: it builds its own tokio runtime.
pub fn run_rooms(addr: SocketAddr, spec: &FanoutSpec) -> anyhow::Result<FanoutReport> {
    run_rooms_over(&[addr], spec)
}

/// Like [`run_rooms`], over the nodes of one cluster: member `i` connects to
/// `addrs[i % addrs.len()]`, so every room has members on several nodes and every broadcast
/// crosses them.
pub fn run_rooms_over(addrs: &[SocketAddr], spec: &FanoutSpec) -> anyhow::Result<FanoutReport> {
    if addrs.is_empty() {
        bail!("a fan-out run needs at least one address");
    }
    let _ = chat_core::net::raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(run_async(addrs.to_vec(), spec.clone()))
}

/// What one member task found.
#[derive(Debug, Default)]
struct MemberResult {
    connected: bool,
    sent: u64,
    expected: u64,
    delivered: u64,
    duplicated: u64,
    out_of_order: u64,
    error: Option<String>,
}

async fn run_async(addrs: Vec<SocketAddr>, spec: FanoutSpec) -> anyhow::Result<FanoutReport> {
    if spec.conns == 0 {
        bail!("a fan-out run needs at least one connection");
    }
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + spec.deadline;
    let ramp = Arc::new(Semaphore::new(spec.connect_concurrency.max(1)));
    // Members report "joined" (or failed) here; the coordinator then says "go" to everyone.
    let (joined_tx, mut joined_rx) = tokio::sync::mpsc::unbounded_channel::<bool>();
    let (go_tx, go_rx) = watch::channel(false);

    let mut tasks = Vec::with_capacity(spec.conns);
    for member in 0..spec.conns {
        let room = member / spec.room_size;
        let room_len = spec.room_size.min(spec.conns - room * spec.room_size);
        let task = Member {
            index: member,
            room,
            room_len,
            messages: spec.messages_per_conn,
        };
        let addr = addrs[member % addrs.len()];
        let (ramp, joined_tx, go_rx) = (ramp.clone(), joined_tx.clone(), go_rx.clone());
        tasks.push(tokio::spawn(async move {
            tokio::time::timeout_at(deadline, task.run(addr, ramp, joined_tx, go_rx))
                .await
                .unwrap_or_else(|_| MemberResult {
                    error: Some(format!("member {member}: deadline reached")),
                    ..MemberResult::default()
                })
        }));
    }
    drop(joined_tx);

    // Wait until every member has joined or failed, then start the messages.
    let mut reported = 0;
    while reported < spec.conns {
        match tokio::time::timeout_at(deadline, joined_rx.recv()).await {
            Ok(Some(_)) => reported += 1,
            _ => break,
        }
    }
    let _ = go_tx.send(true);

    let mut report = FanoutReport {
        conns: spec.conns,
        ..FanoutReport::default()
    };
    for task in tasks {
        let result = task.await.unwrap_or_else(|e| MemberResult {
            error: Some(format!("member task panicked: {e}")),
            ..MemberResult::default()
        });
        if result.connected {
            report.connected += 1;
        } else {
            report.failed_connects += 1;
        }
        report.sent += result.sent;
        report.expected += result.expected;
        report.delivered += result.delivered;
        report.duplicated += result.duplicated;
        report.out_of_order += result.out_of_order;
        if let Some(error) = result.error {
            if report.errors.len() < 10 {
                report.errors.push(error);
            }
        }
    }
    report.lost = report.expected.saturating_sub(report.delivered);
    report.elapsed = started.elapsed();
    Ok(report)
}

/// One connection of the run.
struct Member {
    index: usize,
    room: usize,
    /// Members in this member's room, itself included.
    room_len: usize,
    messages: usize,
}

impl Member {
    async fn run(
        self,
        addr: SocketAddr,
        ramp: Arc<Semaphore>,
        joined: tokio::sync::mpsc::UnboundedSender<bool>,
        mut go: watch::Receiver<bool>,
    ) -> MemberResult {
        let mut result = MemberResult::default();
        // Connect and join under the ramp permit.
        let permit = ramp.acquire().await;
        let stream = match self.connect_and_join(addr).await {
            Ok(stream) => stream,
            Err(e) => {
                result.error = Some(format!("member {}: {e:#}", self.index));
                let _ = joined.send(false);
                return result;
            }
        };
        drop(permit);
        result.connected = true;
        let _ = joined.send(true);
        let (reader, mut writer) = stream;
        if go.wait_for(|&go| go).await.is_err() {
            result.error = Some("coordinator gone".into());
            return result;
        }

        // Send everything at once: pipelining is part of what the servers must handle.
        let mut batch = String::new();
        for seq in 1..=self.messages {
            batch.push_str(&format!(
                "{{\"type\":\"message\",\"content\":\"m{seq} from {}\",\"id\":\"{}:{seq}\"}}\n",
                self.index, self.index
            ));
        }
        if let Err(e) = writer.write_all(batch.as_bytes()).await {
            result.error = Some(format!("member {}: write failed: {e}", self.index));
            return result;
        }
        result.sent = self.messages as u64;
        result.expected = (self.room_len * self.messages) as u64;

        // Receive until everything owed has arrived; the caller's deadline bounds the wait.
        let mut last_seq: HashMap<u64, u64> = HashMap::new();
        let mut lines = reader.lines();
        while result.delivered < result.expected {
            let line = match lines.next_line().await {
                Ok(Some(line)) => line,
                Ok(None) => {
                    result.error = Some(format!("member {}: server closed", self.index));
                    break;
                }
                Err(e) => {
                    result.error = Some(format!("member {}: read failed: {e}", self.index));
                    break;
                }
            };
            let Some((sender, seq)) = broadcast_id(&line) else {
                continue; // joined/left notices and the like
            };
            let last = last_seq.entry(sender).or_insert(0);
            if seq <= *last {
                result.duplicated += 1;
            } else {
                if seq != *last + 1 {
                    result.out_of_order += 1;
                }
                *last = seq;
                result.delivered += 1;
            }
        }
        let _ = writer.write_all(b"{\"type\":\"quit\"}\n").await;
        result
    }

    async fn connect_and_join(
        &self,
        addr: SocketAddr,
    ) -> anyhow::Result<(
        BufReader<tokio::net::tcp::OwnedReadHalf>,
        tokio::net::tcp::OwnedWriteHalf,
    )> {
        let stream = TcpStream::connect(addr).await.context("connect")?;
        stream.set_nodelay(true)?;
        let (reader, mut writer) = stream.into_split();
        let mut reader = BufReader::new(reader);
        let join = format!(
            "{{\"type\":\"join\",\"nickname\":\"f{}\",\"room\":\"room{}\"}}\n",
            self.index, self.room
        );
        writer
            .write_all(join.as_bytes())
            .await
            .context("send join")?;
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).await.context("read welcome")? == 0 {
                bail!("closed before welcome");
            }
            let event: Value = serde_json::from_str(&line).context("reply is not JSON")?;
            match event["type"].as_str() {
                Some("welcome") => return Ok((reader, writer)),
                Some("error") => bail!("join refused: {}", line.trim()),
                _ => continue,
            }
        }
    }
}

/// The `(sender, seq)` of a broadcast line with an id `"<sender>:<seq>"`.
fn broadcast_id(line: &str) -> Option<(u64, u64)> {
    let event: Value = serde_json::from_str(line).ok()?;
    if event["type"] != "broadcast" {
        return None;
    }
    let (sender, seq) = event["id"].as_str()?.split_once(':')?;
    Some((sender.parse().ok()?, seq.parse().ok()?))
}

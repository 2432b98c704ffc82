//! Time-dependent behaviour, tested in-process with tokio's clock paused (as mini-redis does):
//! the server runs on the test's runtime, real sockets on 127.0.0.1, and the clock only moves
//! when the test moves it or when every task is waiting (then tokio jumps straight to the next
//! timer). A 120-second idle timeout takes no real time.

use chat_core::ServerArgs;
use clap::Parser;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    server: ServerArgs,
}

/// Starts the server on this runtime with `flags`; returns its address, its stop token and its
/// task.
async fn start(flags: &[&str]) -> (SocketAddr, CancellationToken, JoinHandle<()>) {
    let args = Flags::parse_from(std::iter::once("chat-async").chain(flags.iter().copied())).server;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let stop = CancellationToken::new();
    let server = tokio::spawn(chat_async::run(listener, args, stop.clone()));
    (addr, stop, server)
}

struct Client {
    lines: Lines<BufReader<OwnedReadHalf>>,
    writer: OwnedWriteHalf,
}

impl Client {
    async fn join(addr: SocketAddr, nickname: &str) -> Client {
        let (reader, writer) = TcpStream::connect(addr)
            .await
            .expect("connect")
            .into_split();
        let mut client = Client {
            lines: BufReader::new(reader).lines(),
            writer,
        };
        // Each in a room of its own, so no `joined` of another client comes in between.
        let request = json!({"type": "join", "nickname": nickname, "room": nickname});
        client.send(request).await;
        assert_eq!(client.recv().await.expect("welcome")["type"], "welcome");
        client
    }

    async fn send(&mut self, request: Value) {
        let line = format!("{request}\n");
        self.writer.write_all(line.as_bytes()).await.expect("send");
    }

    /// The next event, or `None` at EOF.
    async fn recv(&mut self) -> Option<Value> {
        let line = self.lines.next_line().await.ok()??;
        Some(serde_json::from_str(&line).expect("a JSON line"))
    }
}

/// A client that sends nothing gets `idle_timeout` when `--idle-timeout` has passed since its
/// last request (not before, and promptly after), then the connection closes.
#[tokio::test(start_paused = true)]
async fn a_silent_client_is_closed_after_the_idle_timeout() {
    let (addr, _stop, _server) = start(&["--idle-timeout", "120"]).await;
    let mut client = Client::join(addr, "sleepy").await;
    let joined_at = Instant::now();

    let event = client.recv().await.expect("an event before the close");
    let waited = joined_at.elapsed();
    assert_eq!(event["type"], "error");
    assert_eq!(event["code"], "idle_timeout");
    assert!(
        waited >= Duration::from_secs(119) && waited <= Duration::from_secs(121),
        "closed after {waited:?}, expected about 120 s"
    );
    assert!(client.recv().await.is_none(), "the connection closes");
}

/// `ping` counts as activity: a client pinging every 6 s outlives a 10 s timeout for a minute,
/// and is closed 10 s after its last ping.
#[tokio::test(start_paused = true)]
async fn pings_keep_a_client_alive() {
    let (addr, _stop, _server) = start(&["--idle-timeout", "10"]).await;
    let mut client = Client::join(addr, "pinger").await;
    for i in 0..10 {
        tokio::time::advance(Duration::from_secs(6)).await;
        client.send(json!({"type": "ping", "id": i})).await;
        let pong = client.recv().await.expect("pong");
        assert_eq!(
            pong,
            json!({"type": "pong", "id": i}),
            "after {} s",
            6 * (i + 1)
        );
    }
    let last_ping = Instant::now();
    let event = client.recv().await.expect("the timeout");
    assert_eq!(event["code"], "idle_timeout");
    let waited = last_ping.elapsed();
    assert!(
        waited >= Duration::from_secs(9) && waited <= Duration::from_secs(11),
        "closed {waited:?} after the last ping, expected about 10 s"
    );
}

/// Cancelling the stop token is a graceful shutdown: every client gets `shutting_down` then
/// EOF, new connections are refused, and `run` returns.
#[tokio::test(start_paused = true)]
async fn cancelling_the_token_shuts_down_gracefully() {
    let (addr, stop, server) = start(&["--idle-timeout", "0"]).await;
    let mut clients = Vec::new();
    for i in 0..5 {
        clients.push(Client::join(addr, &format!("c{i}")).await);
    }
    stop.cancel();
    for client in &mut clients {
        let event = client.recv().await.expect("shutting_down");
        assert_eq!(event["code"], "shutting_down");
        assert!(client.recv().await.is_none(), "then EOF");
    }
    drop(clients);
    tokio::time::timeout(Duration::from_secs(2), server)
        .await
        .expect("run returns within 2 s")
        .expect("run does not panic");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}

//! The flags of `chat-cluster`: every common server flag (chat-core's [`ServerArgs`]), plus
//! where Redis is, who this node is, the HTTP listener and the number of processes.

use chat_core::ServerArgs;
use clap::Parser;
use std::net::SocketAddr;
use std::str::FromStr;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "chat-cluster",
    about = "Chat server node: tokio, with rooms, nicknames and order shared through Redis \
             pub/sub, so many processes and machines serve one chat",
    // The supervisor starts its workers with the user's flags followed by its own overrides
    // (`--addr` with the real port, ...): a later value replaces an earlier one.
    args_override_self = true
)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub server: ServerArgs,

    /// The Redis that holds the shared state and carries the channels; `memory`: no Redis, one
    /// node with the shared state in its own memory (a chat of one process, with `/ws` and the
    /// browser client: the quickest way to try them).
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    pub redis: String,

    /// This node's id in the cluster (letters, digits, `-`, `_`, `.`). Default: generated
    /// from the host name, the process id and the time, so it is unique.
    #[arg(long)]
    pub node_id: Option<String>,

    /// Prepended to every Redis key and channel, so several clusters share one Redis.
    #[arg(long, default_value = "c10k:")]
    pub redis_prefix: String,

    /// Where `/health`, `/metrics`, the WebSocket endpoint `/ws` and the browser client `/`
    /// are served; `off` disables HTTP. Port 0 picks a free port (printed as `http on ADDR`).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http_addr: HttpAddr,

    /// Worker processes sharing `--addr` (and `--http-addr`) through SO_REUSEPORT, each a node
    /// of the cluster; this process supervises them.
    #[arg(long, default_value_t = 1)]
    pub processes: usize,

    /// Runtime worker threads per process. Default: one per core.
    #[arg(long, default_value_t = cores())]
    pub threads: usize,

    /// Set by the supervisor on the workers it starts (their index).
    #[arg(long, hide = true)]
    pub worker: Option<usize>,
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `--http-addr`: an address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpAddr(pub Option<SocketAddr>);

impl FromStr for HttpAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "off" {
            return Ok(HttpAddr(None));
        }
        s.parse()
            .map(|addr| HttpAddr(Some(addr)))
            .map_err(|e| format!("expected an address like 127.0.0.1:8080, or `off` ({e})"))
    }
}

/// A node id unique across machines and restarts: host, process id, and the time.
pub fn generated_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(24)
        .collect();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let host = if host.is_empty() { "node".into() } else { host };
    format!("{host}-{}-{nanos:x}", std::process::id())
}

//! The flags every server takes (the limits of `PROTOCOL.md` plus socket options), with the
//! protocol's defaults. Each server flattens [`ServerArgs`] into its own clap parser and adds only the
//! flags of its I/O model (`--workers`, `--backend`, `--trigger`...).

use crate::decoder::{LineDecoder, DEFAULT_MAX_LINE};
use crate::hub::HubConfig;
use crate::send_queue::{SendQueue, DEFAULT_MAX_BACKLOG};
use clap::Args;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Address to listen on; port 0 picks a free port (the real one is printed).
    #[arg(long, default_value = "127.0.0.1:8888")]
    pub addr: SocketAddr,

    /// Connections beyond this many get `server_full` and are closed.
    #[arg(long, default_value_t = 100_000)]
    pub max_conns: usize,

    /// Connections at once from one IP address; one more gets `server_full` and is closed
    /// (0 = no limit).
    #[arg(long, default_value_t = 0)]
    pub max_conns_per_ip: usize,

    /// Longest line in bytes, newline included; longer gets `line_too_long` and a close.
    #[arg(long, default_value_t = DEFAULT_MAX_LINE)]
    pub max_line: usize,

    /// Unsent bytes allowed per connection before a slow reader is disconnected.
    #[arg(long, default_value_t = DEFAULT_MAX_BACKLOG)]
    pub max_backlog: usize,

    /// Seconds of silence before `idle_timeout` closes a connection (0 = never).
    #[arg(long, default_value_t = 120)]
    pub idle_timeout: u64,

    /// Requests per second per connection, with a burst of the same size (0 = unlimited).
    #[arg(long, default_value_t = 0)]
    pub rate_limit: u32,

    #[command(flatten)]
    pub socket: SocketOptions,
}

/// Socket options, each one an experiment of lesson 09.
#[derive(Args, Debug, Clone)]
pub struct SocketOptions {
    /// listen(2) backlog: connections the kernel completes before we accept them
    /// (capped by /proc/sys/net/core/somaxconn).
    #[arg(long, default_value_t = 4096)]
    pub backlog: i32,

    /// TCP_NODELAY on accepted sockets (disable Nagle's algorithm): small replies leave at once.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub nodelay: bool,

    /// SO_REUSEADDR on the listener, so a restarted server can bind while old connections
    /// linger in TIME_WAIT.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub reuse_addr: bool,

    /// SO_REUSEPORT on the listener: several sockets (or processes) may listen on one port and
    /// the kernel spreads connections between them.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    pub reuse_port: bool,

    /// SO_KEEPALIVE with this idle time in seconds on accepted sockets (unset = off).
    #[arg(long)]
    pub keepalive: Option<u64>,

    /// TCP_KEEPINTVL: seconds between two keepalive probes once they have started (unset = the
    /// kernel's, /proc/sys/net/ipv4/tcp_keepalive_intvl). Only with --keepalive.
    #[arg(long, requires = "keepalive", value_parser = clap::value_parser!(u64).range(1..=32767))]
    pub keepalive_interval: Option<u64>,

    /// TCP_KEEPCNT: unanswered probes before the kernel declares the peer dead and errors the
    /// socket (unset = the kernel's, /proc/sys/net/ipv4/tcp_keepalive_probes). Only with
    /// --keepalive.
    #[arg(long, requires = "keepalive", value_parser = clap::value_parser!(u32).range(1..=127))]
    pub keepalive_count: Option<u32>,

    /// SO_RCVBUF in bytes on accepted sockets (unset = kernel default, autotuned).
    #[arg(long)]
    pub recv_buffer: Option<usize>,

    /// SO_SNDBUF in bytes on accepted sockets (unset = kernel default, autotuned).
    #[arg(long)]
    pub send_buffer: Option<usize>,

    /// SO_LINGER in seconds on accepted sockets; 0 makes close() send a RST (unset = off).
    #[arg(long)]
    pub linger: Option<u64>,
}

impl SocketOptions {
    /// `--linger 0`: the operator asked for closes that abort (a RST, no `TIME-WAIT`). A server
    /// that otherwise half-closes and waits for the client's FIN (a lingering close) closes at
    /// once instead, which is what was asked (lesson 09).
    pub fn aborts_on_close(&self) -> bool {
        self.linger == Some(0)
    }
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            backlog: 4096,
            nodelay: true,
            reuse_addr: true,
            reuse_port: false,
            keepalive: None,
            keepalive_interval: None,
            keepalive_count: None,
            recv_buffer: None,
            send_buffer: None,
            linger: None,
        }
    }
}

impl ServerArgs {
    /// The limits the Hub enforces.
    pub fn hub_config(&self) -> HubConfig {
        HubConfig {
            max_conns: self.max_conns,
            idle_timeout: self.idle_timeout(),
            rate_limit: self.rate_limit,
            max_conns_per_ip: self.max_conns_per_ip,
        }
    }

    pub fn idle_timeout(&self) -> Option<Duration> {
        (self.idle_timeout > 0).then(|| Duration::from_secs(self.idle_timeout))
    }

    /// A line decoder for a new connection.
    pub fn decoder(&self) -> LineDecoder {
        LineDecoder::new(self.max_line)
    }

    /// An outbound queue for a new connection.
    pub fn send_queue(&self) -> SendQueue {
        SendQueue::new(self.max_backlog)
    }
}

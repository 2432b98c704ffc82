//! `chat-cluster`: flags, the runtime, signals; or, with `--processes N`, the supervisor of N
//! worker processes (`prefork.rs`). The node itself is the library.
//!
//! ```text
//! cargo run --release -p chat-cluster -- --redis redis://127.0.0.1:6379 --addr 127.0.0.1:8888
//! cargo run --release -p chat-cluster -- --redis memory     # one node, no Redis; open the
//!                                                           # `http on` address in a browser
//! ```

use chat_cluster::args::{generated_node_id, ClusterArgs};
use chat_cluster::{http, keys, prefork, NodeConfig};
use chat_core::{net, SocketOptions};
use clap::Parser;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let args = ClusterArgs::parse();
    net::init_logging();
    match net::raise_fd_limit() {
        Ok(limit) => tracing::debug!("open-file limit: {limit}"),
        Err(e) => tracing::warn!("cannot raise the open-file limit: {e}"),
    }
    if let Some(id) = &args.node_id {
        if !keys::is_valid_node_id(id) {
            eprintln!("--node-id {id:?}: use 1 to 64 letters, digits, `-`, `_` or `.`");
            return ExitCode::from(2);
        }
    }
    if args.redis == chat_cluster::MEMORY && args.processes > 1 {
        eprintln!(
            "--redis memory keeps the chat in one process; --processes needs a Redis \
             (--redis redis://HOST:PORT) for its workers to share"
        );
        return ExitCode::from(2);
    }
    if args.processes > 1 && args.worker.is_none() {
        return prefork::supervise(&args);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(serve(args));
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ClusterArgs) -> anyhow::Result<()> {
    let node_id = args.node_id.clone().unwrap_or_else(generated_node_id);
    let listener = adopt(net::bind_listener(args.server.addr, &args.server.socket)?)?;
    let http = match args.http_addr.0 {
        Some(addr) => {
            // Shared like the chat port when the workers of `--processes` share it.
            let options = SocketOptions {
                reuse_port: args.server.socket.reuse_port,
                ..SocketOptions::default()
            };
            Some(adopt(net::bind_listener(addr, &options)?)?)
        }
        None => None,
    };
    let metrics = match &http {
        Some(_) => Some(http::install_metrics(&node_id)?),
        None => None,
    };

    let stop = CancellationToken::new();
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = interrupt.recv() => tracing::info!("SIGINT: stopping"),
                _ = terminate.recv() => tracing::info!("SIGTERM: stopping"),
            }
            stop.cancel();
        });
    }

    let chat_addr = listener.local_addr()?;
    let http_addr = http.as_ref().map(|h| h.local_addr()).transpose()?;
    let announce = move || {
        net::announce(chat_addr);
        if let Some(http) = http_addr {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "http on {http}");
            let _ = stdout.flush();
            tracing::info!("the browser client: open http://{http}/");
        }
    };
    let config = NodeConfig {
        server: args.server,
        node_id,
        redis_url: args.redis,
        redis_prefix: args.redis_prefix,
        worker: args.worker,
        metrics,
        announce: Some(Box::new(announce)),
    };
    chat_cluster::run(listener, http, config, stop).await?;
    tracing::info!("stopped");
    Ok(())
}

/// A std listener handed to tokio (which requires it non-blocking).
fn adopt(listener: std::net::TcpListener) -> std::io::Result<tokio::net::TcpListener> {
    listener.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(listener)
}

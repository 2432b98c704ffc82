//! `chat-async`: flags, the tokio runtime, and signals. The server itself is the library
//! (`lib.rs`), so tests run it in-process, with paused time.
//!
//! ```text
//! cargo run --release -p chat-async -- --addr 127.0.0.1:8888 --threads 2
//! ```

use chat_core::{net, ServerArgs};
use clap::Parser;
use std::io;
use std::process::ExitCode;
use std::time::Duration;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(
    name = "chat-async",
    about = "Chat server: a task per connection on the tokio runtime"
)]
struct Args {
    #[command(flatten)]
    server: ServerArgs,

    /// Runtime worker threads (tokio's scheduler spreads the tasks over them, stealing work
    /// from each other). Default: one per core.
    #[arg(long, default_value_t = net::cores())]
    threads: usize,
}

fn main() -> ExitCode {
    net::main(run)
}

fn run(args: Args) -> io::Result<()> {
    let fd_limit = net::raise_fd_limit()?;
    tracing::debug!("open-file limit: {fd_limit}");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    let result = runtime.block_on(serve(args));
    // Tasks still lingering after the grace period are dropped here, without waiting.
    runtime.shutdown_timeout(Duration::from_millis(100));
    result
}

async fn serve(args: Args) -> io::Result<()> {
    let listener = net::bind_listener(args.server.addr, &args.server.socket)?;
    listener.set_nonblocking(true)?; // tokio requires it of a std socket it adopts
    let listener = tokio::net::TcpListener::from_std(listener)?;

    // Signal handlers are installed before we announce the address, so a SIGTERM right after
    // the `listening on` line is handled gracefully, never by the default action.
    let stop = CancellationToken::new();
    let signals = (
        signal(SignalKind::interrupt())?,
        signal(SignalKind::terminate())?,
    );
    tokio::spawn(cancel_on_signal(signals, stop.clone()));

    net::announce(listener.local_addr()?);
    chat_async::run(listener, args.server, stop).await;
    tracing::info!("stopped");
    Ok(())
}

/// Turns the first SIGINT or SIGTERM into a cancellation every part of the server listens to.
async fn cancel_on_signal(
    (mut interrupt, mut terminate): (Signal, Signal),
    stop: CancellationToken,
) {
    tokio::select! {
        _ = interrupt.recv() => tracing::info!("SIGINT: stopping"),
        _ = terminate.recv() => tracing::info!("SIGTERM: stopping"),
    }
    stop.cancel();
}

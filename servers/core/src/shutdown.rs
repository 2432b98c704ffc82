//! SIGINT/SIGTERM handling shared by the servers.
//!
//! A signal handler may do almost nothing safely, so none of our code runs inside one: a
//! background thread waits for the signals (signal-hook's iterator) and, when one arrives,
//! sets a flag and runs the server's *wake-up* callback. What "wake up" means is the I/O model's
//! business, which is why it is a callback:
//! - a blocking server sits in `accept` or `read`: the callback connects to its own listener and
//!   shuts down the current client's socket so the call returns;
//! - a poll/epoll loop sits in `poll`: the callback writes to a pipe the loop watches;
//! - a mio reactor: the callback calls `Waker::wake`.
//!
//! The async server uses `tokio::signal` instead, the idiomatic way in that model.

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long a server has between the signal and its exit (PROTOCOL.md, guarantee 9).
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(2);

/// How long a stopping server keeps flushing `shutting_down` to its clients before it gives up
/// on the ones that do not read it: the rest of [`SHUTDOWN_DEADLINE`] is margin for the process
/// to exit.
pub const STOP_GRACE: Duration = Duration::from_millis(1500);

/// Whether a stop was requested. Cheap to clone and to check on every loop turn.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    requested: Arc<AtomicBool>,
}

impl Shutdown {
    /// A flag that only [`Shutdown::request`] sets (for tests and for servers that do their own
    /// signal handling).
    pub fn new() -> Self {
        Shutdown::default()
    }

    /// Installs the SIGINT/SIGTERM watcher. `wake` runs on the watcher thread after the flag is
    /// set, once per signal received.
    pub fn on_signal(wake: impl Fn() + Send + 'static) -> io::Result<Self> {
        let shutdown = Shutdown::new();
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        let flag = shutdown.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    // Act first, log after: if logging fails (stderr closed), the stop must
                    // still happen.
                    flag.request();
                    wake();
                    tracing::info!(signal, "stop requested");
                }
            })?;
        Ok(shutdown)
    }

    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
    }

    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }
}

//! The live progress line (indicatif): phase, connections, messages, copies. Drawn on stderr
//! only when it is a terminal, so logs and CI output stay clean. The parent updates it from the
//! counters its shards report every 200 ms.

use super::stats::Snapshot;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

pub(crate) struct Progress {
    bar: ProgressBar,
    /// Connections of the whole run.
    total: usize,
}

impl Progress {
    /// Starts the line; `enabled: false` or no terminal draws nothing.
    pub(crate) fn start(enabled: bool, total: usize) -> Progress {
        if !enabled || !std::io::stderr().is_terminal() {
            return Progress {
                bar: ProgressBar::hidden(),
                total,
            };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} {elapsed:>4} {prefix:10} {wide_msg}")
        {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(100));
        Progress { bar, total }
    }

    pub(crate) fn phase(&self, name: &'static str) {
        self.bar.set_prefix(name);
    }

    /// Shows the run's counters (all shards added up).
    pub(crate) fn update(&self, c: &Snapshot) {
        if self.bar.is_hidden() {
            return;
        }
        self.bar.set_message(format!(
            "{}/{} conns ({} failed, {} dropped) | sent {} acked {} delivered {} | in flight {}",
            c.connected,
            self.total,
            c.failed,
            c.dropped,
            c.sent,
            c.acked,
            c.delivered,
            c.expected.saturating_sub(c.acked + c.delivered),
        ));
    }

    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

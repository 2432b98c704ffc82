//! The live progress line (indicatif): phase, connections, messages, copies. Drawn on stderr
//! only when it is a terminal, so logs and CI output stay clean.

use super::driver::Shared;
use super::stats::Counters;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

pub(crate) struct Progress {
    bar: ProgressBar,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Starts the line (call inside the runtime); `enabled: false` or no terminal draws nothing.
    pub(crate) fn start(enabled: bool, shared: Arc<Shared>) -> Progress {
        if !enabled || !std::io::stderr().is_terminal() {
            return Progress {
                bar: ProgressBar::hidden(),
                ticker: None,
            };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} {elapsed:>4} {prefix:10} {wide_msg}")
        {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(100));
        let line = bar.clone();
        let total = shared.layout.conns;
        let ticker = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                let c = &shared.counters;
                line.set_message(format!(
                    "{}/{total} conns ({} failed, {} dropped) | sent {} acked {} delivered {} \
                     | in flight {}",
                    Counters::get(&c.connected),
                    Counters::get(&c.failed),
                    Counters::get(&c.dropped),
                    Counters::get(&c.sent),
                    Counters::get(&c.acked),
                    Counters::get(&c.delivered),
                    Counters::get(&c.expected)
                        .saturating_sub(Counters::get(&c.acked) + Counters::get(&c.delivered)),
                ));
            }
        });
        Progress {
            bar,
            ticker: Some(ticker),
        }
    }

    pub(crate) fn phase(&self, name: &'static str) {
        self.bar.set_prefix(name);
    }

    pub(crate) fn finish(&self) {
        if let Some(ticker) = &self.ticker {
            ticker.abort();
        }
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

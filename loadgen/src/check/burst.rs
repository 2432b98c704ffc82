//! Guarantees 3 and 4 together (`PROTOCOL.md`): a burst far above `--max-backlog` into a room
//! where one member reads at full speed and one has stopped reading. Only the stalled member is
//! closed; the one that keeps reading receives every message, in order.
//!
//! It catches a server that counts bytes against `--max-backlog` before it has tried to write
//! them: an edge-triggered loop that reads a whole burst and queues its output before the write
//! pass, a writer task that has not run yet, a router counting bytes on their way to another
//! thread. Such a server cuts off a healthy reader (or the sender) whenever a burst is in flight.

use super::client::{Client, Next};
use super::ordering::{keep_pinging, room_with_a_stalled_member};
use super::{CheckConfig, Ctx, Need, Scenario};
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The scenario's name (what `--only` and the servers' tests select).
pub const BURST: &str = "backlog.burst_spares_a_full_speed_reader";

pub(crate) fn scenarios() -> Vec<Scenario> {
    vec![Scenario {
        name: BURST,
        needs: &[Need::TwoClients, Need::MaxBacklog],
        run: burst_spares_a_full_speed_reader,
    }]
}

/// Runs the burst scenario `times` times in a row against one `program` started with
/// `model_args` and `--max-backlog 65536` (a burst of a few 8 KB frames is already more than
/// that), and panics with the first failure. The servers' tests call it with 5.
pub fn assert_burst_passes_repeatedly(program: &Path, model_args: &[&str], times: usize) {
    let server = super::process::start_with(program, model_args, &["--max-backlog", "65536"]);
    let config = CheckConfig {
        max_backlog: Some(65536),
        only: Some(BURST.into()),
        ..CheckConfig::default()
    };
    for run in 1..=times {
        let report = super::run_checks(server.addr(), &config);
        let failures: Vec<String> = report.failures().map(ToString::to_string).collect();
        assert!(
            failures.is_empty() && report.passed() == 1,
            "{} {model_args:?}, run {run} of {times}: {}\n{}",
            program.display(),
            report.summary(),
            failures.join("\n")
        );
    }
}

fn burst_spares_a_full_speed_reader(ctx: &Ctx) -> Result<(), String> {
    let (mut members, mut stalled) = room_with_a_stalled_member(ctx, &["sender", "reader"])?;
    let stalled_name = stalled.label.clone();
    let mut reader = members.pop().ok_or("no reader")?;
    let mut sender = members.pop().ok_or("no sender")?;
    let sender_name = sender.label.clone();

    // The stalled member and the reader ping now and then: they are stalled or quiet, not idle.
    let stop = AtomicBool::new(false);
    let (stalled_pings, reader_pings) = (stalled.writer()?, reader.writer()?);
    let patience = ctx.timeout();
    let reader_label = reader.label.clone();
    let outcome = std::thread::scope(|scope| {
        scope.spawn(|| keep_pinging(stalled_pings, &stop));
        scope.spawn(|| keep_pinging(reader_pings, &stop));
        let reading =
            scope.spawn(|| read_everything(&mut reader, &sender_name, &stalled_name, patience));
        let sent = send_in_windows(ctx, &mut sender, &stalled_name);
        if sent.is_err() {
            stop.store(true, Ordering::SeqCst);
        }
        let read = reading
            .join()
            .unwrap_or_else(|_| Err("the reader's thread panicked".into()));
        stop.store(true, Ordering::SeqCst);
        let sent = sent?;
        let read = read?;
        if read != sent {
            return Err(format!(
                "{reader_label}: received {read} of the {sent} broadcasts"
            ));
        }
        Ok(())
    });
    outcome?;
    if !stalled.drain_until_closed(Instant::now() + ctx.timeout() * 2)? {
        return Err(format!(
            "{stalled_name} left the room but its connection stayed open"
        ));
    }
    sender.still_works()?;
    // The reader pinged until the end (without ids): skip the pongs still on their way.
    reader.send(&json!({"type": "ping", "id": "after-burst"}))?;
    loop {
        let frame = reader.recv()?;
        if frame == json!({"type": "pong", "id": "after-burst"}) {
            return Ok(());
        }
        if frame != json!({"type": "pong"}) && frame["type"] != "left" {
            return Err(format!(
                "{}: after the burst, expected its pong, got {}",
                reader.label,
                super::client::compact(&frame)
            ));
        }
    }
}

/// The sender keeps a window of messages in flight (each echo it receives lets the next one
/// go), the window alone being twice `--max-backlog`, until the stalled member is gone; then one
/// more window and a last message. Its writes happen on a thread of their own, so that it reads
/// its echoes while a burst is being written (a sender that stopped reading would be a stalled
/// reader too). Returns how many numbered messages it sent.
fn send_in_windows(ctx: &Ctx, sender: &mut Client, stalled: &str) -> Result<usize, String> {
    let max_backlog = ctx.config.max_backlog.unwrap_or(1 << 20);
    let max_line = ctx.config.max_line.unwrap_or(65_536);
    let content = "b".repeat(max_line.saturating_sub(200).clamp(100, 8000));
    let frame_len = content.len() + 60;
    let window = (2 * max_backlog).div_ceil(frame_len).clamp(16, 4096);
    // Loopback kernel buffers hold a few MiB per socket; far past that, a server that still
    // has not cut the stalled member off never will.
    let cap = max_backlog + 32 * 1024 * 1024;
    let message = |id: usize| {
        format!(
            "{}\n",
            json!({"type": "message", "content": content, "id": id})
        )
    };
    let (credits, next_ids) = mpsc::channel::<Option<usize>>();
    let mut writer = sender.writer()?;
    std::thread::scope(|scope| {
        let writing = scope.spawn(move || -> Result<(), String> {
            let burst: String = (0..window).map(message).collect();
            let fail = |e: std::io::Error| format!("sending the burst failed: {e}");
            writer.write_all(burst.as_bytes()).map_err(fail)?;
            while let Ok(Some(id)) = next_ids.recv() {
                writer.write_all(message(id).as_bytes()).map_err(fail)?;
            }
            let last = json!({"type": "message", "content": "last", "id": "last"});
            writer
                .write_all(format!("{last}\n").as_bytes())
                .map_err(fail)
        });
        let (mut sent, mut echoed) = (window, 0);
        let mut gone_at: Option<usize> = None;
        let started = Instant::now();
        let result = loop {
            if echoed == sent {
                break Ok(());
            }
            let frame = match sender.recv() {
                Ok(frame) => frame,
                Err(e) => {
                    break Err(format!(
                        "{e}; {echoed} of {sent} echoes back, {:.1} s into a burst with a \
                         window of {window}: a member that reads its own messages at full \
                         speed must not be cut off",
                        started.elapsed().as_secs_f64()
                    ))
                }
            };
            match frame["type"].as_str() {
                Some("broadcast") if frame["id"] == echoed => echoed += 1,
                Some("left") if frame["nickname"] == stalled => {
                    gone_at.get_or_insert(sent);
                    continue;
                }
                _ => {
                    break Err(format!(
                        "{}: expected its own broadcast {echoed}, got {}",
                        sender.label,
                        super::client::compact(&frame)
                    ))
                }
            }
            let more = match gone_at {
                None => sent * frame_len <= cap,
                Some(at) => sent < at + window,
            };
            if more {
                let _ = credits.send(Some(sent));
                sent += 1;
            }
        };
        let _ = credits.send(None);
        let written = writing
            .join()
            .unwrap_or_else(|_| Err("the sender's writer panicked".into()));
        result?;
        written?;
        if gone_at.is_none() {
            return Err(format!(
                "sent {sent} messages of {frame_len} bytes to a room with a member that never \
                 reads; the server never disconnected it (--max-backlog {max_backlog})"
            ));
        }
        sender.expect(&json!({"type": "broadcast", "id": "last"}))?;
        Ok(sent)
    })
}

/// The full-speed reader: every broadcast, in order, until the last one; returns how many
/// numbered ones it received. Pongs (its own pings) and the stalled member's `left` may come in
/// between.
fn read_everything(
    reader: &mut Client,
    sender: &str,
    stalled: &str,
    patience: Duration,
) -> Result<usize, String> {
    let mut next = 0;
    loop {
        let deadline = Instant::now() + patience;
        let frame = match reader.next(deadline)? {
            Next::Frame(frame) => frame,
            Next::Timeout => {
                return Err(format!(
                    "{}: nothing for {patience:?} after broadcast {next}",
                    reader.label
                ))
            }
            Next::Closed(how) => {
                return Err(format!(
                    "{}: a member reading at full speed was disconnected ({how}) after {next} \
                     broadcasts",
                    reader.label
                ))
            }
        };
        match frame["type"].as_str() {
            Some("broadcast") if frame["id"] == "last" => return Ok(next),
            Some("broadcast") if frame["id"] == next && frame["from"] == sender => next += 1,
            Some("left") if frame["nickname"] == stalled => {}
            Some("pong") => {}
            _ => {
                return Err(format!(
                    "{}: expected broadcast {next}, got {}",
                    reader.label,
                    super::client::compact(&frame)
                ))
            }
        }
    }
}

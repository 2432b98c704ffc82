//! # chat: an interactive client for the c10k-lab chat servers
//!
//! Every server in this workspace speaks the same protocol (`PROTOCOL.md` at the root of the repository), so this
//! one client talks to all of them. Start a server, then a client or two:
//!
//! ```text
//! cargo run --release -p chat-blocking              # prints `listening on 127.0.0.1:8888`
//! cargo run -p chat-client -- --nick alice          # in a second terminal
//! cargo run -p chat-client -- --nick bob --room rust
//! ```
//!
//! Type a line to talk to your room; `/help` lists the commands (`/msg`, `/join`, `/nick`,
//! `/users`, `/rooms`, `/quit`). It also runs scripts from a pipe, which is how its tests drive
//! it:
//!
//! ```text
//! printf 'hello\n/users\n' | cargo run -p chat-client -- --nick robot
//! ```
//!
//! At the end of input it sends a `ping` and waits for the `pong` (so every earlier request has
//! been answered and printed), sends `quit`, and exits 0.
//!
//! Choices worth knowing:
//! - **The first connection failing ends the client at once** (exit 1) with a hint on how to
//!   start a server: a wrong address or a server not started yet deserves immediate feedback,
//!   not 8 silent retries. Retries (`--retries`, backoff 1 s doubling up to 30 s) are for a
//!   connection that *worked* and was lost; the client then re-joins with its last nickname
//!   and room.
//! - **A refused `join`** (`nickname_taken`, `bad_nickname`, `bad_room`) prints the server's
//!   error and exits 1, so a script notices; pick another `--nick` and start again.
//! - It pings the server every `--keepalive` seconds of silence so the server's idle timeout
//!   (120 s by default) never closes a quiet but healthy client.
//!
//! Exit codes: 0 after `/quit` or the end of input; 1 when it cannot connect, the join is
//! refused, reconnecting gives up, or the server leaves the last requests unanswered; 2 for bad
//! flags.
//!
//! | file | concept |
//! |---|---|
//! | `main.rs` | flags, the first connection, the stdin thread |
//! | `commands.rs` | parsing what the user types |
//! | `render.rs` | turning events into readable lines |
//! | `connection.rs` | connecting, the reader thread, the backoff schedule |
//! | `session/` | the event loop (`mod.rs`), reconnecting (`reconnect.rs`), leaving (`ending.rs`) |

mod commands;
mod connection;
mod render;
mod session;

use chat_core::DEFAULT_ROOM;
use clap::Parser;
use session::{Identity, Msg, Options, Session};
use std::io::{self, BufRead};
use std::process::ExitCode;
use std::sync::mpsc::{self, Sender};
use std::thread;
use std::time::Duration;

/// An interactive client for the c10k-lab chat servers.
#[derive(Parser, Debug)]
#[command(name = "chat")]
struct Args {
    /// Address of the server (`host:port`).
    #[arg(long, default_value = "127.0.0.1:8888")]
    addr: String,

    /// Your nickname: 1 to 32 characters, no spaces.
    #[arg(long)]
    nick: String,

    /// The room to join first.
    #[arg(long, default_value = DEFAULT_ROOM)]
    room: String,

    /// Send a `ping` after this many seconds of silence, to stay below the server's idle
    /// timeout (0 = never).
    #[arg(long, default_value_t = 30)]
    keepalive: u64,

    /// Reconnect tries after a lost connection (1 s, 2 s, 4 s ... apart, at most 30 s) before
    /// giving up (0 = exit at once).
    #[arg(long, default_value_t = 8)]
    retries: u32,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let stream = match connection::connect(&args.addr) {
        Ok(stream) => stream,
        Err(e) => {
            eprintln!(
                "no chat server at {}: {} — start one with `cargo run --release -p chat-blocking`",
                args.addr,
                connection::describe(&e)
            );
            return ExitCode::from(1);
        }
    };
    let options = Options {
        addr: args.addr,
        retries: args.retries,
        keepalive: (args.keepalive > 0).then(|| Duration::from_secs(args.keepalive)),
    };
    let identity = Identity {
        nickname: args.nick,
        room: args.room,
    };
    let (inbox_sender, inbox) = mpsc::channel();
    if let Err(e) = spawn_stdin_reader(inbox_sender.clone()) {
        eprintln!("chat: cannot start the input thread: {e}");
        return ExitCode::from(1);
    }
    match Session::start(options, identity, stream, inbox_sender, inbox) {
        Ok(session) => ExitCode::from(session.run()),
        Err(e) => {
            eprintln!("chat: the connection failed right away: {e}");
            ExitCode::from(1)
        }
    }
}

/// Reads standard input line by line on its own thread (a blocking read cannot be waited on
/// together with the socket in std), so the session sees typed lines as messages.
fn spawn_stdin_reader(inbox: Sender<Msg>) -> io::Result<()> {
    thread::Builder::new()
        .name("stdin-reader".into())
        .spawn(move || {
            let mut stdin = io::stdin().lock();
            let mut line = Vec::new();
            loop {
                line.clear();
                match stdin.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        // Not UTF-8 (a stray byte in a script) is shown as U+FFFD, not fatal.
                        let text = String::from_utf8_lossy(&line).into_owned();
                        if inbox.send(Msg::Input(text)).is_err() {
                            return; // the session is over
                        }
                    }
                }
            }
            let _ = inbox.send(Msg::InputClosed);
        })?;
    Ok(())
}

//! The client's event loop: one thread owns all the state and reacts to messages on one channel.
//!
//! Three kinds of things happen to a chat client: the user types a line, the server sends an
//! event, and time passes (keepalive pings, reconnect backoff, waiting for the last replies).
//! The stdin thread and the connection's reader thread turn the first two into [`Msg`]s on a
//! channel; the loop waits on that channel with a timeout for the third. So the state below is
//! touched by one thread only and needs no lock.
//!
//! Lifecycle of one connection ([`Link`]): connect, send `join`, wait for `welcome`, then send
//! what the user typed. Lines typed before the `welcome` (or while reconnecting) wait in
//! `pending` and go out, in order, right after it. When the connection is lost the loop
//! reconnects with exponential backoff and re-joins with the nickname and room it last had,
//! which it learns from the server's replies (`welcome`, `renamed`, `room`), not from what the
//! user asked for: a refused `/nick` does not change who we are. (Lines already written to the
//! lost connection may or may not have reached the server; they are not sent again.)
//!
//! | file | concern |
//! |---|---|
//! | `mod.rs` | the state, the loop, user input and server events |
//! | `reconnect.rs` | joining on a new connection, losing one, the backoff tries |
//! | `ending.rs` | leaving: `/quit`, and the end of input (wait for the last replies) |

mod ending;
mod reconnect;

use crate::commands::{parse_input, Input, HELP};
use crate::connection;
use crate::render::{clean, problem, render_event};
use chat_core::{Event, Id, Request};
use chrono::Local;
use ending::Ending;
use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::TcpStream;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// Lines held while not joined (typed during a reconnect); beyond this they are dropped, so a
/// long piped script cannot fill memory while the server is away.
const MAX_PENDING: usize = 10_000;

/// What the loop waits for: one channel carries everything, in arrival order.
#[derive(Debug)]
pub enum Msg {
    /// A line the user typed (or the next line of a piped script).
    Input(String),
    /// Standard input reached its end (Ctrl-D, or the end of a piped script).
    InputClosed,
    /// Something from the connection numbered `generation`.
    Net { generation: u64, item: NetItem },
}

/// What a reader thread reports.
#[derive(Debug)]
pub enum NetItem {
    Event(Event),
    /// A line that is not an event we know (shown to the user, not fatal).
    Garbled(String),
    /// The connection ended: `None` for EOF, else the error. Always the thread's last message.
    Closed(Option<io::Error>),
}

/// The flags that shape the session.
#[derive(Debug, Clone)]
pub struct Options {
    /// `host:port` of the server, resolved again at each reconnect.
    pub addr: String,
    /// Reconnect tries after a lost connection before giving up (0: give up at once).
    pub retries: u32,
    /// Send a `ping` after this much silence, so the server's idle timeout never fires.
    pub keepalive: Option<Duration>,
}

/// Who we are on the server; restored after a reconnect.
#[derive(Debug, Clone)]
pub struct Identity {
    pub nickname: String,
    pub room: String,
}

/// The state of the connection.
enum Link {
    Up {
        stream: TcpStream,
        /// Whether `welcome` arrived: until then user requests wait in `pending`.
        joined: bool,
        /// When we last wrote: the keepalive counts from here.
        last_sent: Instant,
    },
    Down {
        /// The reconnect try that comes next (1-based).
        attempt: u32,
        next_try: Instant,
    },
}

/// The loop stops with this process exit code.
pub struct Exit(pub u8);

/// `Err(Exit)` unwinds the loop with `?` from wherever the decision to stop is made.
type Flow = Result<(), Exit>;

pub struct Session {
    options: Options,
    identity: Identity,
    link: Link,
    /// Numbers connections, so messages from an old connection's reader are told apart.
    generation: u64,
    /// Requests waiting for `welcome`.
    pending: VecDeque<Request>,
    ending: Ending,
    /// The id of the end-of-input ping.
    drain_id: Id,
    inbox: Receiver<Msg>,
    /// Handed to each new reader thread. Holding it also means `inbox` never disconnects.
    inbox_sender: Sender<Msg>,
}

impl Session {
    /// Starts a session on an already connected `stream`: its reader thread, then `join`.
    pub fn start(
        options: Options,
        identity: Identity,
        stream: TcpStream,
        inbox_sender: Sender<Msg>,
        inbox: Receiver<Msg>,
    ) -> io::Result<Session> {
        let mut session = Session {
            options,
            identity,
            link: Link::Down {
                attempt: 1,
                next_try: Instant::now(),
            },
            generation: 0,
            pending: VecDeque::new(),
            ending: Ending::Running,
            drain_id: Id::Str(format!("chat-eof-{}", std::process::id())),
            inbox,
            inbox_sender,
        };
        session.attach(stream)?;
        Ok(session)
    }

    /// Runs until the session ends; returns the exit code.
    pub fn run(mut self) -> u8 {
        loop {
            let received = match self.next_wakeup() {
                Some(at) => self
                    .inbox
                    .recv_timeout(at.saturating_duration_since(Instant::now())),
                None => self
                    .inbox
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected),
            };
            let flow = match received {
                Ok(msg) => self.on_msg(msg),
                Err(RecvTimeoutError::Timeout) => self.on_timer(),
                // Cannot happen while we hold `inbox_sender`; stop rather than spin.
                Err(RecvTimeoutError::Disconnected) => Err(Exit(1)),
            };
            if let Err(Exit(code)) = flow {
                return code;
            }
        }
    }

    /// The earliest time something is due without any message arriving.
    fn next_wakeup(&self) -> Option<Instant> {
        let link = match &self.link {
            Link::Up { last_sent, .. } => self.options.keepalive.map(|every| *last_sent + every),
            Link::Down { next_try, .. } => Some(*next_try),
        };
        [link, self.ending_deadline()].into_iter().flatten().min()
    }

    /// Nothing arrived before [`next_wakeup`](Self::next_wakeup): do what is due.
    fn on_timer(&mut self) -> Flow {
        let now = Instant::now();
        self.check_ending_deadline(now)?;
        match &self.link {
            Link::Down { attempt, next_try } if now >= *next_try => self.reconnect(*attempt),
            Link::Up { last_sent, .. }
                if self
                    .options
                    .keepalive
                    .is_some_and(|every| now >= *last_sent + every) =>
            {
                self.send(&Request::Ping { id: None })
            }
            _ => Ok(()),
        }
    }

    fn on_msg(&mut self, msg: Msg) -> Flow {
        match msg {
            Msg::Input(line) => self.on_input(&line),
            Msg::InputClosed => self.on_input_closed(),
            Msg::Net { generation, item } => {
                let current = generation == self.generation && matches!(self.link, Link::Up { .. });
                if !current {
                    return Ok(()); // from a connection we already gave up on
                }
                match item {
                    NetItem::Event(event) => self.on_event(event),
                    NetItem::Garbled(line) => {
                        let shown: String = line.chars().take(200).collect();
                        self.show(&problem(
                            &format!("unreadable line from the server: {}", clean(&shown)),
                            &Local::now(),
                        ));
                        Ok(())
                    }
                    NetItem::Closed(error) => {
                        let why = error
                            .map(|e| connection::describe(&e))
                            .unwrap_or_else(|| "the server closed the connection".to_string());
                        self.lose(&why)
                    }
                }
            }
        }
    }

    fn on_input(&mut self, line: &str) -> Flow {
        if !matches!(self.ending, Ending::Running) {
            return Ok(()); // leaving: later lines are not sent
        }
        match parse_input(line) {
            Input::Nothing => Ok(()),
            Input::Invalid(why) => {
                self.show(&problem(&why, &Local::now()));
                Ok(())
            }
            Input::Help => {
                for line in HELP {
                    self.show(line);
                }
                Ok(())
            }
            Input::Quit => self.quit(),
            Input::Send(request) => self.submit(request),
        }
    }

    fn on_event(&mut self, event: Event) -> Flow {
        if let Some(line) = render_event(&event, &Local::now()) {
            self.show(&line);
        }
        match event {
            Event::Welcome { nickname, room, .. } => {
                self.identity = Identity { nickname, room };
                if let Link::Up { joined, .. } = &mut self.link {
                    *joined = true;
                }
                // Flush in order; stop if the connection drops meanwhile (the rest stay
                // pending for the next connection).
                while matches!(self.link, Link::Up { .. }) {
                    let Some(request) = self.pending.pop_front() else {
                        break;
                    };
                    self.send(&request)?;
                }
                self.resume_draining()
            }
            // The reply to our `join` was a refusal (nickname taken, bad name): the rendered
            // error is on stdout; exit 1 so a script notices. The connection-closing codes
            // (server_full, shutting_down...) are followed by the close and handled there.
            Event::Error { code, .. }
                if matches!(self.link, Link::Up { joined: false, .. })
                    && !code.closes_connection() =>
            {
                eprintln!(
                    "chat: could not join as {} in {}: {code} (choose another with --nick / --room)",
                    self.identity.nickname, self.identity.room
                );
                Err(Exit(1))
            }
            Event::Renamed { from, to, .. } if from == self.identity.nickname => {
                self.identity.nickname = to;
                Ok(())
            }
            Event::Room { room, .. } => {
                self.identity.room = room;
                Ok(())
            }
            Event::Pong { id: Some(id) } if id == self.drain_id => self.quit(),
            Event::Bye if self.is_quitting() => Err(Exit(0)),
            _ => Ok(()),
        }
    }

    /// Sends a user request now if joined, else holds it until `welcome`.
    fn submit(&mut self, request: Request) -> Flow {
        if matches!(self.link, Link::Up { joined: true, .. }) {
            return self.send(&request);
        }
        if self.pending.len() >= MAX_PENDING {
            self.show(&problem(
                "not connected and too many lines waiting: this one is dropped",
                &Local::now(),
            ));
            return Ok(());
        }
        self.pending.push_back(request);
        Ok(())
    }

    /// Writes one request on the current connection; a failed write means the link is lost.
    fn send(&mut self, request: &Request) -> Flow {
        let Link::Up {
            stream, last_sent, ..
        } = &mut self.link
        else {
            return Ok(());
        };
        match stream.write_all(&request.to_line()) {
            Ok(()) => {
                *last_sent = Instant::now();
                Ok(())
            }
            Err(e) => self.lose(&connection::describe(&e)),
        }
    }

    /// Prints one line. A closed stdout (`chat | head -1`) is not worth dying for: ignored.
    fn show(&self, line: &str) {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

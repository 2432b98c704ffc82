//! The state machine an `async fn` becomes, written by hand: one connection that answers each
//! `ping` with a `pong` (every other request gets `error` `unknown_type`, as in a server that
//! knows only `ping`), first as an `async fn`, then as a struct that implements `Future`
//! itself, driven by a ten-line executor whose `Waker` wakes a parked thread. Lesson 07 runs it:
//!
//! ```sh
//! cargo run --release -p chat-async --example hand_written_future
//! ```
//!
//! Read [`answer_async`] and [`Answer`] side by side: each `.await` of the first is a state of
//! the second ([`Step`]); each local variable that lives across an `.await` is a field; and
//! where the `async fn` waits, [`Answer::poll`] returns [`Poll::Pending`] after the socket has
//! filed the [`Waker`] it was given with tokio's I/O driver. The driver calls that waker when
//! `epoll_wait` says the socket is ready; the executor ([`block_on`]) then polls again, and the
//! machine continues from the state it stored.

use chat_core::{encode, ErrorCode, Event, Inbound, LineDecoder, Request};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Bytes read at once; small, so that a line may arrive in two reads.
const READ_BUFFER: usize = 64;

/// The longest line, as chat-core's decoder bounds it.
const MAX_LINE: usize = 4096;

/// The pings each connection is sent (in two bursts, so that the server waits in between).
const PINGS: usize = 4;

/// The reply to one line, as bytes to write.
fn reply(line: Inbound) -> Vec<u8> {
    let event = match line {
        Ok(Request::Ping { id }) => Event::Pong { id },
        Ok(_) => Event::Error {
            code: ErrorCode::UnknownType,
            message: "this example answers only ping".to_string(),
        },
        Err(rejection) => Event::Error {
            code: rejection.code,
            message: rejection.message,
        },
    };
    encode(&event).to_vec()
}

/// The connection as an `async fn`: read, answer every complete line, write, until EOF.
/// Returns the number of lines answered.
async fn answer_async(mut socket: TcpStream) -> io::Result<usize> {
    let mut decoder = LineDecoder::new(MAX_LINE);
    let mut buffer = [0u8; READ_BUFFER];
    let mut answered = 0;
    loop {
        let n = socket.read(&mut buffer).await?; // state 1: waiting to read
        if n == 0 {
            return Ok(answered);
        }
        let mut out = Vec::new();
        for line in decoder.feed(&buffer[..n]) {
            out.extend(reply(line));
            answered += 1;
        }
        socket.write_all(&out).await?; // state 2: waiting to write
    }
}

/// Where [`Answer`] stopped: one variant per `.await` of [`answer_async`].
enum Step {
    /// Waiting for bytes (`socket.read(..).await`).
    Reading,
    /// Writing `out[written..]` (`socket.write_all(&out).await`).
    Writing { out: Vec<u8>, written: usize },
}

/// The same connection as a hand-written future: the fields are what [`answer_async`] keeps
/// across its `.await`s.
struct Answer {
    /// The connection (tokio's: non-blocking, registered with the I/O driver).
    socket: TcpStream,
    /// An unfinished line between two reads.
    decoder: LineDecoder,
    /// The read buffer.
    buffer: [u8; READ_BUFFER],
    /// Lines answered so far (the result).
    answered: usize,
    /// Where the machine stopped.
    step: Step,
    /// Calls to [`Answer::poll`], and how many of them returned `Pending` (for the printout).
    polls: usize,
    pendings: usize,
}

impl Answer {
    fn new(socket: TcpStream) -> Self {
        Answer {
            socket,
            decoder: LineDecoder::new(MAX_LINE),
            buffer: [0; READ_BUFFER],
            answered: 0,
            step: Step::Reading,
            polls: 0,
            pendings: 0,
        }
    }
}

impl Future for Answer {
    type Output = io::Result<usize>;

    /// Runs the machine as far as it can go without waiting. Every `return Poll::Pending` comes
    /// right after a `poll_read`/`poll_write` that returned `Pending`: that call has given
    /// `cx.waker()` to the I/O driver, so someone will poll again. Returning `Pending` without
    /// that would leave the future asleep forever.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Every field is `Unpin` (a tokio socket can move between polls), so the pin can be
        // undone: no field points into another.
        let this = self.get_mut();
        this.polls += 1;
        loop {
            match &mut this.step {
                Step::Reading => {
                    let mut buf = ReadBuf::new(&mut this.buffer);
                    match Pin::new(&mut this.socket).poll_read(cx, &mut buf) {
                        Poll::Pending => {
                            this.pendings += 1;
                            return Poll::Pending;
                        }
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                            return Poll::Ready(Ok(this.answered)); // EOF
                        }
                        Poll::Ready(Ok(())) => {
                            let n = buf.filled().len();
                            let mut out = Vec::new();
                            for line in this.decoder.feed(&this.buffer[..n]) {
                                out.extend(reply(line));
                                this.answered += 1;
                            }
                            this.step = Step::Writing { out, written: 0 };
                        }
                    }
                }
                Step::Writing { out, written } if *written == out.len() => {
                    this.step = Step::Reading;
                }
                Step::Writing { out, written } => {
                    match Pin::new(&mut this.socket).poll_write(cx, &out[*written..]) {
                        Poll::Pending => {
                            this.pendings += 1;
                            return Poll::Pending;
                        }
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Ready(Ok(0)) => {
                            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                        }
                        Poll::Ready(Ok(n)) => *written += n,
                    }
                }
            }
        }
    }
}

/// A waker that unparks the thread running [`block_on`], and counts how often it was called.
struct ThreadWaker {
    thread: Thread,
    wakes: AtomicUsize,
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::Relaxed);
        self.thread.unpark();
    }
}

/// The smallest executor: poll; on `Pending`, sleep until the waker is called; poll again.
/// Returns the output and how many times the waker was called.
fn block_on<F: Future>(future: F) -> (F::Output, usize) {
    let waker = Arc::new(ThreadWaker {
        thread: thread::current(),
        wakes: AtomicUsize::new(0),
    });
    let as_waker = Waker::from(Arc::clone(&waker));
    let mut cx = Context::from_waker(&as_waker);
    let mut future = pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return (output, waker.wakes.load(Ordering::Relaxed)),
            // `park` may also return for no reason; polling again then is harmless.
            Poll::Pending => thread::park(),
        }
    }
}

/// A client: two bursts of pings, a pause between them, then EOF; returns the replies.
async fn client(addr: SocketAddr) -> io::Result<Vec<String>> {
    let socket = TcpStream::connect(addr).await?;
    let (reader, mut writer) = socket.into_split();
    let ping = |i: usize| format!("{{\"type\":\"ping\",\"id\":{i}}}\n");
    let first: String = (1..=PINGS / 2).map(ping).collect();
    let second: String = (PINGS / 2 + 1..=PINGS).map(ping).collect();
    writer.write_all(first.as_bytes()).await?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    writer.write_all(second.as_bytes()).await?;
    writer.shutdown().await?;
    let mut replies = Vec::new();
    let mut lines = tokio::io::BufReader::new(reader).lines();
    while let Some(line) = lines.next_line().await? {
        replies.push(line);
    }
    Ok(replies)
}

/// `1 time`, `3 times`.
fn times(n: usize) -> String {
    match n {
        1 => "1 time".to_string(),
        n => format!("{n} times"),
    }
}

/// The client's replies, checked: one `pong` per ping, the last one for the last ping.
fn checked(replies: Vec<String>) -> io::Result<String> {
    let last = replies.last().cloned().unwrap_or_default();
    let pongs = replies.iter().filter(|r| r.contains("\"pong\"")).count();
    match pongs == PINGS && last.contains(&format!("\"id\":{PINGS}")) {
        true => Ok(last),
        false => Err(io::Error::other(format!(
            "expected {PINGS} pongs, got {replies:?}"
        ))),
    }
}

fn main() -> io::Result<()> {
    // tokio's worker thread runs the I/O driver (epoll) and the clients; this thread runs our
    // futures with our own executor.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;

    // 1. The async fn: the compiler wrote its state machine.
    let replies = runtime.spawn(client(addr));
    let (socket, _) = runtime.block_on(listener.accept())?;
    let (answered, wakes) = {
        let _in_runtime = runtime.enter(); // so the socket finds tokio's I/O driver
        block_on(answer_async(socket))
    };
    let last = checked(runtime.block_on(replies).map_err(io::Error::other)??)?;
    println!(
        "async fn:            {} lines answered; the waker was called {}",
        answered?,
        times(wakes)
    );
    println!("  last reply: {last}");

    // 2. The hand-written future: the same machine, every step in sight.
    let replies = runtime.spawn(client(addr));
    let (socket, _) = runtime.block_on(listener.accept())?;
    let mut answer = Answer::new(socket);
    let (answered, wakes) = {
        let _in_runtime = runtime.enter();
        block_on(&mut answer)
    };
    let (polls, pendings) = (answer.polls, answer.pendings);
    drop(answer); // closes the socket, as the end of an async fn does: the client sees EOF
    let last = checked(runtime.block_on(replies).map_err(io::Error::other)??)?;
    println!(
        "hand-written Future: {} lines answered; poll was called {}: {pendings} Pending, {} Ready; \
         the waker was called {}",
        answered?,
        times(polls),
        polls - pendings,
        times(wakes)
    );
    println!("  last reply: {last}");
    Ok(())
}

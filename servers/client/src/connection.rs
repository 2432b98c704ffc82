//! The network side: connecting, the reader thread, and the reconnect schedule.
//!
//! The client uses plain blocking sockets and one reader thread per connection: it has one
//! connection, so threads cost nothing here, and the client is not a lesson in I/O models. The
//! reader thread turns each line from the server into a [`Msg::Net`] on the session's channel,
//! tagged with the connection's *generation*: after a reconnect, anything still arriving from an
//! older connection's thread is recognised as stale and dropped.

use crate::session::{Msg, NetItem};
use chat_core::Event;
use std::io::{self, BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc::Sender;
use std::thread;
use std::time::Duration;

/// How long one connection attempt may take before it counts as failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a write may block. The server never stops reading a healthy client, so a write
/// stuck this long means the connection is dead; it is then treated as lost.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest line accepted from the server. Generous (a `users` list of 10,000 members is a
/// few hundred KB), but bounded: a broken server streaming bytes without a newline cannot make
/// the client allocate without limit.
const MAX_EVENT_LINE: u64 = 16 * 1024 * 1024;

/// The first reconnect delay; it doubles after every failed try.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest reconnect delay.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Connects to `addr` (`host:port`; a name may resolve to several addresses, tried in turn).
pub fn connect(addr: &str) -> io::Result<TcpStream> {
    let candidates: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
    let mut last_error = io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{addr} resolves to no address"),
    );
    for candidate in candidates {
        match TcpStream::connect_timeout(&candidate, CONNECT_TIMEOUT) {
            Ok(stream) => {
                // Chat lines are small and interactive: send each at once (no Nagle delay).
                stream.set_nodelay(true)?;
                stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
                return Ok(stream);
            }
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

/// A short, lower-case reason for a failed connect or a lost connection ("connection
/// refused"), without the `(os error 111)` noise when the kind says it all.
pub fn describe(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        io::ErrorKind::ConnectionReset => "connection reset by the server".to_string(),
        io::ErrorKind::ConnectionAborted => "connection aborted".to_string(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timed out".to_string(),
        io::ErrorKind::UnexpectedEof => "the server closed the connection".to_string(),
        _ => error.to_string(),
    }
}

/// The wait before reconnect try number `attempt` (1-based): 1 s, 2 s, 4 s, ... capped at 30 s.
pub fn backoff(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(16);
    (FIRST_BACKOFF * (1u32 << doublings)).min(MAX_BACKOFF)
}

/// Starts the thread that reads `stream` until it closes, sending every line to `inbox`.
///
/// The last message it sends is always [`NetItem::Closed`]. The thread also stops when the
/// session is gone (the channel's receiver dropped).
pub fn spawn_reader(stream: &TcpStream, generation: u64, inbox: Sender<Msg>) -> io::Result<()> {
    let stream = stream.try_clone()?;
    thread::Builder::new()
        .name(format!("net-reader-{generation}"))
        .spawn(move || {
            let closed = read_events(stream, |item| {
                inbox.send(Msg::Net { generation, item }).is_ok()
            });
            let _ = inbox.send(Msg::Net {
                generation,
                item: NetItem::Closed(closed),
            });
        })?;
    Ok(())
}

/// Reads lines until EOF or an error and hands each to `deliver` (which returns `false` to
/// stop). Returns why reading ended: `None` for a clean EOF.
fn read_events(stream: impl Read, mut deliver: impl FnMut(NetItem) -> bool) -> Option<io::Error> {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        // `take` bounds how much one line may buffer.
        let read = (&mut reader)
            .take(MAX_EVENT_LINE)
            .read_until(b'\n', &mut line);
        match read {
            Ok(0) => return None,
            Ok(_) if line.last() != Some(&b'\n') && line.len() as u64 >= MAX_EVENT_LINE => {
                return Some(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the server sent a line longer than 16 MiB",
                ));
            }
            // A final line without its newline (the server closed mid-line) is still parsed.
            Ok(_) => {
                if let Some(item) = parse_line(&line) {
                    if !deliver(item) {
                        return None;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Some(e),
        }
    }
}

/// One line from the server as an event, or as garbage to report. Blank lines are skipped.
fn parse_line(line: &[u8]) -> Option<NetItem> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return None;
    }
    Some(match serde_json::from_slice::<Event>(line) {
        Ok(event) => NetItem::Event(event),
        Err(_) => NetItem::Garbled(String::from_utf8_lossy(line).into_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::{ErrorCode, Id};

    fn read_all(bytes: &[u8]) -> (Vec<NetItem>, Option<io::Error>) {
        let mut items = Vec::new();
        let end = read_events(bytes, |item| {
            items.push(item);
            true
        });
        (items, end)
    }

    /// Backoff starts at 1 s, doubles, and stops growing at 30 s.
    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let secs: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff(u32::MAX), Duration::from_secs(30));
    }

    /// Each line becomes an event; blank lines are skipped, `\r\n` is accepted, and a clean EOF
    /// ends reading without an error.
    #[test]
    fn lines_become_events() {
        let input = b"{\"type\":\"pong\",\"id\":7}\r\n\n{\"type\":\"bye\"}\n";
        let (items, end) = read_all(input);
        assert!(end.is_none());
        assert!(matches!(
            items.as_slice(),
            [
                NetItem::Event(Event::Pong {
                    id: Some(Id::Int(7))
                }),
                NetItem::Event(Event::Bye)
            ]
        ));
    }

    /// Lines that are not events (bad JSON, unknown type, invalid UTF-8) are reported, not
    /// fatal; unknown fields are ignored.
    #[test]
    fn garbage_is_reported_and_reading_goes_on() {
        let input = b"nonsense\n{\"type\":\"dance\"}\n\xff\xfe\n{\"type\":\"error\",\"code\":\"bad_room\",\"message\":\"m\",\"extra\":1}\n";
        let (items, end) = read_all(input);
        assert!(end.is_none());
        assert_eq!(items.len(), 4);
        assert!(matches!(&items[0], NetItem::Garbled(text) if text == "nonsense"));
        assert!(matches!(&items[1], NetItem::Garbled(_)));
        assert!(matches!(&items[2], NetItem::Garbled(text) if text.contains('\u{fffd}')));
        assert!(matches!(
            &items[3],
            NetItem::Event(Event::Error {
                code: ErrorCode::BadRoom,
                ..
            })
        ));
    }

    /// Connection errors are described in a few plain words.
    #[test]
    fn errors_are_described_plainly() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(describe(&refused), "connection refused");
        let other = io::Error::other("something odd");
        assert_eq!(describe(&other), "something odd");
    }
}

//! The callbacks against a fake readiness API: real sockets on loopback, but the test decides
//! which of them are "ready", and sees everything the loop asks the readiness API to watch.

use crate::{EventLoop, Interest, LoopArgs, Progress, Readiness, Ready, Token, Trigger, WakePipe};
use chat_core::{ConnId, Shutdown};
use clap::Parser;
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown as Direction, SocketAddr, TcpListener, TcpStream};
use std::os::fd::RawFd;
use std::time::Duration;

/// A readiness API that waits for nothing: `wait` hands out what the test scripted, and every
/// call is recorded.
struct Fake {
    trigger: Trigger,
    /// What is watched now, and for what.
    watched: BTreeMap<Token, Interest>,
    /// Tokens forgotten (their descriptor closed).
    forgotten: Vec<Token>,
    /// What each `wait` returns, in order (nothing when empty).
    script: VecDeque<Vec<Ready>>,
    /// The timeout of every `wait`.
    timeouts: Vec<Option<Duration>>,
    /// Refuse every descriptor, as select does past FD_SETSIZE.
    refuse_all: bool,
}

impl Fake {
    fn new(trigger: Trigger) -> Self {
        Fake {
            trigger,
            watched: BTreeMap::new(),
            forgotten: Vec::new(),
            script: VecDeque::new(),
            timeouts: Vec::new(),
            refuse_all: false,
        }
    }
}

impl Readiness for Fake {
    fn trigger(&self) -> Trigger {
        self.trigger
    }
    fn watch(&mut self, _fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        self.watched.insert(token, interest);
        Ok(())
    }
    fn set_interest(&mut self, _fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        assert!(
            self.watched.contains_key(&token),
            "{token:?} is not watched"
        );
        self.watched.insert(token, interest);
        Ok(())
    }
    fn unwatch(&mut self, _fd: RawFd, token: Token) -> io::Result<()> {
        self.watched.remove(&token);
        Ok(())
    }
    fn forget(&mut self, token: Token) {
        self.watched.remove(&token);
        self.forgotten.push(token);
    }
    fn wait(&mut self, timeout: Option<Duration>, ready: &mut Vec<Ready>) -> io::Result<()> {
        self.timeouts.push(timeout);
        ready.extend(self.script.pop_front().unwrap_or_default());
        Ok(())
    }
    fn refuse_fd(&self, fd: RawFd) -> Option<String> {
        self.refuse_all.then(|| format!("the fake refuses fd {fd}"))
    }
}

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    common: LoopArgs,
}

/// A loop on a fresh loopback listener, with `flags`.
fn start(fake: Fake, flags: &[&str]) -> (EventLoop<Fake>, SocketAddr) {
    let args = Flags::parse_from(std::iter::once("test").chain(flags.iter().copied())).common;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let wake = WakePipe::new().expect("pipe");
    let event_loop =
        EventLoop::new(args, listener, fake, wake, Shutdown::new()).expect("the loop starts");
    (event_loop, addr)
}

/// Connects a client and lets the loop accept it; returns the client and its id.
fn connect(event_loop: &mut EventLoop<Fake>, addr: SocketAddr) -> (Client, ConnId) {
    let stream = TcpStream::connect(addr).expect("connect");
    assert_eq!(event_loop.on_listener_ready(), Progress::Drained);
    let id = newest_peer(event_loop);
    (Client::new(stream), id)
}

fn newest_peer(event_loop: &EventLoop<Fake>) -> ConnId {
    let peers = event_loop.peers.readiness.watched.keys();
    let ids = peers.filter_map(|token| match token {
        Token::Peer(id) => Some(*id),
        _ => None,
    });
    ids.max().expect("a watched peer")
}

struct Client {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn new(stream: TcpStream) -> Client {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Client {
            writer: stream.try_clone().expect("clone"),
            reader: BufReader::new(stream),
        }
    }

    fn send(&mut self, lines: &str) {
        self.writer.write_all(lines.as_bytes()).expect("send");
    }

    fn recv(&mut self) -> Value {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("a line");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }

    fn at_eof(&mut self) -> bool {
        let mut line = String::new();
        matches!(self.reader.read_line(&mut line), Ok(0))
    }
}

/// Lets the loop read `id` (as if the readiness API said it is readable), after giving the
/// client's bytes a moment to arrive.
fn readable(event_loop: &mut EventLoop<Fake>, id: ConnId) -> Progress {
    std::thread::sleep(Duration::from_millis(50));
    event_loop.on_peer_ready_recv(id, false)
}

/// A new connection is watched for input only: an idle socket is always writable.
#[test]
fn a_new_peer_is_watched_for_input_only() {
    let (mut event_loop, addr) = start(Fake::new(Trigger::Level), &[]);
    let (_client, id) = connect(&mut event_loop, addr);
    let watched = &event_loop.peers.readiness.watched;
    assert_eq!(watched.get(&Token::Peer(id)), Some(&Interest::READ));
    assert_eq!(watched.get(&Token::Listener), Some(&Interest::READ));
    assert_eq!(watched.get(&Token::Wake), Some(&Interest::READ));
}

/// Requests read in one event are answered in order, queued during the turn and written by
/// `write_out`; the socket took everything, so write interest never came on.
#[test]
fn requests_are_answered_in_order_at_the_end_of_the_turn() {
    let (mut event_loop, addr) = start(Fake::new(Trigger::Level), &[]);
    let (mut client, id) = connect(&mut event_loop, addr);
    client.send("{\"type\":\"ping\",\"id\":1}\n{\"type\":\"ping\",\"id\":2}\n");
    assert_eq!(readable(&mut event_loop, id), Progress::MoreLeft);
    event_loop.write_out();
    assert_eq!(client.recv()["id"], 1);
    assert_eq!(client.recv()["id"], 2);
    let interest = event_loop.peers.readiness.watched[&Token::Peer(id)];
    assert_eq!(interest, Interest::READ);
}

/// A member whose kernel buffers are full gets write interest while the kernel refuses its
/// bytes, and loses it once it has read everything; it receives every broadcast.
#[test]
fn write_interest_is_on_only_while_the_kernel_refuses_bytes() {
    let (mut event_loop, addr) = start(Fake::new(Trigger::Level), &["--send-buffer", "4096"]);
    let (mut slow, slow_id) = connect(&mut event_loop, addr);
    let (mut talker, talker_id) = connect(&mut event_loop, addr);
    slow.send("{\"type\":\"join\",\"nickname\":\"slow\",\"room\":\"r\"}\n");
    readable(&mut event_loop, slow_id);
    talker.send("{\"type\":\"join\",\"nickname\":\"talker\",\"room\":\"r\"}\n");
    readable(&mut event_loop, talker_id);
    event_loop.write_out();
    assert_eq!(slow.recv()["type"], "welcome");
    assert_eq!(slow.recv()["type"], "joined");
    assert_eq!(talker.recv()["type"], "welcome");

    let content = "x".repeat(3000);
    let burst: String = (0..100)
        .map(|i| format!("{{\"type\":\"message\",\"content\":\"{content}\",\"id\":{i}}}\n"))
        .collect();
    let mut writer = talker.writer.try_clone().expect("clone");
    let sending = std::thread::spawn(move || writer.write_all(burst.as_bytes()));
    let interest =
        |event_loop: &EventLoop<Fake>| event_loop.peers.readiness.watched[&Token::Peer(slow_id)];
    while !interest(&event_loop).write {
        readable(&mut event_loop, talker_id);
        event_loop.write_out();
    }

    // It reads; each time its socket is writable again, the loop writes more.
    let reader = std::thread::spawn(move || {
        let ids: Vec<Value> = (0..100).map(|_| slow.recv()["id"].clone()).collect();
        ids
    });
    for _ in 0..2000 {
        std::thread::sleep(Duration::from_millis(5));
        event_loop.on_peer_ready_recv(talker_id, false);
        event_loop.write_out();
        event_loop.on_peer_ready_send(slow_id);
        if !interest(&event_loop).write && reader.is_finished() {
            break;
        }
    }
    sending
        .join()
        .expect("the talker's writer")
        .expect("the burst is sent");
    let ids = reader.join().expect("the slow member's reader");
    assert_eq!(ids, (0..100).map(Value::from).collect::<Vec<_>>());
    assert!(!interest(&event_loop).write, "all written: interest off");
}

/// A client that half-closes after its requests: the loop stops watching its input, still
/// writes every reply, then closes and forgets it.
#[test]
fn a_client_that_hung_up_gets_its_replies_then_is_closed() {
    let (mut event_loop, addr) = start(Fake::new(Trigger::Level), &[]);
    let (mut client, id) = connect(&mut event_loop, addr);
    let pings: String = (0..20)
        .map(|i| format!("{{\"type\":\"ping\",\"id\":{i}}}\n"))
        .collect();
    client.send(&pings);
    client
        .writer
        .shutdown(Direction::Write)
        .expect("half-close");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(event_loop.on_peer_ready_recv(id, false), Progress::MoreLeft);
    assert_eq!(event_loop.on_peer_ready_recv(id, false), Progress::Closed);
    let watched = &event_loop.peers.readiness.watched;
    assert_eq!(watched.get(&Token::Peer(id)).map(|i| i.read), Some(false));
    event_loop.write_out();
    for i in 0..20 {
        assert_eq!(client.recv()["id"], i);
    }
    assert!(client.at_eof(), "closed after the replies");
    assert!(event_loop
        .peers
        .readiness
        .forgotten
        .contains(&Token::Peer(id)));
}

/// A descriptor the readiness API cannot watch gets `server_full` and is never watched.
#[test]
fn a_descriptor_the_api_refuses_gets_server_full() {
    let mut fake = Fake::new(Trigger::Level);
    fake.refuse_all = true;
    let (mut event_loop, addr) = start(fake, &[]);
    let mut client = Client::new(TcpStream::connect(addr).expect("connect"));
    assert_eq!(event_loop.on_listener_ready(), Progress::Drained);
    let refusal = client.recv();
    assert_eq!(refusal["code"], "server_full");
    assert!(refusal["message"]
        .as_str()
        .unwrap()
        .contains("the fake refuses"));
    assert!(client.at_eof());
    let peers = event_loop.peers.readiness.watched.keys();
    assert!(peers.into_iter().all(|t| !matches!(t, Token::Peer(_))));
}

/// Edge-triggered, a listener left at its accept budget is served again on the next turn
/// without sleeping; level-triggered, the loop sleeps as usual (the kernel will tell it again).
#[test]
fn edge_triggered_comes_back_to_what_it_left_unfinished() {
    for trigger in [Trigger::Edge, Trigger::Level] {
        let (mut event_loop, addr) = start(Fake::new(trigger), &["--idle-timeout", "0"]);
        let clients: Vec<TcpStream> = (0..crate::ACCEPT_BATCH + 6)
            .map(|_| TcpStream::connect(addr).expect("connect"))
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        let listener_ready = Ready {
            token: Token::Listener,
            readable: true,
            writable: false,
            read_closed: false,
        };
        event_loop
            .peers
            .readiness
            .script
            .push_back(vec![listener_ready]);
        event_loop.wait(None).expect("wait");
        event_loop.dispatch();
        assert_eq!(event_loop.peers.len(), crate::ACCEPT_BATCH);
        event_loop.wait(None).expect("wait");
        event_loop.dispatch();
        let second_timeout = event_loop.peers.readiness.timeouts[1];
        match trigger {
            Trigger::Edge => {
                assert_eq!(second_timeout, Some(Duration::ZERO));
                assert_eq!(event_loop.peers.len(), clients.len());
            }
            Trigger::Level => {
                assert_eq!(second_timeout, None);
                assert_eq!(event_loop.peers.len(), crate::ACCEPT_BATCH);
            }
        }
    }
}

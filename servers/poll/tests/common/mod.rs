//! A tiny blocking chat client for this crate's tests (the conformance scenarios live in
//! `loadgen::check`; these helpers serve the tests specific to this I/O model).

#![allow(dead_code)] // each test file uses a different part of it

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long any single expected frame may take to arrive (generous: the machine is shared).
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client::from_stream(TcpStream::connect(addr).expect("connect"))
    }

    /// Wraps an already connected (blocking) socket.
    pub fn from_stream(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(FRAME_TIMEOUT)).unwrap();
        Client {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    /// Connects, joins `room` as `nickname`, and waits for `welcome`.
    pub fn join(addr: SocketAddr, nickname: &str, room: &str) -> Client {
        let mut client = Client::connect(addr);
        client.send(&json!({"type": "join", "nickname": nickname, "room": room}));
        client.expect("welcome");
        client
    }

    pub fn send(&mut self, frame: &Value) {
        let mut line = serde_json::to_vec(frame).unwrap();
        line.push(b'\n');
        self.writer.write_all(&line).expect("send");
    }

    /// The next frame; panics on EOF, timeout or invalid JSON.
    pub fn recv(&mut self) -> Value {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => panic!("the server closed the connection"),
            Ok(_) => serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}")),
            Err(e) => panic!("no frame within {FRAME_TIMEOUT:?}: {e}"),
        }
    }

    /// Skips frames (`joined`, ...) until one of type `kind` arrives, and returns it.
    pub fn expect(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.recv();
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// Whether the server closed the connection (EOF) before `FRAME_TIMEOUT`, ignoring frames.
    pub fn sees_eof(&mut self) -> bool {
        let mut line = String::new();
        loop {
            line.clear();
            match self.reader.read_line(&mut line) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(_) => return false,
            }
        }
    }

    /// Another handle on the socket, for writing from another thread.
    pub fn writer(&self) -> TcpStream {
        self.writer.try_clone().expect("clone the socket")
    }
}

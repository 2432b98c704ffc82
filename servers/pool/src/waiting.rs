//! The waiting room: accepted connections that no worker has taken yet, at most `--queue` of
//! them.
//!
//! A connection waiting here is connected (the handshake is done, its requests pile up unread in
//! its socket) but not served: no Hub id, no idle timeout, no replies. That is the price of a
//! fixed pool, and why the room is bounded: past `--queue` waiting, a client is better off with
//! an immediate `server_full` than with silence.

use chat_core::sync::{lock, wait};
use std::collections::VecDeque;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Condvar, Mutex};

/// A connection that no worker has taken yet, and its client's address.
pub type Waiting = (TcpStream, SocketAddr);

/// The connections waiting for a worker, shared by the accept loop and the workers.
#[derive(Debug)]
pub struct WaitingRoom {
    /// The queue and whether the room is closed.
    state: Mutex<State>,
    /// Signalled when a connection arrives or the room closes; idle workers wait on it.
    arrived: Condvar,
    /// `--queue`: how many connections may wait for a worker.
    capacity: usize,
}

#[derive(Debug)]
struct State {
    /// Oldest first: workers serve connections in the order they came.
    streams: VecDeque<Waiting>,
    /// Workers waiting in [`WaitingRoom::take`]. A connection pushed while a worker is idle is
    /// about to be taken, not waiting, so it does not count against the capacity.
    idle_workers: usize,
    /// Set at shutdown: idle workers stop, nothing more is let in.
    closed: bool,
}

impl WaitingRoom {
    pub fn new(capacity: usize) -> Self {
        WaitingRoom {
            state: Mutex::new(State {
                streams: VecDeque::new(),
                idle_workers: 0,
                closed: false,
            }),
            arrived: Condvar::new(),
            capacity,
        }
    }

    /// Lets a new connection in, or hands it back when `--queue` connections already wait (the
    /// caller answers it `server_full`).
    pub fn enter(&self, stream: TcpStream, peer: SocketAddr) -> Result<(), Waiting> {
        let mut state = lock(&self.state);
        if state.closed || state.streams.len() >= self.capacity + state.idle_workers {
            return Err((stream, peer));
        }
        state.streams.push_back((stream, peer));
        self.arrived.notify_one();
        Ok(())
    }

    /// A free worker takes the oldest waiting connection, sleeping until there is one. `None`
    /// once the room is closed.
    pub fn take(&self) -> Option<Waiting> {
        let mut state = lock(&self.state);
        state.idle_workers += 1;
        while state.streams.is_empty() && !state.closed {
            state = wait(&self.arrived, state);
        }
        state.idle_workers -= 1;
        if state.closed {
            return None;
        }
        state.streams.pop_front()
    }

    /// Shutdown: idle workers stop waiting, and the connections still waiting are returned (to
    /// be told `shutting_down`).
    pub fn close(&self) -> Vec<Waiting> {
        let mut state = lock(&self.state);
        state.closed = true;
        self.arrived.notify_all();
        state.streams.drain(..).collect()
    }
}

//! # The servers' fan-out runs at scale, as one call
//!
//! Every server model's tests end with the same proof at scale (PROTOCOL.md, guarantees 2 and
//! 3): thousands of connections in rooms of ten, every member sending, and every broadcast
//! accounted for. [`rooms_of_ten`] runs it through [`crate::fanout`] and panics with the
//! report unless it is perfect; each test starts its server (or cluster) and says what the run
//! exercises in its model.

use crate::fanout::{run_rooms_over, FanoutSpec};
use std::net::SocketAddr;
use std::time::Duration;

/// Members per room, and the messages each member sends.
pub const ROOM_SIZE: usize = 10;
pub const MESSAGES_PER_CONN: usize = 3;

/// `conns` connections spread over `addrs`, in rooms of [`ROOM_SIZE`], each member sending
/// [`MESSAGES_PER_CONN`] messages; the whole run stops by itself after `deadline`. Panics
/// unless every member received every broadcast of its room exactly once, each sender's in
/// order. Prints how long it took, and how many deliveries, under `label` (on stderr).
///
/// The server must run in another process: 10,000 connections are 10,000 descriptors on each
/// side, and a process may hold 20,000.
pub fn rooms_of_ten(label: &str, addrs: &[SocketAddr], conns: usize, deadline: Duration) {
    let spec = FanoutSpec {
        deadline,
        ..FanoutSpec::new(conns, ROOM_SIZE, MESSAGES_PER_CONN)
    };
    let report = run_rooms_over(addrs, &spec).expect("the fan-out run completes");
    eprintln!(
        "{label}, {conns} connections: {:?} for {} deliveries",
        report.elapsed, report.delivered
    );
    report.assert_perfect();
}

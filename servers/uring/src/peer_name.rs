//! Who is connecting: the address of a socket that never had a descriptor.
//!
//! `--max-conns-per-ip` needs each new connection's IP address before the Hub admits it
//! ([`Hub::connect_from`](chat_core::Hub::connect_from)). A readiness server has it from
//! `accept`. Our multishot accept gives only a slot in the file table, and the usual way to ask
//! a socket afterwards, `getpeername(fd)`, needs a descriptor the socket does not have. The ways
//! out, and why this one:
//!
//! - **An address buffer on the accept.** A single accept fills the `sockaddr` we give it. A
//!   *multishot* accept fills the *same* buffer for every connection, and several can arrive in
//!   one turn, so each overwrites the last before we read it. Usable only with one single-shot
//!   accept per connection: a submission per connection again, and no multishot accept.
//! - **Normal descriptors instead of direct ones.** Accept into the descriptor table, call
//!   `getpeername`, then either keep the descriptor (every operation then looks it up, and the
//!   process needs a descriptor per client) or install it into the file table and close it: two
//!   or three system calls per connection, the cost the file table was there to avoid.
//! - **Ask the socket through the ring** (this module). Since Linux 6.7 io_uring runs socket
//!   commands (`IORING_OP_URING_CMD`) on a registered file, among them `getsockopt` at
//!   `SOL_SOCKET`; and `getsockopt(SO_PEERNAME)` is `getpeername` spelled as a socket option.
//!   One more submission per connection, in the same batch as everything else: no system call
//!   of its own, multishot accept and direct descriptors kept.
//!
//! The address is asked for only when `--max-conns-per-ip` is set: without the limit nobody
//! needs it, and chat-uring then runs on kernels older than 6.7 (`Ring::socket_commands`).
//!
//! While the question is in flight the kernel writes into our buffer, so each one lives in a
//! `Box` (a stable address) in [`PeerNames`] until its completion, and the server drops the
//! ring before this table. The connection is not known to the Hub until then: its first
//! receive is armed once it is admitted.

use crate::token::Token;
use io_uring::{opcode, squeue, types};
use std::collections::HashMap;
use std::io;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The addresses being asked for, by slot (a slot is not reused before we close it, and we do
/// not close it while its question is in flight, so the slot names the question safely).
pub struct PeerNames {
    /// The size of the listener's address family's `sockaddr`: the exact length `SO_PEERNAME`
    /// must be asked with (Linux answers `EINVAL` when the buffer is longer than the address).
    len: u32,
    /// The buffers the kernel writes the addresses into, one per question in flight.
    pending: HashMap<u32, Box<libc::sockaddr_storage>>,
}

impl PeerNames {
    /// For a listener bound to `listener` (its peers have the same address family: IPv4, or
    /// IPv6 with IPv4 clients mapped into it).
    pub fn new(listener: SocketAddr) -> PeerNames {
        let len = match listener {
            SocketAddr::V4(_) => size_of::<libc::sockaddr_in>(),
            SocketAddr::V6(_) => size_of::<libc::sockaddr_in6>(),
        };
        PeerNames {
            len: len as u32,
            pending: HashMap::new(),
        }
    }

    /// Questions in flight: each one holds a slot of the file table.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// The submission that asks the socket in `slot` for its peer's address.
    pub fn ask(&mut self, slot: u32) -> squeue::Entry {
        // SAFETY: all-zero bytes are a valid `sockaddr_storage`.
        let buffer = self
            .pending
            .entry(slot)
            .or_insert_with(|| Box::new(unsafe { std::mem::zeroed() }));
        let optval: *mut libc::sockaddr_storage = &mut **buffer;
        opcode::GetSockOpt::new(
            types::Fixed(slot),
            libc::SOL_SOCKET as u32,
            libc::SO_PEERNAME as u32,
            optval.cast(),
            self.len,
        )
        .build()
        .user_data(Token::PeerName(slot).encode())
    }

    /// The answer for `slot` (the completion's result: the address's length, or `-errno`): the
    /// peer's IP address, or why there is none (the client reset the connection already).
    pub fn answer(&mut self, slot: u32, result: i32) -> io::Result<IpAddr> {
        let buffer = self
            .pending
            .remove(&slot)
            .ok_or_else(|| io::Error::other(format!("no address was asked for slot {slot}")))?;
        if result < 0 {
            return Err(io::Error::from_raw_os_error(-result));
        }
        ip_of(&buffer)
    }
}

/// The IP address in a `sockaddr` the kernel filled.
fn ip_of(addr: &libc::sockaddr_storage) -> io::Result<IpAddr> {
    match i32::from(addr.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a `sockaddr_in`, which it is large
            // enough and aligned enough for.
            let v4 =
                unsafe { &*(addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Ok(Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr)).into())
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for `sockaddr_in6`.
            let v6 =
                unsafe { &*(addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Ok(Ipv6Addr::from(v6.sin6_addr.s6_addr).into())
        }
        family => Err(io::Error::other(format!(
            "the peer's address is of family {family}, not an IP address"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_families_from_the_kernels_layout() {
        let mut names = PeerNames::new("127.0.0.1:0".parse().expect("an address"));
        assert_eq!(names.len, 16);
        let entry = names.ask(7);
        assert_eq!(entry.get_user_data(), Token::PeerName(7).encode());
        assert_eq!(names.len(), 1);
        // What the kernel would write for 127.0.0.3: the address in network byte order.
        let buffer = &mut **names.pending.get_mut(&7).expect("a buffer");
        // SAFETY: writing a `sockaddr_in` into storage made for any `sockaddr`.
        unsafe {
            let v4 = (buffer as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>();
            (*v4).sin_family = libc::AF_INET as libc::sa_family_t;
            (*v4).sin_addr.s_addr = u32::from(Ipv4Addr::new(127, 0, 0, 3)).to_be();
        }
        let ip = names.answer(7, 16).expect("an address");
        assert_eq!(ip, IpAddr::from([127, 0, 0, 3]));
        assert_eq!(names.len(), 0, "the buffer is freed with the answer");

        let mut names = PeerNames::new("[::1]:0".parse().expect("an address"));
        assert_eq!(names.len, 28);
        names.ask(1);
        let buffer = &mut **names.pending.get_mut(&1).expect("a buffer");
        // SAFETY: as above, for a `sockaddr_in6`.
        unsafe {
            let v6 = (buffer as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>();
            (*v6).sin6_family = libc::AF_INET6 as libc::sa_family_t;
            (*v6).sin6_addr.s6_addr = Ipv6Addr::LOCALHOST.octets();
        }
        assert_eq!(
            names.answer(1, 28).expect("an address"),
            Ipv6Addr::LOCALHOST
        );
    }

    #[test]
    fn a_failed_question_says_why() {
        let mut names = PeerNames::new("127.0.0.1:0".parse().expect("an address"));
        names.ask(3);
        let err = names.answer(3, -libc::ENOTCONN).expect_err("no address");
        assert_eq!(err.raw_os_error(), Some(libc::ENOTCONN));
        assert!(
            names.answer(3, 16).is_err(),
            "nothing was asked for slot 3 any more"
        );
    }
}

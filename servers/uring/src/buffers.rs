//! Provided buffers: where the kernel puts what it receives.
//!
//! A completion model has a problem a readiness model does not. With epoll we call `read` only
//! once data is there, so one buffer serves every socket (chat-epoll has a single 64 KiB one).
//! With io_uring we submit the receive *before* the data arrives, and the kernel needs to know,
//! at that moment, where to put it. Give every connection its own buffer with its receive and
//! 10,000 idle connections pin 10,000 buffers that sit empty for minutes (that is what IOCP
//! programs on Windows did for years, or they posted zero-byte reads to dodge it).
//!
//! A *provided buffer ring* fixes that. We hand the kernel a pool of buffers up front (here
//! [`BufferRing`]: N buffers of the same size, in one allocation) and submit receives that name
//! the pool instead of a buffer (`buf_group`). When data arrives on some socket, the kernel takes
//! the next free buffer from the pool, fills it, and says which one in the completion's flags
//! (`IORING_CQE_F_BUFFER`, the buffer id in the upper 16 bits). Memory is spent on data that has
//! arrived, not on connections that might send some: 10,000 idle connections cost no buffer.
//!
//! The pool is itself a ring in shared memory, like the submission and completion queues:
//!
//! ```text
//!   entries:  [ bid 7 | bid 8 | bid 9 | bid 3 | bid 4 | ... ]     each {addr, len, bid}
//!                 ^ head (kernel: next buffer to use)  ^ tail (us: after the last one we gave)
//! ```
//!
//! The kernel consumes from `head`; we give a buffer back by writing its entry at `tail` and
//! moving `tail` on (a release store, so the kernel sees the entry before the new tail). A
//! buffer belongs to the kernel from the moment it is published until a completion names it,
//! and to us from then until we publish it again.
//!
//! When the pool is empty, a receive that has data completes with `-ENOBUFS` and, if it was
//! multishot, ends. Nothing is lost: the bytes stay in the socket. The loop gives its buffers
//! back as soon as the decoder has copied the unfinished line, publishes them once per turn,
//! and re-arms the starved receives (`Peers::rearm_receives`).

use io_uring::Submitter;
use std::alloc::{self, Layout};
use std::io;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU16, Ordering};

/// The buffer group id our receives name (one pool, so any number would do).
pub const GROUP: u16 = 0;

/// One entry of the ring, exactly as the kernel reads it (`struct io_uring_buf`). The ring's
/// tail is not a separate field: it overlays `resv` of entry 0 (`struct io_uring_buf_ring`).
#[repr(C)]
struct RingEntry {
    addr: u64,
    len: u32,
    bid: u16,
    resv: u16,
}

const _: () = assert!(std::mem::size_of::<RingEntry>() == 16);

/// The pool of receive buffers shared by every connection, and the ring that lends them to the
/// kernel.
pub struct BufferRing {
    /// The ring of entries, page-aligned (the kernel maps it), allocated by us and registered
    /// with the io_uring instance. It must outlive the registration: the server drops the ring
    /// (the io_uring instance) before this.
    entries: NonNull<RingEntry>,
    /// How `entries` was allocated, to free it.
    layout: Layout,
    /// The buffers themselves, `count × size` bytes in one allocation. Pages the kernel never
    /// writes to are never touched, so they cost no resident memory.
    memory: Vec<u8>,
    /// Number of buffers (and ring entries): a power of two.
    count: u16,
    /// Bytes per buffer.
    size: u32,
    /// Where the next returned buffer goes; published to the kernel by [`BufferRing::publish`].
    tail: u16,
    /// Buffers given back since the last publish.
    unpublished: u16,
}

impl BufferRing {
    /// Allocates `count` buffers of `size` bytes (`count`: a power of two, at most 32768) and
    /// fills the ring with all of them.
    pub fn new(count: u16, size: u32) -> io::Result<BufferRing> {
        if !count.is_power_of_two() || count > 1 << 15 || size == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("--buffers must be a power of two up to 32768 (got {count}), --buffer-size above 0"),
            ));
        }
        let page = page_size();
        let bytes = usize::from(count) * std::mem::size_of::<RingEntry>();
        let layout = Layout::from_size_align(bytes.max(page), page)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: the layout has a non-zero size.
        let entries = NonNull::new(unsafe { alloc::alloc_zeroed(layout) }.cast::<RingEntry>())
            .ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        let mut ring = BufferRing {
            entries,
            layout,
            memory: vec![0; usize::from(count) * size as usize],
            count,
            size,
            tail: 0,
            unpublished: 0,
        };
        for bid in 0..count {
            ring.give_back(bid);
        }
        ring.publish();
        Ok(ring)
    }

    /// Tells the kernel about the pool (`IORING_REGISTER_PBUF_RING`): from now on, receives
    /// that name [`GROUP`] take their buffers from it.
    pub fn register(&self, submitter: &Submitter<'_>) -> io::Result<()> {
        // SAFETY: `entries` holds `count` entries and lives until `self` is dropped, which the
        // server does only after the io_uring instance is gone.
        unsafe {
            submitter.register_buf_ring_with_flags(
                self.entries.as_ptr() as u64,
                self.count,
                GROUP,
                0,
            )
        }
    }

    /// Number of buffers.
    pub fn count(&self) -> usize {
        usize::from(self.count)
    }

    /// Bytes per buffer.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The first `len` bytes of buffer `bid`, as a completion handed it to us.
    pub fn data(&self, bid: u16, len: usize) -> &[u8] {
        let start = usize::from(bid % self.count) * self.size as usize;
        let end = start + len.min(self.size as usize);
        &self.memory[start..end]
    }

    /// Hands buffer `bid` back to the kernel (seen by it at the next [`BufferRing::publish`]).
    /// Every buffer a completion names must come back exactly once, or the pool shrinks.
    pub fn give_back(&mut self, bid: u16) {
        let bid = bid % self.count;
        let slot = usize::from(self.tail & (self.count - 1));
        let addr = self.memory[usize::from(bid) * self.size as usize..].as_ptr() as u64;
        // SAFETY: `slot` < `count`, inside the allocation. We write the fields one by one, never
        // `resv` (entry 0's `resv` is the tail the kernel reads), and the slot is past the
        // published tail, so the kernel is not reading it.
        unsafe {
            let entry = self.entries.as_ptr().add(slot);
            ptr::addr_of_mut!((*entry).addr).write(addr);
            ptr::addr_of_mut!((*entry).len).write(self.size);
            ptr::addr_of_mut!((*entry).bid).write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
        self.unpublished += 1;
    }

    /// Publishes every buffer given back since the last call, with one store of the tail.
    /// The loop calls it once per turn.
    pub fn publish(&mut self) {
        if self.unpublished == 0 {
            return;
        }
        // SAFETY: the tail is the `resv` field of entry 0, a u16 the kernel reads atomically;
        // the release store makes the entries written before it visible first.
        unsafe {
            let tail = ptr::addr_of_mut!((*self.entries.as_ptr()).resv);
            AtomicU16::from_ptr(tail).store(self.tail, Ordering::Release);
        }
        self.unpublished = 0;
    }
}

impl Drop for BufferRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout. The io_uring instance that registered it
        // is dropped first (see `Server`), so the kernel no longer reads it.
        unsafe { alloc::dealloc(self.entries.as_ptr().cast(), self.layout) };
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf only reads a configuration value.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096).max(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_count_that_is_not_a_power_of_two() {
        assert!(BufferRing::new(100, 2048).is_err());
        assert!(BufferRing::new(0, 2048).is_err());
        assert!(BufferRing::new(64, 0).is_err());
    }

    #[test]
    fn starts_full_and_takes_buffers_back_in_order() {
        let mut ring = BufferRing::new(4, 16).expect("allocate");
        assert_eq!(ring.tail, 4);
        ring.give_back(2);
        assert_eq!(ring.unpublished, 1);
        ring.publish();
        assert_eq!(ring.unpublished, 0);
        // SAFETY: reading entries of our own ring in a test, no kernel involved.
        let (bid, tail) = unsafe {
            let base = ring.entries.as_ptr();
            ((*base).bid, (*base).resv)
        };
        assert_eq!(bid, 2, "the fifth entry wraps to slot 0");
        assert_eq!(tail, 5);
        assert_eq!(
            ring.data(2, 100).len(),
            16,
            "a length past the buffer is cut"
        );
    }
}

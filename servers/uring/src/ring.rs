//! Setting up io_uring, checking what this kernel can do, and the plumbing of the two queues.
//!
//! `io_uring_setup` creates an instance and two rings in memory shared with the kernel: the
//! **submission queue** (SQ), where we write requests (SQEs, 64 bytes each: an opcode, a socket,
//! a buffer, our `user_data`), and the **completion queue** (CQ), where the kernel writes results
//! (CQEs, 16 bytes: our `user_data`, a result, flags). Writing an SQE or reading a CQE is plain
//! memory access. The one system call, `io_uring_enter`, tells the kernel how many new SQEs
//! there are, and optionally waits until some CQEs have arrived: [`Ring::submit_and_wait`],
//! once per turn of the loop.
//!
//! The flags we set up the instance with:
//! - `IORING_SETUP_SINGLE_ISSUER` + `IORING_SETUP_COOP_TASKRUN`: only this thread submits, and
//!   the kernel does not interrupt it to finish our requests (copy received data into a buffer,
//!   post the CQE) whenever a packet lands: it leaves that work for the next time we enter the
//!   kernel, and then does all of it. Completions arrive in batches, at the loop's pace, and the
//!   bigger a turn's batch, the more frames each connection's one write of the turn carries.
//!   (`IORING_SETUP_DEFER_TASKRUN` goes one step further, but since Linux 6.13 it finishes at
//!   most 20 deferred requests per `io_uring_enter` that waits for one completion: a cap that
//!   keeps latency low for programs doing little per completion. Here it made every turn small,
//!   and closed-loop chat needed several times as many writes per message.)
//! - `IORING_SETUP_SUBMIT_ALL`: a bad SQE fails alone (its CQE says why) instead of stopping the
//!   rest of the batch.
//! - a completion queue four times the submission queue: one multishot receive can post many
//!   completions for a single submission.
//!
//! A full submission queue is not an error to drop requests over: [`Ring::push`] hands what the
//! queue holds to the kernel (an extra `io_uring_enter`, counted in [`RingStats`]) and carries
//! on; if even that cannot be done, requests wait in a backlog, in order, for the next turn.
//! (tokio-rs/io-uring's `tcp_echo` example keeps the same kind of backlog.)

use io_uring::{opcode, squeue, types, IoUring, Probe, Submitter};
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Submission queue entries: more than one busy turn of 1,000 connections needs.
pub const SUBMISSION_ENTRIES: u32 = 4096;
/// Completion queue entries.
pub const COMPLETION_ENTRIES: u32 = 4 * SUBMISSION_ENTRIES;
/// The kernel's largest file table (`IORING_MAX_FIXED_FILES` since Linux 5.17).
const MAX_FIXED_FILES: u64 = 1 << 20;

/// The operations chat-uring submits, with what each is for here, checked at start. One row
/// an operation: `rustfmt::skip` keeps the table a table.
#[rustfmt::skip]
const OPCODES: &[(u8, &str, &str)] = &[
    (opcode::Accept::CODE,        "ACCEPT",         "multishot accept into the file table"),
    (opcode::RecvMulti::CODE,     "RECV",           "multishot receive into provided buffers"),
    (opcode::Writev::CODE,        "WRITEV",         "writing queued frames"),
    (opcode::Timeout::CODE,       "TIMEOUT",        "the loop's timer, the accept pause"),
    (opcode::TimeoutUpdate::CODE, "TIMEOUT_REMOVE", "moving the loop's timer"),
    (opcode::AsyncCancel2::CODE,  "ASYNC_CANCEL",   "cancelling a closing connection's operations"),
    (opcode::Shutdown::CODE,      "SHUTDOWN",       "half-closing after the last frame"),
    (opcode::Close::CODE,         "CLOSE",          "closing a slot of the file table"),
    (opcode::Read::CODE,          "READ",           "the eventfd that wakes the loop on SIGTERM"),
];

/// What the loop counts about its use of the rings (logged when it stops).
#[derive(Debug, Default, Clone, Copy)]
pub struct RingStats {
    /// `io_uring_enter` calls: the system calls of the loop itself.
    pub enters: u64,
    /// Submissions handed to the kernel.
    pub submitted: u64,
    /// Completions taken.
    pub completions: u64,
}

/// One completion, copied out of the completion queue.
#[derive(Debug, Clone, Copy)]
pub struct Completion {
    pub user_data: u64,
    pub result: i32,
    pub flags: u32,
}

/// The io_uring instance and the backlog of submissions that found the queue full.
pub struct Ring {
    ring: IoUring,
    /// Submissions waiting for room in the submission queue, in order.
    backlog: VecDeque<squeue::Entry>,
    pub stats: RingStats,
}

impl Ring {
    /// Sets up the instance and checks that this kernel does everything chat-uring asks of it.
    /// The error is a sentence for the person starting the server.
    pub fn new() -> Result<Ring, String> {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_coop_taskrun()
            .setup_submit_all()
            .setup_cqsize(COMPLETION_ENTRIES)
            .build(SUBMISSION_ENTRIES)
            .map_err(|e| setup_failure(&e))?;
        let mut probe = Probe::new();
        ring.submitter()
            .register_probe(&mut probe)
            .map_err(|e| format!("cannot ask the kernel which io_uring operations it has: {e}"))?;
        if let Some((_, name, what)) = OPCODES.iter().find(|(code, ..)| !probe.is_supported(*code))
        {
            return Err(format!(
                "this kernel's io_uring has no {name} operation (used for {what}); chat-uring \
                 needs Linux 6.0 or later"
            ));
        }
        if !ring.params().is_feature_skip_cqe_on_success() {
            return Err("this kernel's io_uring cannot skip completions on success \
                        (IORING_FEAT_CQE_SKIP, Linux 5.17); chat-uring needs Linux 6.0 or later"
                .to_string());
        }
        Ok(Ring {
            ring,
            backlog: VecDeque::new(),
            stats: RingStats::default(),
        })
    }

    pub fn submitter(&self) -> Submitter<'_> {
        self.ring.submitter()
    }

    /// Whether this kernel runs socket commands through the ring (`IORING_OP_URING_CMD` on a
    /// socket, Linux 6.7), which `--max-conns-per-ip` needs to learn each connection's address
    /// (`peer_name.rs`). The opcode probe cannot tell (the opcode is older than its socket
    /// commands), so we ask: `SO_PEERNAME` of a fresh, unconnected socket fails with `ENOTCONN`
    /// where socket commands exist, and with `EOPNOTSUPP` where they do not. Called at start,
    /// with nothing else in flight. The error is a sentence for the person starting the server.
    pub fn socket_commands(&mut self) -> Result<(), String> {
        // SAFETY: socket() takes no pointers; a non-negative result is a new descriptor.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(format!(
                "cannot create a socket: {}",
                io::Error::last_os_error()
            ));
        }
        // SAFETY: the descriptor was just created and is owned by nobody else.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: all-zero bytes are a valid `sockaddr_in`.
        let mut answer: Box<libc::sockaddr_in> = Box::new(unsafe { std::mem::zeroed() });
        let entry = opcode::GetSockOpt::new(
            types::Fd(socket.as_raw_fd()),
            libc::SOL_SOCKET as u32,
            libc::SO_PEERNAME as u32,
            (&mut *answer as *mut libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
        .build();
        // SAFETY: `answer` outlives the operation: we wait for its completion below, and leak
        // it if the completion cannot be had.
        unsafe { self.push(entry) };
        let result = loop {
            if let Some(cqe) = self.ring.completion().next() {
                break cqe.result();
            }
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) => {
                    Box::leak(answer); // the kernel may still write into it
                    return Err(format!("cannot submit a socket command: {e}"));
                }
            }
        };
        match -result {
            libc::ENOTCONN => Ok(()),
            libc::EOPNOTSUPP | libc::EINVAL => Err(
                "this kernel's io_uring cannot run socket commands (Linux 6.7), which \
                 --max-conns-per-ip needs to learn each connection's address"
                    .to_string(),
            ),
            0 => Err("SO_PEERNAME of an unconnected socket succeeded: unexpected".to_string()),
            errno => Err(format!(
                "a socket command failed: {}",
                io::Error::from_raw_os_error(errno)
            )),
        }
    }

    /// Registers an empty ("sparse") table of files as large as the open-file limit `fd_limit`
    /// allows (the kernel refuses a larger one), and returns its size. Accepted sockets go
    /// straight into its slots.
    pub fn register_file_table(&self, fd_limit: u64) -> io::Result<u32> {
        let capacity = fd_limit.clamp(16, MAX_FIXED_FILES) as u32;
        self.ring.submitter().register_files_sparse(capacity)?;
        Ok(capacity)
    }

    /// Queues a submission for the next `io_uring_enter`.
    ///
    /// # Safety
    ///
    /// Every buffer the entry points at (an `iovec` array and the bytes it names, a `Timespec`,
    /// a read buffer) must stay valid, and unmoved, until the operation's completion arrives
    /// (a `Timespec`: until the entry is submitted).
    pub unsafe fn push(&mut self, entry: squeue::Entry) {
        if self.backlog.is_empty()
            && (self.try_push(&entry) || (self.flush() && self.try_push(&entry)))
        {
            return;
        }
        self.backlog.push_back(entry);
    }

    /// One `io_uring_enter`: hands over every submission of this turn, then sleeps until at
    /// least one completion is there (the timer's, if nothing else).
    pub fn submit_and_wait(&mut self) -> io::Result<()> {
        while let Some(entry) = self.backlog.pop_front() {
            if !(self.try_push(&entry) || (self.flush() && self.try_push(&entry))) {
                self.backlog.push_front(entry);
                break;
            }
        }
        // Submissions still waiting for room: do not sleep; take the completions (which makes
        // room) and come back.
        let want = if self.backlog.is_empty() { 1 } else { 0 };
        self.stats.enters += 1;
        match self.ring.submitter().submit_and_wait(want) {
            Ok(n) => {
                self.stats.submitted += n as u64;
                Ok(())
            }
            // A signal arrived (the signal thread handles it), or the completion queue is full
            // and must be emptied first: both are handled by going round the loop.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Moves every completion out of the completion queue into `out` (which frees their room
    /// in the queue for the kernel).
    pub fn take_completions(&mut self, out: &mut Vec<Completion>) {
        let before = out.len();
        out.extend(self.ring.completion().map(|cqe| Completion {
            user_data: cqe.user_data(),
            result: cqe.result(),
            flags: cqe.flags(),
        }));
        self.stats.completions += (out.len() - before) as u64;
    }

    fn try_push(&mut self, entry: &squeue::Entry) -> bool {
        // SAFETY: the caller of `push` vouched for the entry's buffers.
        unsafe { self.ring.submission().push(entry).is_ok() }
    }

    /// The submission queue is full: submit what it holds now, an extra `io_uring_enter`.
    fn flush(&mut self) -> bool {
        self.stats.enters += 1;
        match self.ring.submit() {
            Ok(n) => {
                self.stats.submitted += n as u64;
                n > 0
            }
            Err(_) => false,
        }
    }
}

/// What `io_uring_setup` failing means, for a person.
fn setup_failure(err: &io::Error) -> String {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "absent".to_string());
    match err.raw_os_error() {
        Some(libc::ENOSYS) => "this kernel has no io_uring (built without CONFIG_IO_URING, or a \
                               seccomp filter, as in many containers, blocks it)"
            .to_string(),
        Some(libc::EPERM) => match disabled.as_str() {
            "2" => "io_uring is disabled on this machine (/proc/sys/kernel/io_uring_disabled \
                    is 2; 0 allows it)"
                .to_string(),
            "1" => "io_uring is allowed only to the group in /proc/sys/kernel/io_uring_group \
                    (/proc/sys/kernel/io_uring_disabled is 1)"
                .to_string(),
            _ => "io_uring_setup was refused (EPERM): a security policy, such as a container's \
                  seccomp filter, forbids io_uring to this process"
                .to_string(),
        },
        Some(libc::EINVAL) => "this kernel's io_uring lacks single-issuer rings (Linux 6.0); \
                               chat-uring needs Linux 6.0 or later"
            .to_string(),
        _ => format!(
            "io_uring_setup failed: {err} (/proc/sys/kernel/io_uring_disabled is {disabled})"
        ),
    }
}

/// `chat-uring --probe`: what this kernel offers, and whether chat-uring can run here.
pub fn probe_report() -> (String, bool) {
    let mut report = String::new();
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string());
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "absent".to_string());
    report.push_str(&format!(
        "kernel {release}, /proc/sys/kernel/io_uring_disabled = {disabled}\n"
    ));
    // A plain ring, so the opcodes can be listed even where our setup flags are refused.
    match IoUring::new(8) {
        Ok(ring) => {
            let mut probe = Probe::new();
            if ring.submitter().register_probe(&mut probe).is_ok() {
                for (code, name, what) in OPCODES {
                    let answer = if probe.is_supported(*code) {
                        "yes"
                    } else {
                        "NO "
                    };
                    report.push_str(&format!("  {name:<15} {answer}  {what}\n"));
                }
            }
        }
        Err(e) => report.push_str(&format!("  io_uring_setup: {e}\n")),
    }
    match Ring::new() {
        Ok(mut ring) => {
            let commands = ring.socket_commands();
            report.push_str(&format!(
                "  {:<15} {}  asking each connection's address, for --max-conns-per-ip\n",
                "socket commands",
                if commands.is_ok() { "yes" } else { "NO " }
            ));
            let fd_limit = chat_core::net::raise_fd_limit().unwrap_or(1024);
            let capacity = ring.register_file_table(fd_limit);
            report.push_str(&format!(
                "usable: yes (single issuer, cooperative task work, {} file slots)\n",
                capacity.map_or_else(|e| format!("no file table: {e}"), |c| c.to_string())
            ));
            (report, true)
        }
        Err(reason) => {
            report.push_str(&format!("usable: no: {reason}\n"));
            (report, false)
        }
    }
}

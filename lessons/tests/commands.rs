//! Every shell command of every lesson runs against the freshly built binaries: servers start
//! with the lesson's flags, clients and `loadgen` talk to them, and each command's annotated
//! output is checked. A renamed flag or a changed message breaks the lesson's test.
//! The Chinese edition (`lessons/zh/`) shows the very same commands, which
//! `chinese_edition_runs_the_same_commands` asserts block by block: playing an English lesson
//! plays its Chinese edition too. The conventions are in `lessons/README.md`.

use lessons::editions::{same_commands, translated_pairs};
use lessons::session::run_lesson;
use std::collections::BTreeSet;

/// The course, in order: each of these files has a test below.
const LESSONS: &[&str] = &[
    "README.md",
    "INSTRUCTORS.md",
    "00-start-here.md",
    "01-blocking.md",
    "02-threads.md",
    "03-pool.md",
    "04-poll.md",
    "05-epoll.md",
    "06-reactor.md",
    "07-async.md",
    "08-measuring.md",
    "09-socket-options.md",
    "10-beyond-one-process.md",
    "11-websocket.md",
    "12-completion.md",
];

fn run(file: &str) {
    let path = lessons::lessons_dir().join(file);
    if let Err(failures) = run_lesson(&path) {
        panic!("{file}: commands that do not do what the lesson says:\n\n{failures}");
    }
}

/// Every Markdown file of the course has a commands test here (none is silently skipped).
#[test]
fn every_lesson_is_tested() {
    let on_disk: BTreeSet<String> = lessons::markdown_files()
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let listed: BTreeSet<String> = LESSONS.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        on_disk, listed,
        "add each lesson to LESSONS and give it a test"
    );
}

/// Each Chinese lesson's ```sh blocks are its English counterpart's, block by block, command by
/// command, annotations included (only remarks may be translated). So the English tests below
/// run exactly the commands the Chinese edition shows, and it needs no second run.
#[test]
fn chinese_edition_runs_the_same_commands() {
    let failures = lessons::failures(&translated_pairs(), |(english, chinese)| {
        same_commands(english, chinese)
    });
    assert!(
        failures.is_empty(),
        "the Chinese edition must run the English commands:\n\n{}",
        failures.join("\n\n")
    );
}

/// Plays every Chinese lesson on its own. Not part of the normal run: when
/// `chinese_edition_runs_the_same_commands` passes, the English tests have already run these
/// very commands. `cargo test -p lessons --test commands -- --ignored` plays them for an
/// instructor who wants to see the Chinese edition itself run.
#[test]
#[ignore = "the English tests run the same commands; --ignored plays the Chinese edition itself"]
fn chinese_lessons_on_their_own() {
    let failures = lessons::failures(&lessons::zh_markdown_files(), |path| {
        run_lesson(path).map_err(|e| format!("{}:\n{e}", path.display()))
    });
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The course map's commands (building, the first server) work.
#[test]
fn readme() {
    run("README.md");
}

/// The instructor guide's grading commands work.
#[test]
fn instructors() {
    run("INSTRUCTORS.md");
}

/// Lesson 00: the tools (`chat`, `nc`, `loadgen check/run`) against chat-blocking.
#[test]
fn lesson_00_start_here() {
    run("00-start-here.md");
}

/// Lesson 01: chat-blocking serves one client; the second waits in the backlog.
#[test]
fn lesson_01_blocking() {
    run("01-blocking.md");
}

/// Lesson 02: chat-threads gives each client a thread; a slow reader slows no one; the thread
/// budget answers server_full.
#[test]
fn lesson_02_threads() {
    run("02-threads.md");
}

/// Lesson 03: chat-pool's fixed workers; head-of-line blocking; a full waiting room answers
/// server_full.
#[test]
fn lesson_03_pool() {
    run("03-pool.md");
}

/// Lesson 04: chat-poll serves many clients with one thread; select stops at descriptor 1024;
/// idle connections cost poll CPU.
#[test]
fn lesson_04_poll() {
    run("04-poll.md");
}

/// Lesson 05: chat-epoll's interest set in the kernel, level versus edge, per-turn flushing.
#[test]
fn lesson_05_epoll() {
    run("05-epoll.md");
}

/// Lesson 06: chat-reactor's loops and workers: two listeners on one port, who does the work,
/// closed-loop throughput against chat-epoll.
#[test]
fn lesson_06_reactor() {
    run("06-reactor.md");
}

/// Lesson 07: chat-async runs thousands of tasks on two threads; its costs against chat-epoll.
#[test]
fn lesson_07_async() {
    run("07-async.md");
}

/// Lesson 08: the measuring commands run (shortened) and print the figures the lesson reads.
#[test]
fn lesson_08_measuring() {
    run("08-measuring.md");
}

/// Lesson 09: every socket-option experiment behaves as described.
#[test]
fn lesson_09_socket_options() {
    run("09-socket-options.md");
}

/// Lesson 10: chat-cluster on a real Redis: a chat across nodes, the checker over two nodes, a
/// node killed (its members leave), Redis restarted (`unavailable`, then healed), prefork.
#[test]
fn lesson_10_beyond_one_process() {
    run("10-beyond-one-process.md");
}

/// Lesson 11: WebSocket on chat-cluster's HTTP port: the upgrade seen with curl, frames written
/// by hand (masked, too long, control, close), TCP and WebSocket in one room, pings that are not
/// activity, a session key taking a nickname back.
#[test]
fn lesson_11_websocket() {
    run("11-websocket.md");
}

/// Lesson 12: chat-uring's rings: sockets in the registered file table, one io_uring_enter per
/// turn, the buffer pool running dry without losing data, system calls per message against
/// chat-epoll.
#[test]
fn lesson_12_completion() {
    run("12-completion.md");
}

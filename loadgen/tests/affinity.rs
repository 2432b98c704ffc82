//! A server started on a set of CPUs keeps every thread on it: the runtime's worker threads,
//! started after `exec`, inherit the mask (what `taskset -c` does, and what setting the affinity
//! of a running process would not do).

use loadgen::affinity::CpuSet;
use loadgen::server_process::{ServerProcess, SpawnOptions};
use loadgen::sweep::find_or_build;

#[test]
fn a_pinned_server_runs_every_thread_on_its_set() {
    let available = CpuSet::available().expect("sched_getaffinity");
    let last = *available.cpus().last().expect("a CPU");
    let one = CpuSet::parse(&last.to_string()).expect("one CPU");
    let options = SpawnOptions {
        cpus: Some(one.clone()),
        ..SpawnOptions::default()
    };
    // chat-async with four runtime threads: more threads than CPUs, all started by the server.
    let program = find_or_build("chat-async", true).expect("chat-async binary");
    let server = ServerProcess::spawn_with(program, ["--threads", "4"], &options)
        .expect("chat-async starts");
    let sets = CpuSet::of_threads(server.pid()).expect("/proc/PID/task");
    assert!(sets.len() >= 4, "{} threads", sets.len());
    assert!(sets.iter().all(|set| *set == one), "{sets:?}");
    // The same server unpinned may use every CPU this test may.
    let program = find_or_build("chat-async", true).expect("chat-async binary");
    let free = ServerProcess::spawn(program, ["--threads", "4"]).expect("chat-async starts");
    let sets = CpuSet::of_threads(free.pid()).expect("/proc/PID/task");
    assert!(sets.iter().all(|set| *set == available), "{sets:?}");
}

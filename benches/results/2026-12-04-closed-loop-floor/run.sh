#!/usr/bin/env bash
# Closed-loop chat at 1,000 connections in rooms of 10 against chat-epoll: the generator's CPU per
# message beside the server's. Three rounds, the generator before (OLD: a release build of the
# commit before the one-call long wait, e.g. `git worktree add /tmp/oldtree c05f7ea` and
# `CARGO_TARGET_DIR=/tmp/oldtarget cargo build --release -p loadgen`) and after alternating, each
# against a fresh server. Then, with this checkout's generator: the system calls of both
# processes and the TCP segments on loopback over 4 s of one run (ledger.txt), and where each
# process spends its CPU (profile-*.txt). Usage: OLD=/tmp/oldtarget/release/loadgen run.sh
# (ROUNDS=0 run.sh: the watched run alone.)
set -u
source "$(dirname "$0")/../tools/paced-runs.sh"
results_out ""
common="--conns 1000 --room-size 10 --closed --duration 10s --warmup 2s"
for r in $(seq "${ROUNDS:-3}"); do
  LOADGEN=$OLD paced_run "r$r-old"
  paced_run "r$r-new"
done

# One more run, longer, watched from outside: 4 s of system calls and segments, then 3 s of
# profiles of both processes at once.
start_server target/release/chat-epoll
target/release/loadgen run --addr "$ADDR" --server-pid "$SP" --json "$out/watched.json" \
  --conns 1000 --room-size 10 --closed --duration 20s --warmup 2s > "$out/watched.txt" 2>&1 &
LG=$!
sleep 5
calls='syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_writev,syscalls:sys_enter_epoll_pwait2,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_epoll_ctl,syscalls:sys_enter_read,syscalls:sys_enter_timerfd_settime'
tcp_segs() { awk '/^Tcp:/ { n++ } /^Tcp:/ && n == 2 { print "in", $11, "out", $12 }' /proc/net/snmp; }
before=$(tcp_segs)
perf stat -x, -e "$calls" -p "$LG" -o "$out/ledger-generator.csv" -- sleep 4 &
watcher=$!
perf stat -x, -e "$calls" -p "$SP" -o "$out/ledger-server.csv" -- sleep 4
wait "$watcher"
echo "TCP segments on this machine over those 4 s (/proc/net/snmp): before $before, after $(tcp_segs)" > "$out/ledger-tcp.txt"
perf record -q -F 2000 -g -p "$LG" -o /tmp/floor-gen.data -- sleep 3 2>/dev/null &
watcher=$!
perf record -q -F 2000 -g -p "$SP" -o /tmp/floor-srv.data -- sleep 3 2>/dev/null
wait "$watcher"
wait "$LG"
kill "$SP"; wait "$SP" 2>/dev/null; rm -f "$OUT"
for who in gen srv; do
  name=$([ $who = gen ] && echo generator || echo server)
  { echo "# perf record -g -F 2000 of the $name for 3 s of the watched run; by dso, then the"
    echo "# 40 heaviest symbols counting their callees (children), then the 25 heaviest alone"
    perf report -i /tmp/floor-$who.data --no-children --sort dso --stdio 2>/dev/null | grep -E '^ +[0-9]'
    perf report -i /tmp/floor-$who.data --children --sort sym --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -40
    perf report -i /tmp/floor-$who.data --no-children --sort sym --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -25
  } > "$out/profile-$name.txt"
done

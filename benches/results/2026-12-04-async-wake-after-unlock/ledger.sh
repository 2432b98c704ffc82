#!/bin/bash
# On a 2-core machine: chat-async before (BEFORE: tasks woken under the Hub lock) and after
# (AFTER, the build of this checkout: woken once the lock is released), in alternating rounds:
# closed-loop chat, 1,000 connections, rooms of 10, neither side pinned (chat-async's runtime
# has its default two threads, the generator one). Counts the server's futex calls and context
# switches per message (perf stat, 5 s in the middle of the run): a task woken under the lock
# can wake a sleeping runtime thread (a futex call) while the other thread waits for the lock
# (another futex call, and a context switch).
# Usage: BEFORE=/path/to/old/chat-async ledger.sh [ROUNDS]   (release builds, perf, jq)
set -u
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)" || exit 1
source benches/results/tools/start-server.sh
ledger() { # NAME BINARY
  local log j lp
  log=$(mktemp); j=$(mktemp --suffix .json)
  start_server "$2"
  target/release/loadgen run --addr "$ADDR" --conns 1000 --room-size 10 --closed \
    --duration 10s --warmup 3s --threads 1 --server-pid $SP --tolerate-generator-lag --json "$j" \
    > /dev/null 2>&1 &
  lp=$!
  sleep 6
  perf stat -x, -e syscalls:sys_enter_futex,context-switches -p $SP -o "$log.perf" -- sleep 5
  wait $lp; kill $SP; wait $SP 2> /dev/null
  awk -F, -v name="$1" -v q="$(jq .messages.qps "$j")" -v us="$(jq .server.cpu_us_per_msg "$j")" '
    /sys_enter_futex/ { futex = $1 } /context-switches/ { cs = $1 }
    END { printf "%-8s %8.0f msg/s  server %5.1f us/msg  per msg: futex %.3f  context switches %.3f\n",
      name, q, us, futex / (q * 5), cs / (q * 5) }' "$log.perf"
  rm -f "$OUT" "$log" "$log.perf" "$j"
}
for round in $(seq "${1:-3}"); do
  echo "round $round (load $(cut -d' ' -f1 /proc/loadavg))"
  ledger before "${BEFORE:?BEFORE: chat-async built before the change}"
  ledger after target/release/chat-async
done

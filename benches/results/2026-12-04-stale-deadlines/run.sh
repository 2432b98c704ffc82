#!/bin/bash
# The generator before (BEFORE: a connect or join deadline stays in its queue after the attempt
# has finished, and the engine wakes for it when it falls due) and after (the build of this
# checkout: such a deadline leaves the queue's front at once), in alternating rounds against
# chat-epoll: an open-loop run of 2,000 connections in rooms of 10 at 0.01 msg/s each (nearly idle, as in a memory run), opened at
# 4,000 a second with a 2 s connect timeout, one engine thread. Counts the generator's waits
# (`epoll_pwait2`) and all its system calls over the whole run (perf stat), with the messages
# it sent, from its JSON report.
# Usage: BEFORE=/path/to/old/loadgen run.sh [ROUNDS]   (release builds, perf, jq)
set -u
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)" || exit 1
source benches/results/tools/start-server.sh
count() { # NAME LOADGEN
  local j p
  j=$(mktemp --suffix .json); p=$(mktemp)
  start_server target/release/chat-epoll
  perf stat -x, -e syscalls:sys_enter_epoll_pwait2,raw_syscalls:sys_enter -o "$p" -- \
    "$2" run --addr "$ADDR" --conns 2000 --room-size 10 --rate 0.01 --warmup 1s --duration 6s \
    --connect-rate 4000 --connect-timeout 2s --threads 1 --json "$j" > /dev/null 2>&1
  kill $SP; wait $SP 2> /dev/null
  awk -F, -v name="$1" -v sent="$(jq .messages.sent_total "$j")" -v joined="$(jq .connections.connected "$j")" '
    /epoll_pwait2/ { waits = $1 } /raw_syscalls/ { calls = $1 }
    END { printf "%-7s joined %5d  sent %6d  waits %6d  system calls %7d\n", name, joined, sent, waits, calls }' "$p"
  rm -f "$OUT" "$j" "$p"
}
for round in $(seq "${1:-3}"); do
  echo "round $round (load $(cut -d' ' -f1 /proc/loadavg))"
  count before "${BEFORE:?BEFORE: loadgen built before the change}"
  count after target/release/loadgen
done

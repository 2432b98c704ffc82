#!/bin/bash
# On a 2-core machine: chat-epoll edge-triggered as it is (BEFORE: EPOLLOUT always watched) and
# with epollout-on-demand.patch (AFTER: EPOLLOUT watched only while refused, as level-triggered
# does), and level-triggered, in alternating rounds: closed-loop chat, 1,000 connections, rooms
# of 10, the server pinned to cpu 0 and one generator thread to cpu 1. Counts the server's system calls per message (perf stat
# tracepoints, 5 s in the middle of the run) and the TCP segments the machine received per
# message (on loopback every segment sent is received).
# (chat-epoll reads with recvfrom and writes with writev, Redis with read and write: "reads" and
# "writes" add the two.) WITH_REDIS=1 adds redis-server to each round.
# Usage: AFTER=/path/to/patched/chat-epoll epollout-ledger.sh [ROUNDS]   (release builds, perf, jq)
set -u
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)" || exit 1
segs() { awk '/^Tcp:/ {n++} /^Tcp:/ && n == 2 {print $11}' /proc/net/snmp; }
ledger() { # NAME BINARY TRIGGER (BINARY redis: redis-server, which takes no trigger)
  local log j a b q sp addr target=()
  log=$(mktemp); j=$(mktemp --suffix .json)
  if [ "$2" = redis ]; then
    local port=$((16379 + RANDOM % 20000))
    taskset -c 0 redis-server --port $port --bind 127.0.0.1 --save '' --appendonly no > "$log" 2>&1 &
    sp=$! addr=127.0.0.1:$port target=(--target redis)
    sleep 0.5
  else
    taskset -c 0 "$2" --trigger "$3" --addr 127.0.0.1:0 --idle-timeout 0 > "$log" 2>&1 &
    sp=$!
    for _ in $(seq 50); do grep -q listening "$log" && break; sleep 0.1; done
    addr=$(grep -o 'listening on [0-9.:]*' "$log" | cut -d' ' -f3)
  fi
  taskset -c 1 target/release/loadgen run --addr "$addr" "${target[@]}" --conns 1000 --room-size 10 --closed \
    --duration 10s --warmup 3s --threads 1 --server-pid $sp --tolerate-generator-lag --json "$j" \
    > /dev/null 2>&1 &
  local lp=$!
  sleep 6
  a=$(segs)
  perf stat -x, -e syscalls:sys_enter_recvfrom,syscalls:sys_enter_writev,syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_epoll_wait \
    -p $sp -o "$log.perf" -- sleep 5
  b=$(segs)
  wait $lp; kill $sp; wait $sp 2> /dev/null
  q=$(jq .messages.qps "$j")
  awk -F, -v name="$1" -v q="$q" -v segs=$((b - a)) -v us="$(jq .server.cpu_us_per_msg "$j")" '
    /sys_enter/ { split($3, e, "_"); per[e[3]] = $1 / (q * 5) }
    END { printf "%-18s %8.0f msg/s  server %5.1f us/msg  per msg: reads %.3f  writes %.3f  epoll_wait %.4f  TCP segments %.2f\n",
      name, q, us, per["recvfrom"] + per["read"], per["writev"] + per["write"], per["epoll"], segs / (q * 5) }' "$log.perf"
  rm -f "$log" "$log.perf" "$j"
}
for round in $(seq "${1:-3}"); do
  echo "round $round (load $(cut -d' ' -f1 /proc/loadavg))"
  ledger "edge, before" "${BEFORE:-target/release/chat-epoll}" edge
  ledger "edge, after" "${AFTER:?AFTER: chat-epoll built with epollout-on-demand.patch}" edge
  ledger "level" target/release/chat-epoll level
  [ -n "${WITH_REDIS:-}" ] && ledger "redis" redis
done

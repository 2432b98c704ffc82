#!/bin/bash
# The runs of this folder's README, one at a time, each against a fresh chat-epoll:
# open loop at 5,000 x 2 msg/s and 10,000 x 1 msg/s with the default engine threads (one per
# core), with --threads 1, and with --threads 1 --spin-us 20; two rounds, alternating; then
# closed loop at 1,000 connections with --threads 1 and 2.
# Usage: cargo build --release -p loadgen -p chat-epoll && benches/results/2026-12-03-pacing/run.sh [OUT]
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here}
cd "$(git -C "$here" rev-parse --show-toplevel)"
start() {
  port=$((20000 + RANDOM % 20000))
  target/release/chat-epoll --addr 127.0.0.1:$port --idle-timeout 0 > /dev/null 2>&1 &
  pid=$!
  sleep 0.5
}
stop() { kill $pid; wait $pid 2>/dev/null; sleep 2; }
run() { # name, loadgen args...
  local name=$1; shift
  start
  local load=$(cut -d' ' -f1 /proc/loadavg)
  target/release/loadgen run --addr 127.0.0.1:$port --room-size 10 --duration 10s --warmup 2s \
    --server-pid $pid --json "$out/$name.json" "$@" > "$out/$name.txt" 2>&1
  echo "$name rc=$? load_before=$load load_after=$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$out/loads.txt"
  stop
}
for round in 1 2; do
  run r$round-t2-5000x2  --conns 5000 --rate 2
  run r$round-t1-5000x2  --conns 5000 --rate 2 --threads 1
  run r$round-t2-10000x1 --conns 10000 --rate 1 --connect-rate 5000
  run r$round-t1-10000x1 --conns 10000 --rate 1 --connect-rate 5000 --threads 1
  run r$round-t1s20-10000x1 --conns 10000 --rate 1 --connect-rate 5000 --threads 1 --spin-us 20
done
for t in 1 2; do
  start
  target/release/loadgen run --addr 127.0.0.1:$port --conns 1000 --room-size 10 --closed \
    --duration 5s --warmup 1s --threads $t --server-pid $pid --json "$out/closed-t$t.json" \
    > "$out/closed-t$t.txt" 2>&1
  stop
done

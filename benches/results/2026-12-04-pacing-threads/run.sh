#!/bin/bash
# The runs of this folder's README, one at a time, each against a fresh chat-epoll: open loop at
# 5,000 x 2 msg/s and 10,000 x 1 msg/s with one engine thread fewer than the cores ("default":
# at bf12536, where they ran, that was the default of a paced run against loopback, since
# reverted; on 2 cores it is --threads 1) and with every core; three rounds, alternating.
# Usage: cargo build --release -p loadgen -p chat-epoll && benches/results/2026-12-04-pacing-threads/run.sh [OUT]
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here}
cd "$(git -C "$here" rev-parse --show-toplevel)"
cores=$(nproc)
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
for round in 1 2 3; do
  run r$round-default-5000x2   --conns 5000 --rate 2 --threads $((cores - 1))
  run r$round-all-5000x2       --conns 5000 --rate 2 --threads $cores
  run r$round-default-10000x1  --conns 10000 --rate 1 --connect-rate 5000 --threads $((cores - 1))
  run r$round-all-10000x1      --conns 10000 --rate 1 --connect-rate 5000 --threads $cores
done

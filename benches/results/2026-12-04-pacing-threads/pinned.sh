#!/bin/bash
# The README's "pinned" table: deliver 1's load (10,000 x 1 msg/s, rooms of 10) with chat-epoll
# pinned to core 0 and the whole generator (engine thread and coordinator) to core 1
# (`taskset`), one engine thread, without and with --spin-us 20, three rounds, alternating.
# Built at commit e29b92f.
# Usage: cargo build --release -p loadgen -p chat-epoll && benches/results/2026-12-04-pacing-threads/pinned.sh [OUT]
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/pinned}
cd "$(git -C "$here" rev-parse --show-toplevel)"
run() { # NAME SPIN_US
  local name=$1 spin=$2 log
  log=$(mktemp)
  taskset -c 0 target/release/chat-epoll --addr 127.0.0.1:0 --idle-timeout 0 > "$log" 2>&1 &
  local sp=$!
  for _ in $(seq 50); do grep -q listening "$log" && break; sleep 0.1; done
  local addr
  addr=$(grep -o 'listening on [0-9.:]*' "$log" | cut -d' ' -f3)
  taskset -c 1 target/release/loadgen run --addr "$addr" --room-size 10 --duration 10s --warmup 2s \
    --conns 10000 --rate 1 --connect-rate 5000 --threads 1 --spin-us "$spin" --server-pid $sp \
    --json "$out/pin-$name.json" > /dev/null 2>&1
  kill $sp; wait $sp 2>/dev/null; rm -f "$log"; sleep 2
}
for r in 1 2 3; do run r$r-pin 0; run r$r-pin-s20 20; done

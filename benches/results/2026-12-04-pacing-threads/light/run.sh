#!/bin/bash
# Light loads side by side, as lessons 02-07 run them: 10 connections x 100 msg/s and 1,000 x 5
# msg/s (rooms of 10), one engine thread (t1; bf12536's default on 2 cores) against two (t2), three
# rounds, alternating, each against a fresh chat-epoll. It ran with out=/tmp/light from the
# checkout's root; the paths below are the folder's own.
# Usage: cargo build --release -p loadgen -p chat-epoll && benches/results/2026-12-04-pacing-threads/light/run.sh [OUT]
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here}
cd "$(git -C "$here" rev-parse --show-toplevel)"
start() { port=$((20000 + RANDOM % 20000)); target/release/chat-epoll --addr 127.0.0.1:$port --idle-timeout 0 > /dev/null 2>&1 & pid=$!; sleep 0.5; }
stop() { kill $pid; wait $pid 2>/dev/null; sleep 1; }
run() { local name=$1; shift; start
  target/release/loadgen run --addr 127.0.0.1:$port --duration 5s --warmup 1s --server-pid $pid --json "$out/$name.json" "$@" > "$out/$name.txt" 2>&1
  jq -r --arg n "$name" '"\($n) t=\(.generator.threads) lag p50/p90/p99 \(.latency_us.send_lag.p50)/\(.latency_us.send_lag.p90)/\(.latency_us.send_lag.p99) rt p50 \(.latency_us.round_trip.p50)/\(.latency_us.round_trip_uncorrected.p50) rt p99 \(.latency_us.round_trip.p99)"' "$out/$name.json"
  stop; }
for r in 1 2 3; do
  run r$r-t1-10x100 --conns 10 --rate 100 --threads 1
  run r$r-t2-10x100 --conns 10 --rate 100 --threads 2
  run r$r-t1-1000x5 --conns 1000 --rate 5 --threads 1
  run r$r-t2-1000x5 --conns 1000 --rate 5 --threads 2
done

#!/bin/bash
# Deliver 1's load, 10,000 connections x 1 msg/s in rooms of 10, with one engine thread and the
# last 20 or 50 µs of each wait spun instead of slept (--spin-us), three rounds, alternating,
# each against a fresh chat-epoll. Built at commit 1cf8abe. It ran with out=/tmp/spin from the
# checkout's root; the paths below are the folder's own.
# Usage: cargo build --release -p loadgen -p chat-epoll && benches/results/2026-12-04-pacing-threads/spin/run.sh [OUT]
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here}
cd "$(git -C "$here" rev-parse --show-toplevel)"
start() { port=$((20000 + RANDOM % 20000)); target/release/chat-epoll --addr 127.0.0.1:$port --idle-timeout 0 > /dev/null 2>&1 & pid=$!; sleep 0.5; }
stop() { kill $pid; wait $pid 2>/dev/null; sleep 2; }
run() { local name=$1; shift; start
  target/release/loadgen run --addr 127.0.0.1:$port --room-size 10 --duration 10s --warmup 2s --conns 10000 --rate 1 --connect-rate 5000 --server-pid $pid --json "$out/$name.json" "$@" > "$out/$name.txt" 2>&1
  jq -r --arg n "$name" '"\($n) t=\(.generator.threads) lag p50/p90/p99/p999 \(.latency_us.send_lag.p50)/\(.latency_us.send_lag.p90)/\(.latency_us.send_lag.p99)/\(.latency_us.send_lag.p999) spin_s \(.generator.spin_s) gen \(.generator.cpu_percent)% srv \(.server.cpu_percent)% ok \(.ok)"' "$out/$name.json"
  stop; }
for r in 1 2 3; do
  run r$r-t1s20 --threads 1 --spin-us 20
  run r$r-t1s50 --threads 1 --spin-us 50
done

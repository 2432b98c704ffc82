#!/bin/bash
# The README's slice-or-not table: at the loads where a thread mostly sleeps between sends (lesson
# 02's 10 x 100 msg/s against a fresh chat-epoll, and lesson 04's busy server: chat-poll beside
# 5,000 idle clients), one engine thread and one per core, each with the 100 µs slice and with
# the kernel's (--slice-us 0); three rounds, alternating.
# Usage: cargo build --release -p loadgen -p chat-epoll -p chat-poll && benches/results/2026-12-04-threads-slice-wait/slice-ab.sh [OUT]
set -u
source "$(dirname "$0")/../tools/paced-runs.sh"
results_out "" "$@"
results_part ab-light
common="--conns 10 --rate 100 --duration 5s --warmup 1s"
for r in 1 2 3; do
  for t in $one $cores; do
    paced_run r$r-t$t-slice --threads $t
    paced_run r$r-t$t-noslice --threads $t --slice-us 0
  done
done
results_part ab-busy
hold_busy_server 120
for r in 1 2 3; do
  for t in $one $cores; do
    for s in 100 0; do
      name=r$r-t$t-slice$s
      target/release/loadgen run --addr "$ADDR" --conns 10 --rate 100 --duration 5s --warmup 1s \
        --threads $t --slice-us $s --server-pid "$SP" --json "$out/$name.json" > "$out/$name.txt" 2>&1
      jq -r --arg n "$name" '"\($n) threads \(.generator.threads) slice \(.generator.slice_us): send lag p50/p90/p99/p99.9 \(.latency_us.send_lag.p50)/\(.latency_us.send_lag.p90)/\(.latency_us.send_lag.p99)/\(.latency_us.send_lag.p999) µs, ok \(.ok)"' "$out/$name.json"
    done
  done
done
kill $HOLDER "$SP"; wait 2>/dev/null; rm -f "$OUT"

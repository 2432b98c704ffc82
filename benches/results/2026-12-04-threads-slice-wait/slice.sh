#!/bin/bash
# The README's slice tables: engine threads that ask for a 100 µs scheduler slice (--slice-us,
# the default since it was added) against the kernel's default slice (--slice-us 0), with one
# engine thread (t1) and one per core (t2), three rounds, alternating, each against a fresh
# chat-epoll: heavy (5,000 x 2 and 10,000 x 1 msg/s) and light (10 x 100, 1,000 x 5 msg/s)
# loads; then lesson 04's busy server (chat-poll beside 5,000 idle clients) as in
# ../2026-12-04-pacing-threads/busy-server.sh.
# Usage: cargo build --release -p loadgen -p chat-epoll -p chat-poll && benches/results/2026-12-04-threads-slice-wait/slice.sh [OUT]
set -u
source "$(dirname "$0")/../tools/paced-runs.sh"
results_out "" "$@"
results_part slice-heavy
common="--room-size 10 --duration 10s --warmup 2s --connect-rate 5000"
for r in 1 2 3; do
  paced_run r$r-t$one-5000x2 --conns 5000 --rate 2 --threads $one
  paced_run r$r-t$one-noslice-5000x2 --conns 5000 --rate 2 --threads $one --slice-us 0
  paced_run r$r-t$cores-5000x2 --conns 5000 --rate 2 --threads $cores
  paced_run r$r-t$one-10000x1 --conns 10000 --rate 1 --threads $one
  paced_run r$r-t$cores-10000x1 --conns 10000 --rate 1 --threads $cores
done
results_part slice-light
common="--duration 5s --warmup 1s"
for r in 1 2 3; do
  paced_run r$r-t$one-10x100 --conns 10 --rate 100 --threads $one
  paced_run r$r-t$cores-10x100 --conns 10 --rate 100 --threads $cores
  paced_run r$r-t$one-1000x5 --conns 1000 --rate 5 --threads $one
  paced_run r$r-t$cores-1000x5 --conns 1000 --rate 5 --threads $cores
done
results_part slice-busy
hold_busy_server 70
for r in 1 2 3; do
  for t in $one $cores; do
    target/release/loadgen run --addr "$ADDR" --conns 10 --rate 100 --duration 5s --warmup 1s \
      --threads $t --server-pid "$SP" --json "$out/pc-$r-$t.json" > "$out/pc-$r-$t.txt" 2>&1
    jq -r --arg n "pc-$r-$t" '"\($n) threads \(.generator.threads) slice \(.generator.slice_us): send lag p50/p90/p99/p99.9 \(.latency_us.send_lag.p50)/\(.latency_us.send_lag.p90)/\(.latency_us.send_lag.p99)/\(.latency_us.send_lag.p999) µs, ok \(.ok)"' "$out/pc-$r-$t.json"
  done
done
kill $HOLDER "$SP"; wait 2>/dev/null; rm -f "$OUT"

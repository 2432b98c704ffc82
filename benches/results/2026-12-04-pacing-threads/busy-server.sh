#!/bin/bash
# The README's "busy server" table: chat-poll holding 5,000 idle connections (its poll() over
# them keeps one core busy), and beside them 10 connections x 100 msg/s, one engine thread (t1)
# against two (t2), three rounds, alternating, against the same server. Built at commit ee11e1f.
# Usage: cargo build --release -p loadgen -p chat-poll && benches/results/2026-12-04-pacing-threads/busy-server.sh [OUT]
set -u
source "$(dirname "$0")/../tools/paced-runs.sh"
results_out busy "$@"
hold_busy_server 70
for r in 1 2 3; do
  for t in 1 2; do
    target/release/loadgen run --addr "$ADDR" --conns 10 --rate 100 --duration 5s --warmup 1s \
      --threads $t --server-pid "$SP" --json "$out/pc-$r-$t.json" > /dev/null 2>&1
  done
done
kill $HOLDER "$SP"; wait 2>/dev/null; rm -f "$OUT"

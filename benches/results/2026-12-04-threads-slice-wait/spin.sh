#!/bin/bash
# The README's spinning table: deliver 1's load (10,000 x 1 msg/s, rooms of 10) with the
# defaults as committed, waking 20 or 50 µs early and spinning to each due send (--spin-us), or
# not; three rounds, alternating, each against a fresh chat-epoll.
# Usage: cargo build --release -p loadgen -p chat-epoll && benches/results/2026-12-04-threads-slice-wait/spin.sh [OUT]
set -u
source "$(dirname "$0")/../tools/paced-runs.sh"
results_out spin "$@"
common="--room-size 10 --duration 10s --warmup 2s --connect-rate 5000 --conns 10000 --rate 1"
for r in 1 2 3; do
  paced_run r$r-nospin
  paced_run r$r-spin20 --spin-us 20
  paced_run r$r-spin50 --spin-us 50
done

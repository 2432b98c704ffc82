#!/bin/bash
# The README's check of the defaults as committed: no --threads (a heavy paced run against
# loopback now leaves the server a core), at issue 11's two paced loads, three rounds, each
# against a fresh chat-epoll. (defaults-first/ holds the same runs with the first version of
# the wait, 045eb9b.)
# Usage: cargo build --release -p loadgen -p chat-epoll && benches/results/2026-12-04-threads-slice-wait/defaults.sh [OUT]
set -u
source "$(dirname "$0")/../tools/paced-runs.sh"
results_out defaults "$@"
common="--room-size 10 --duration 10s --warmup 2s --connect-rate 5000"
for r in 1 2 3; do
  paced_run r$r-5000x2 --conns 5000 --rate 2
  paced_run r$r-10000x1 --conns 10000 --rate 1
done

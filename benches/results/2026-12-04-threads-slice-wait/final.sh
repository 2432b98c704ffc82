#!/bin/bash
# The README's "where issue 11 stands" table: the generator of commit 5fd96c1 (its own wait, the
# 100 µs slice) with one engine thread per core (t2 on 2 cores, then the default) and with one
# fewer, at issue 11's two paced loads (5,000 x 2 and 10,000 x 1 msg/s, rooms of 10), three
# rounds, alternating, each against a fresh chat-epoll.
# Usage: cargo build --release -p loadgen -p chat-epoll && benches/results/2026-12-04-threads-slice-wait/final.sh [OUT]
set -u
source "$(dirname "$0")/../tools/paced-runs.sh"
results_out final "$@"
common="--room-size 10 --duration 10s --warmup 2s --connect-rate 5000"
for r in 1 2 3; do
  paced_run r$r-t$cores-5000x2 --conns 5000 --rate 2 --threads $cores
  paced_run r$r-t$((cores - 1))-5000x2 --conns 5000 --rate 2 --threads $((cores - 1))
  paced_run r$r-t$cores-10000x1 --conns 10000 --rate 1 --threads $cores
  paced_run r$r-t$((cores - 1))-10000x1 --conns 10000 --rate 1 --threads $((cores - 1))
done

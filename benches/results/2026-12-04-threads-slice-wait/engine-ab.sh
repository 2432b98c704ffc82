#!/bin/bash
# The README's before-and-after table: the generator as it was (OLD: a release build of commit
# e1ce564, polling's Poller::wait, the kernel's slice) against this commit's (its own epoll_pwait2
# wait, no timer slack, a 100 µs slice), three rounds, alternating, each run against a fresh
# chat-epoll: paced 5,000 x 2 msg/s with one engine thread per core (the default) and with one
# fewer, and closed loop at 1,000 connections (the generator's CPU per message).
# Usage: git worktree add /tmp/old e1ce564 && (cd /tmp/old && cargo build --release -p loadgen) &&
#   cargo build --release -p loadgen -p chat-epoll &&
#   OLD=/tmp/old/target/release/loadgen benches/results/2026-12-04-threads-slice-wait/engine-ab.sh [OUT]
set -u
source "$(dirname "$0")/../tools/paced-runs.sh"
results_out "" "$@"
results_part engine-ab
common="--room-size 10 --duration 10s --warmup 2s --connect-rate 5000"
for r in 1 2 3; do
  for t in $cores $((cores - 1)); do
    LOADGEN=$OLD paced_run r$r-old-t$t-5000x2 --conns 5000 --rate 2 --threads $t
    paced_run r$r-new-t$t-5000x2 --conns 5000 --rate 2 --threads $t
  done
done
common="--room-size 10 --duration 5s --warmup 1s"
for r in 1 2 3; do
  LOADGEN=$OLD paced_run r$r-old-closed1000 --conns 1000 --closed
  paced_run r$r-new-closed1000 --conns 1000 --closed
done

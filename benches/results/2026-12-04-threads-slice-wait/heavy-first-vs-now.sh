#!/bin/bash
# The README's check that sending long waits through polling's timerfd cost the heavy load
# nothing: deliver 1's load (10,000 x 1 msg/s, rooms of 10, the defaults: one engine thread on
# 2 cores) with the first version of the wait (FIRST, 045eb9b) and this commit's, three rounds,
# alternating, each against a fresh chat-epoll.
# Usage: FIRST=/path/to/045eb9b/loadgen benches/results/2026-12-04-threads-slice-wait/heavy-first-vs-now.sh [OUT]
set -u
source "$(dirname "$0")/../tools/paced-runs.sh"
results_out heavy-first-vs-now "$@"
common="--room-size 10 --duration 10s --warmup 2s --connect-rate 5000 --conns 10000 --rate 1"
for r in 1 2 3; do
  LOADGEN=$FIRST paced_run r$r-first
  paced_run r$r-now
done

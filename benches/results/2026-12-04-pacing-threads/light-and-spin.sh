#!/bin/bash
# The README's second and third tables, each run against a fresh chat-epoll, three rounds,
# alternating (they ran as two scripts with their helpers written out, a random port instead of
# port 0, and /tmp folders for the files; the runs are the same):
# - light/: the loads lessons 02-07 run, 10 connections x 100 msg/s and 1,000 x 5 msg/s (rooms of
#   10), one engine thread (t1; bf12536's default on 2 cores) against two (t2);
# - spin/: deliver 1's load, 10,000 x 1 msg/s, one engine thread, the last 20 or 50 µs of each
#   wait spun instead of slept (--spin-us), built at commit 1cf8abe.
# Usage: cargo build --release -p loadgen -p chat-epoll && benches/results/2026-12-04-pacing-threads/light-and-spin.sh [OUT]
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=${1:-$here}
cd "$(git -C "$here" rev-parse --show-toplevel)"
source benches/results/tools/paced-runs.sh
out=$top/light
common="--duration 5s --warmup 1s"
for r in 1 2 3; do
  paced_run r$r-t1-10x100 --conns 10 --rate 100 --threads 1
  paced_run r$r-t2-10x100 --conns 10 --rate 100 --threads 2
  paced_run r$r-t1-1000x5 --conns 1000 --rate 5 --threads 1
  paced_run r$r-t2-1000x5 --conns 1000 --rate 5 --threads 2
done
out=$top/spin
common="--room-size 10 --duration 10s --warmup 2s --conns 10000 --rate 1 --connect-rate 5000"
for r in 1 2 3; do
  paced_run r$r-t1s20 --threads 1 --spin-us 20
  paced_run r$r-t1s50 --threads 1 --spin-us 50
done

#!/bin/bash
# The runs of this folder's README, one at a time, each against a fresh chat-epoll: open loop at
# 5,000 x 2 msg/s and 10,000 x 1 msg/s with one engine thread fewer than the cores ("default":
# at bf12536, where they ran, that was the default of a paced run against loopback, since
# reverted; on 2 cores it is --threads 1) and with every core; three rounds, alternating. (It
# ran with the helpers written out in this script and a random port instead of port 0; the runs
# are the same.)
# Usage: cargo build --release -p loadgen -p chat-epoll && benches/results/2026-12-04-pacing-threads/run.sh [OUT]
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here}
cd "$(git -C "$here" rev-parse --show-toplevel)"
cores=$(nproc)
common="--room-size 10 --duration 10s --warmup 2s"
source benches/results/tools/paced-runs.sh
for round in 1 2 3; do
  paced_run r$round-default-5000x2   --conns 5000 --rate 2 --threads $((cores - 1))
  paced_run r$round-all-5000x2       --conns 5000 --rate 2 --threads $cores
  paced_run r$round-default-10000x1  --conns 10000 --rate 1 --connect-rate 5000 --threads $((cores - 1))
  paced_run r$round-all-10000x1      --conns 10000 --rate 1 --connect-rate 5000 --threads $cores
done

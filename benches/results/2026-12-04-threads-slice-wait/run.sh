#!/bin/bash
# The runs of this folder's README, one at a time, each against a fresh server: paced chat in
# rooms of 10 at four offered loads between the lessons' heaviest and issue 11's, with one engine
# thread fewer than the cores ("t1" on 2 cores) and with one per core ("t2"); three rounds,
# alternating. Then the heaviest load against chat-async, whose workers use every core.
# Usage: cargo build --release -p loadgen -p chat-epoll -p chat-async && benches/results/2026-12-04-threads-slice-wait/run.sh [OUT]
set -u
source "$(dirname "$0")/../tools/paced-runs.sh"
results_out by-load "$@"
common="--room-size 10 --duration 10s --warmup 2s --connect-rate 5000"
# conns x msg/s: 40,000, 60,000, 80,000 and 100,000 deliveries/s in rooms of 10.
loads="2000x2 3000x2 4000x2 5000x2"
for round in 1 2 3; do
  for load in $loads; do
    conns=${load%x*} rate=${load#*x}
    paced_run r$round-t$((cores - 1))-$load --conns $conns --rate $rate --threads $((cores - 1))
    paced_run r$round-t$cores-$load --conns $conns --rate $rate --threads $cores
  done
done
for round in 1 2 3; do
  SERVER=chat-async paced_run r$round-async-t$((cores - 1))-5000x2 --conns 5000 --rate 2 --threads $((cores - 1))
  SERVER=chat-async paced_run r$round-async-t$cores-5000x2 --conns 5000 --rate 2 --threads $cores
done

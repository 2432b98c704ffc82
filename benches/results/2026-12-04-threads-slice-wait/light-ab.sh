#!/bin/bash
# The README's light-load check of the new wait: lesson 08's first paced run (50 x 20 msg/s in
# rooms of 10) and its 10,000-connection sweep load (10,000 x 0.2 msg/s), the generator as it
# was (OLD, e1ce564), as it is (new), and as it is without the slice (--slice-us 0); three
# rounds, alternating, each against a fresh chat-epoll. (light-ab-first/ holds the same runs
# with the first version of the wait, 045eb9b, as "new".)
# Usage: as engine-ab.sh: OLD=/path/to/old/loadgen benches/results/2026-12-04-threads-slice-wait/light-ab.sh [OUT]
set -u
source "$(dirname "$0")/../tools/paced-runs.sh"
results_out light-ab "$@"
for r in 1 2 3; do
  common="--room-size 10 --duration 6s --warmup 1s --conns 50 --rate 20"
  LOADGEN=$OLD paced_run r$r-old-50x20
  paced_run r$r-new-50x20
  paced_run r$r-new-slice0-50x20 --slice-us 0
  common="--room-size 10 --duration 10s --warmup 2s --conns 10000 --rate 0.2"
  LOADGEN=$OLD paced_run r$r-old-10000x0.2
  paced_run r$r-new-10000x0.2
  paced_run r$r-new-slice0-10000x0.2 --slice-us 0
done

#!/bin/bash
# The README's long-waits table: lesson 08's 10,000-connection sweep load against chat-pool, where
# only 128 connections are served and the engine threads sleep for long stretches between sends:
# the generator as it was (OLD, e1ce564: polling's timerfd), with the first version of its own
# wait (FIRST, 045eb9b: every wait an epoll_pwait2), and as it is (this commit: a wait over
# 1 ms takes polling's timerfd); three rounds, alternating, each against a fresh chat-pool.
# Usage: build OLD and FIRST as engine-ab.sh says, then
#   OLD=... FIRST=... benches/results/2026-12-04-threads-slice-wait/long-waits.sh [OUT]
set -u
source "$(dirname "$0")/../tools/paced-runs.sh"
results_out long-waits "$@"
common="--room-size 10 --duration 10s --warmup 2s --conns 10000 --rate 0.2"
for r in 1 2 3; do
  SERVER=chat-pool LOADGEN=$OLD paced_run r$r-old
  SERVER=chat-pool LOADGEN=$FIRST paced_run r$r-first
  SERVER=chat-pool paced_run r$r-now
done

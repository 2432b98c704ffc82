#!/bin/bash
# The short churn runs of this page's diagnosis: 10,000 connections, rooms of 10, 1 msg/s, with
# a churn four times the soak's (so that 100,000 reconnects come in under a minute).
# Run from the repository root after `cargo build --release --workspace --bins`:
#   benches/results/2026-12-02-soak-steady/diagnosis/churn.sh SERVER SECONDS CHURN OUT [VAR=VALUE...]
# e.g. `... churn.sh chat-reactor 120 2000 /tmp/r MALLOC_ARENA_MAX=1`
set -u
ulimit -n 20000
S=$1; SECS=$2; CH=$3; OUT=$4; shift 4
env "$@" target/release/$S --addr 127.0.0.1:0 --idle-timeout 0 > $OUT.srv 2>&1 & SP=$!
sleep 0.5; ADDR=$(grep -o '127.0.0.1:[0-9]*' $OUT.srv | head -1)
timeout $((SECS+120)) target/release/loadgen run --addr $ADDR --conns 10000 --room-size 10 \
  --rate 1 --churn $CH --duration ${SECS}s --warmup 10s --connect-rate 5000 --connect-timeout 30s \
  --drain 10s --source-addrs 4 --server-pid $SP --json $OUT.json > $OUT.txt 2>&1
kill $SP
grep -E "verdict|send lag|^churn" $OUT.txt
jq -r '[.series[] | select((.t_s|floor) % 10 == 0) | "\(.t_s|floor):\(.server_rss_kib)"] | join(" ")' $OUT.json

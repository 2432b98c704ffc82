#!/bin/bash
# The churn runs of this page: the diagnosis's churn.sh of 2026-12-02-soak-steady (10,000
# connections, rooms of 10, 1 msg/s, churn CHURN/s for SECONDS after 10 s of warm-up), with BUSY
# shell loops competing for the cores meanwhile (0 = a quiet machine). Run from the repository
# root after `cargo build --release --workspace --bins`:
#   benches/results/2026-12-03-soak/contention/contend.sh SERVER SECONDS CHURN OUT BUSY [VAR=VALUE...]
# e.g. `... contend.sh chat-reactor 120 2000 /tmp/r 1`, `... contend.sh "chat-reactor --io-threads 1" 120 2000 /tmp/r 1`,
#      `... contend.sh chat-reactor 120 2000 /tmp/r 1 LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2`
set -u
S=$1; SECS=$2; CH=$3; OUT=$4; N=$5; shift 5
pids=()
for _ in $(seq 1 "$N"); do
  timeout $((SECS + 60)) sh -c 'while :; do :; done' & pids+=($!)
done
benches/results/2026-12-02-soak-steady/diagnosis/churn.sh "$S" "$SECS" "$CH" "$OUT" "$@"
for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done

#!/bin/bash
# The soak of chat-reactor (the bench's arguments) after the SendQueue fix (reactor-soak-sendqueue.*).
# Run from the repository after `cargo build --release -p chat-reactor -p loadgen`; OUT=dir for the files.
ulimit -n 20000
cd "$(git rev-parse --show-toplevel)"
env target/release/chat-reactor --addr 127.0.0.1:0 --idle-timeout 0 > ${OUT:-/tmp}/soak.srv 2>&1 & SP=$!
sleep 0.5; ADDR=$(grep -o '127.0.0.1:[0-9]*' ${OUT:-/tmp}/soak.srv | head -1)
timeout 900 target/release/loadgen run --addr $ADDR --conns 10000 --room-size 10 --rate 1 --churn 500 --duration 600s --warmup 60s --connect-rate 5000 --connect-timeout 30s --drain 10s --source-addrs 4 --server-pid $SP --json ${OUT:-/tmp}/soak.json > ${OUT:-/tmp}/soak.txt 2>&1
echo "loadgen rc=$?" >> ${OUT:-/tmp}/soak.txt
kill $SP

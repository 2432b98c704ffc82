#!/bin/bash
# Closed-loop chat, 1,000 connections in rooms of 10: the generator's and the server's CPU per
# acknowledged message side by side (see ../2026-12-02-generator-cpu-per-message.md).
# usage: cpu-perf.sh LOADGEN SERVER TAG [extra loadgen args] -- perf record both sides of a closed-loop run
LG=$1; SRV=$2; TAG=$3; shift 3
. "$(dirname "$0")/start-server.sh"
start_server $SRV
J=${OUT_DIR:-/tmp}/$TAG.json
$LG run --addr $ADDR --conns 1000 --room-size 10 --closed --duration ${DUR:-8s} --warmup 3s --server-pid $SP --json $J "$@" > /dev/null &
LP=$!
sleep 5
perf record -F 2000 -g -p $SP -o ${OUT_DIR:-/tmp}/$TAG.server.data -- sleep ${PS:-4} 2>/dev/null &
perf record -F 2000 -g -p $LP -o ${OUT_DIR:-/tmp}/$TAG.gen.data -- sleep ${PS:-4} 2>/dev/null &
wait $LP
sleep 1
kill $SP; wait $SP 2>/dev/null
jq -r '"qps \(.messages.qps) gen \(.generator.cpu_us_per_msg) server \(.server.cpu_us_per_msg) ratio \((.generator.cpu_us_per_msg / .server.cpu_us_per_msg * 100 | round) / 100)"' $J
rm -f $OUT

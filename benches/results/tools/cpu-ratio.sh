#!/bin/bash
# Closed-loop chat, 1,000 connections in rooms of 10: the generator's and the server's CPU per
# acknowledged message side by side (see ../2026-12-02-generator-cpu-per-message.md).
# usage: cpu-ratio.sh LOADGEN SERVER [extra loadgen args...]
LG=$1; SRV=$2; shift 2
. "$(dirname "$0")/start-server.sh"
start_server $SRV
J=$(mktemp --suffix .json)
$LG run --addr $ADDR --conns 1000 --room-size 10 --closed --duration 10s --warmup 2s --server-pid $SP --json $J "$@" > /dev/null
kill $SP; wait $SP 2>/dev/null
jq -r '"qps \(.messages.qps) gen \(.generator.cpu_percent)% \(.generator.cpu_us_per_msg)us/msg server \(.server.cpu_percent)% \(.server.cpu_us_per_msg)us/msg ratio \((.generator.cpu_us_per_msg / .server.cpu_us_per_msg * 100 | round) / 100) lost \(.messages.lost)"' $J
echo "load $(cut -d' ' -f1 /proc/loadavg)"
rm -f $OUT $J

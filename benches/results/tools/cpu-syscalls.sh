#!/bin/bash
# Closed-loop chat, 1,000 connections in rooms of 10: the generator's and the server's CPU per
# acknowledged message side by side (see ../2026-12-02-generator-cpu-per-message.md).
# usage: cpu-syscalls.sh LOADGEN SERVER TAG [extra loadgen args] -- syscalls per message on both sides (perf stat tracepoints)
LG=$1; SRV=$2; TAG=$3; shift 3
. "$(dirname "$0")/start-server.sh"
start_server $SRV
J=${OUT_DIR:-/tmp}/$TAG.sysc.json
$LG run --addr $ADDR --conns 1000 --room-size 10 --closed --duration 12s --warmup 3s --server-pid $SP --json $J "$@" > /dev/null &
LP=$!
sleep 6
EV=syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_writev,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_epoll_ctl,syscalls:sys_enter_read,syscalls:sys_enter_timerfd_settime,task-clock
perf stat -x, -e $EV -p $SP -o ${OUT_DIR:-/tmp}/$TAG.sysc.server -- sleep 5 &
perf stat -x, -e $EV -t $(ls /proc/$LP/task | tr '\n' ',' | sed 's/,$//') -o ${OUT_DIR:-/tmp}/$TAG.sysc.gen -- sleep 5 &
wait $LP
kill $SP; wait $SP 2>/dev/null
jq -r '"qps \(.messages.qps) gen \(.generator.cpu_us_per_msg) server \(.server.cpu_us_per_msg) ratio \((.generator.cpu_us_per_msg / .server.cpu_us_per_msg * 100 | round) / 100)"' $J
for s in server gen; do echo "-- $s"; grep -v "^#" ${OUT_DIR:-/tmp}/$TAG.sysc.$s | grep -v "^$" | awk -F, -v q=$(jq .messages.qps $J) '{printf "%-40s %10s  %.3f per msg\n", $3, $1, $1/(q*5)}'; done
rm -f $OUT

#!/usr/bin/env bash
# System calls per delivered message: chat-epoll against chat-uring, under the same load.
#
#   benches/syscalls-per-message.sh [CONNS] [DURATION] [SERVER...]
#
# For each server (default: chat-epoll chat-uring), start it on a free port, count every system
# call it makes (all threads) from just before a `loadgen run` until just after it, and divide
# by the copies the generator received (`messages.received_copies` in its JSON report: every
# broadcast delivered to every member, acknowledgements included, over the whole run). The load
# is closed-loop chat in rooms of 10 (each client sends its next message when its own copy of
# the last one is back), CONNS connections (default 1000), DURATION measured (default 10s)
# after 2s of warm-up.
#
# Counting: `strace -c -f -p PID` by default (it also prints which calls they were, but it
# stops the server at every call, so the server runs slower than without it); COUNTER=perf uses
# `perf stat -e raw_syscalls:sys_enter` (a kernel tracepoint: no slowdown, total only; needs
# perf and permission to trace). The figures depend on the machine and its load: run it on a
# quiet machine, and compare the two servers with each other, not with other runs.
#
# Runs the binaries on PATH (the course puts target/release there), else those in
# target/release (`cargo build --release -p chat-epoll -p chat-uring -p loadgen`); BIN=DIR runs
# the ones in DIR. Needs strace (or perf) and jq.
set -euo pipefail

conns=${1:-1000}
duration=${2:-10s}
shift $(( $# < 2 ? $# : 2 ))
servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=(chat-epoll chat-uring)
release=$(cd "$(dirname "$0")/.." && pwd)/target/release
counter=${COUNTER:-strace}

# The path of binary $1: in $BIN, on PATH, or in target/release.
program() {
    if [ -n "${BIN:-}" ]; then
        echo "$BIN/$1"
    else
        command -v "$1" || echo "$release/$1"
    fi
}

for tool in jq "$counter"; do
    command -v "$tool" > /dev/null || { echo "this needs $tool" >&2; exit 1; }
done
for name in loadgen "${servers[@]}"; do
    [ -x "$(program "$name")" ] || { echo "$name is not built (cargo build --release -p $name)" >&2; exit 1; }
done

work=$(mktemp -d)
server_pid=""
counter_pid=""
cleanup() {
    [ -z "$counter_pid" ] || kill "$counter_pid" 2> /dev/null || true
    [ -z "$server_pid" ] || kill "$server_pid" 2> /dev/null || true
    wait 2> /dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Starts server $1 on a free port; sets server_pid and addr.
start_server() {
    "$(program "$1")" --addr 127.0.0.1:0 --idle-timeout 0 > "$work/stdout" 2> "$work/stderr" &
    server_pid=$!
    addr=""
    for _ in $(seq 100); do
        addr=$(sed -n 's/^listening on //p' "$work/stdout")
        [ -n "$addr" ] && return 0
        kill -0 "$server_pid" 2> /dev/null || break
        sleep 0.1
    done
    echo "$1 did not start:" >&2
    cat "$work/stderr" >&2
    exit 1
}

# Prints the number of system calls in counter output file $1.
total_calls() {
    case "$counter" in
        strace) awk '$NF == "total" { print $4 }' "$1" ;;
        perf) awk '/raw_syscalls:sys_enter/ { gsub(",", "", $1); print $1 }' "$1" ;;
    esac
}

printf '%-12s %12s %16s %12s\n' server syscalls "copies received" "per copy"
declare -A per_copy
for server in "${servers[@]}"; do
    start_server "$server"
    case "$counter" in
        strace) strace -c -f -p "$server_pid" -o "$work/$server.count" 2> /dev/null & ;;
        perf) perf stat -e raw_syscalls:sys_enter -p "$server_pid" -o "$work/$server.count" 2> /dev/null & ;;
    esac
    counter_pid=$!
    sleep 1 # let the counter attach before the first connection
    "$(program loadgen)" run --addr "$addr" --conns "$conns" --closed --duration "$duration" \
        --warmup 2s --json "$work/$server.json" > "$work/$server.run" 2>&1 \
        || { echo "$server: loadgen run failed:" >&2; cat "$work/$server.run" >&2; exit 1; }
    kill -INT "$counter_pid" # the counter detaches and writes its summary
    wait "$counter_pid" 2> /dev/null || true
    counter_pid=""
    kill "$server_pid"
    wait "$server_pid" 2> /dev/null || true
    server_pid=""
    calls=$(total_calls "$work/$server.count")
    copies=$(jq '.messages.received_copies' "$work/$server.json")
    [ -n "$calls" ] && [ "$copies" -gt 0 ] || { echo "$server: no count (calls '$calls', copies '$copies')" >&2; exit 1; }
    per_copy[$server]=$(awk -v c="$calls" -v m="$copies" 'BEGIN { printf "%.3f", c / m }')
    printf '%-12s %12s %16s %12s\n' "$server" "$calls" "$copies" "${per_copy[$server]}"
    if [ "$counter" = strace ]; then
        # The five most frequent calls: what the server spends its system calls on.
        awk 'NR > 2 && $1 != "------" && $NF != "total" { print $4, $NF }' "$work/$server.count" \
            | sort -rn | head -5 | awk '{ printf "    %-18s %s\n", $2, $1 }'
    fi
done
if [ -n "${per_copy[chat-epoll]:-}" ] && [ -n "${per_copy[chat-uring]:-}" ]; then
    awk -v u="${per_copy[chat-uring]}" -v e="${per_copy[chat-epoll]}" \
        'BEGIN { printf "chat-uring makes %.2f times chat-epoll'"'"'s system calls per delivered message\n", u / e }'
fi

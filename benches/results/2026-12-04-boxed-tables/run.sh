#!/usr/bin/env bash
# chat-epoll with its two connection tables' values boxed (the Hub's Conn, the loop's Peer)
# against the build before (OLD: e.g. a copy of target/release/chat-epoll made at 04b409e),
# alternating, three rounds: memory per connection at 10,000 idle clients, then closed-loop chat
# at 1,000 connections in rooms of 10 (the hot path: one more pointer to follow per lookup).
# Usage: cargo build --release -p chat-epoll -p loadgen && OLD=/tmp/chat-epoll-before run.sh
set -u
source "$(dirname "$0")/../tools/start-server.sh"
here=$(cd "$(dirname "$0")" && pwd)
cd "$(git -C "$here" rev-parse --show-toplevel)" || exit 1
one() { # NAME SERVER-BINARY, then the run's arguments
  local name=$1 bin=$2; shift 2
  start_server "$bin"
  target/release/loadgen run --addr "$ADDR" --server-pid "$SP" --json "$here/$name.json" "$@" \
    > "$here/$name.txt" 2>&1
  echo "$name rc=$? load=$(cut -d' ' -f1 /proc/loadavg)" >> "$here/loads.txt"
  kill "$SP"; wait "$SP" 2>/dev/null; rm -f "$OUT"; sleep 1
}
for r in 1 2 3; do
  for who in old new; do
    bin=target/release/chat-epoll; [ "$who" = old ] && bin=$OLD
    one "r$r-$who-idle10000" "$bin" --workload idle --conns 10000 --duration 3s --warmup 1s --connect-rate 5000
    one "r$r-$who-closed1000" "$bin" --conns 1000 --room-size 10 --closed --duration 10s --warmup 2s
  done
done
for f in "$here"/r*.json; do
  jq -r --arg n "$(basename "$f" .json)" '"\($n): \(.messages.qps) msg/s, server \(.server.cpu_us_per_msg) µs/msg, generator \(.generator.cpu_us_per_msg) µs/msg, \(.server.rss_per_conn_bytes) bytes/conn"' "$f"
done

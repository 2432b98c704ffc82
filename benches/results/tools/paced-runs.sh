# Sourced by the run.sh of a results folder: one `loadgen run` at a time against a fresh
# server ($SERVER, default chat-epoll) on a free loopback port, by $LOADGEN (default this
# checkout's release build), its report in $out/NAME.json and its output in
# $out/NAME.txt, its exit status and the load average before and after it appended to
# $out/loads.txt, then a one-line summary. The caller sets `out` and `common` (the arguments every
# run shares) and works from the checkout's root with release builds of loadgen and the server.
source "$(dirname "${BASH_SOURCE[0]}")/start-server.sh"
paced_run() { # NAME, then the run's own arguments
  local name=$1; shift
  start_server "target/release/${SERVER:-chat-epoll}"
  local load rc
  load=$(cut -d' ' -f1 /proc/loadavg)
  "${LOADGEN:-target/release/loadgen}" run --addr "$ADDR" --server-pid "$SP" --json "$out/$name.json" \
    $common "$@" > "$out/$name.txt" 2>&1
  rc=$?
  echo "$name rc=$rc load_before=$load load_after=$(cut -d' ' -f1 /proc/loadavg)" >> "$out/loads.txt"
  jq -r --arg n "$name" '"\($n) threads \(.generator.threads): send lag p50/p90/p99/p99.9 \(.latency_us.send_lag.p50)/\(.latency_us.send_lag.p90)/\(.latency_us.send_lag.p99)/\(.latency_us.send_lag.p999) µs, round trip p50 \(.latency_us.round_trip.p50)/\(.latency_us.round_trip_uncorrected.p50) µs, ok \(.ok)"' "$out/$name.json"
  kill "$SP"; wait "$SP" 2>/dev/null; rm -f "$OUT"; sleep 1
}

# `results_out NAME [OUT]`, first thing in a results script (after sourcing this file by its path
# relative to the script): sets `here` (the script's folder), `out` and `top` (OUT, else
# here/NAME, or here itself when NAME is empty; created), `cores` (this machine's) and `one`
# (one fewer), and moves to the checkout's root. `results_part NAME` then points `out` at
# top/NAME (created), for a script that writes several folders.
results_out() {
  here=$(cd "$(dirname "$0")" && pwd)
  if [ -n "$1" ]; then out=${2:-$here/$1}; else out=${2:-$here}; fi
  top=$out
  mkdir -p "$out"
  cores=$(nproc)
  one=$((cores - 1))
  cd "$(git -C "$here" rev-parse --show-toplevel)" || exit 1
}
results_part() {
  out=$top/$1
  mkdir -p "$out"
}

# `hold_busy_server SECONDS`: lesson 04's busy server, chat-poll on a free port holding 5,000
# idle clients for SECONDS (its poll() over them keeps a core busy), the holder's output in
# $out/idle-holder.txt; sets ADDR, SP (the server) and HOLDER (the idle run). Stop both with
# `kill $HOLDER "$SP"; wait; rm -f "$OUT"`.
hold_busy_server() {
  start_server target/release/chat-poll
  target/release/loadgen run --addr "$ADDR" --workload idle --conns 5000 --duration "$1"s \
    > "$out/idle-holder.txt" 2>&1 &
  HOLDER=$!
  sleep 6
}

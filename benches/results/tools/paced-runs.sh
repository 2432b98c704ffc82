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

#!/bin/bash
# Issue 17's ratios and issue 11's pacing with the generator on cores of its own (a 16-core
# machine): every server pinned to its cores, `loadgen run` pinned to the others, one run at a
# time against a fresh server, every report kept. Writes OUT/<part>/<run>.json and .txt, a
# one-line summary of each run to OUT/summary.txt, and the machine to OUT/machine.txt.
#
#   ratio2  chat-epoll (edge), chat-async, chat-reactor and Redis on cpus 0-1 (two cores, as on
#           the 2-core machines), the generator on 2-15: closed loop, 1,000 connections, rooms
#           of 10, ping and chat, 1 s warm-up + 4 s, 3 rounds, the targets rotated each round
#           (the plan of `cargo bench --bench redis_ratio`)
#   ratio8  the three servers of the workspace on cpus 0-7, the generator on 8-15: the same runs
#   paced   chat-epoll on cpu 0, the generator on 2-15: open loop 10,000 x 1 msg/s (default
#           threads, twice; one thread), 5,000 x 2 msg/s (issue 11's deliver 1 and done-when 1)
#   cpu     chat-epoll on cpu 0, one generator thread on cpu 2: closed loop, 1,000 connections,
#           the two processes' CPU per message (issue 11's deliver 3), twice
#   epollout  as ratio2, for chat-epoll edge-triggered before the change that watches output only
#           while it is refused (BIN/chat-epoll-before), after it, level-triggered, and Redis
#   onecore   as ratio2, for chat-epoll (edge) and Redis each pinned to one core, cpu 1
#   onecore0  the same on cpu 0, ping only
#
# Usage: run.sh OUT [PART...]   (default: the first four parts; the others were run after them)
#   BIN: the release binaries (default target/release); REDIS: redis-server (default from PATH).
#   Needs taskset or python3 (to pin), and python3 for the summaries.
set -u
out=${1:?usage: run.sh OUT [PART...]}; shift
parts=${*:-ratio2 ratio8 paced cpu}
BIN=${BIN:-target/release}
REDIS=${REDIS:-redis-server}
mkdir -p "$out"
ulimit -n "$(ulimit -Hn)" 2> /dev/null || ulimit -n 1048576

# `pin CPUS PROGRAM ARGS...`: runs PROGRAM on CPUS only (a list such as 0-1 or 2,4-15), in this
# process (exec), so a backgrounded `pin` has PROGRAM's pid.
pin() {
  local cpus=$1; shift
  if command -v taskset > /dev/null; then exec taskset -c "$cpus" "$@"; fi
  exec python3 -c '
import os, sys
cpus = set()
for part in sys.argv[1].split(","):
    a, _, b = part.partition("-")
    cpus.update(range(int(a), int(b or a) + 1))
os.sched_setaffinity(0, cpus)
os.execvp(sys.argv[2], sys.argv[2:])' "$cpus" "$@"
}

# `start_server NAME CPUS`: a fresh server on a free loopback port; sets SP and ADDR. NAME:
# chat-epoll (edge-triggered), chat-epoll-level, chat-epoll-before (edge), chat-async,
# chat-reactor or redis.
start_server() {
  local name=$1 cpus=$2 log
  log=$(mktemp)
  if [ "$name" = redis ]; then
    local port=$((16379 + RANDOM % 20000))
    (pin "$cpus" "$REDIS" --port $port --bind 127.0.0.1 --save '' --appendonly no \
      --maxclients 100000 --daemonize no > "$log" 2>&1) &
    SP=$!
    ADDR=127.0.0.1:$port
    for _ in $(seq 100); do (exec 3<> /dev/tcp/127.0.0.1/$port) 2> /dev/null && break; sleep 0.05; done
  else
    local program=$name extra=()
    case $name in
      chat-epoll | chat-epoll-before) extra=(--trigger edge) ;;
      chat-epoll-level) program=chat-epoll extra=(--trigger level) ;;
    esac
    (pin "$cpus" "$BIN/$program" --addr 127.0.0.1:0 --idle-timeout 0 "${extra[@]}" > "$log" 2>&1) &
    SP=$!
    for _ in $(seq 100); do grep -q listening "$log" && break; sleep 0.05; done
    ADDR=$(grep -o 'listening on [0-9.:]*' "$log" | cut -d' ' -f3)
  fi
  rm -f "$log"
}

# `run PART NAME SERVER SERVER_CPUS GENERATOR_CPUS LOADGEN_ARGS...`
run() {
  local part=$1 name=$2 server=$3 scpus=$4 gcpus=$5; shift 5
  mkdir -p "$out/$part"
  start_server "$server" "$scpus"
  # The subshell's pid is the server's: `pin` execs in it.
  local target=() load rc
  [ "$server" = redis ] && target=(--target redis)
  load=$(cut -d' ' -f1 /proc/loadavg)
  (pin "$gcpus" "$BIN/loadgen" run --addr "$ADDR" --server-pid "$SP" "${target[@]}" \
    --json "$out/$part/$name.json" "$@") > "$out/$part/$name.txt" 2>&1
  rc=$?
  kill "$SP" 2> /dev/null; wait "$SP" 2> /dev/null
  python3 - "$out/$part/$name.json" "$part/$name" "$rc" "$load" << 'PY' | tee -a "$out/summary.txt"
import json, sys
path, name, rc, load = sys.argv[1:]
try:
    r = json.load(open(path))
except Exception as e:
    print(f"{name} rc={rc} no report ({e})"); sys.exit()
m, g, s, lag = r["messages"], r["generator"], r["server"], r["latency_us"]["send_lag"]
rate = m.get("deliveries_per_sec") if r.get("workload") == "chat" else m.get("qps")
print(f"{name} rc={rc} load={load} qps={m.get('qps')} deliveries/s={m.get('deliveries_per_sec')} "
      f"lost={m.get('lost')} send_lag p50/p99={lag.get('p50')}/{lag.get('p99')}us "
      f"gen {g.get('threads')}t {g.get('cpu_percent')}% {g.get('cpu_us_per_msg')}us/msg "
      f"server {s.get('cpu_percent')}% {s.get('cpu_us_per_msg')}us/msg "
      f"rtt p50 {r['latency_us']['round_trip'].get('p50')}/{r['latency_us']['round_trip_uncorrected'].get('p50')}us "
      f"ok={r.get('ok')} problems={r.get('problems')}")
PY
  sleep 0.5
}

{
  echo "date: $(date -u)"
  echo "kernel: $(uname -r)"
  echo "cpus: $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
  echo "memory: $(grep MemTotal /proc/meminfo)"
  echo "open files: $(ulimit -n)"
  echo "load: $(cat /proc/loadavg)"
  echo "pin: $(command -v taskset || echo python3 sched_setaffinity)"
  echo "redis: $($REDIS --version)"
} | tee -a "$out/machine.txt"

closed=(--closed --conns 1000 --room-size 10 --warmup 1s --duration 4s)
servers=(chat-epoll chat-async chat-reactor redis)
for part in $parts; do
  case $part in
    ratio2 | ratio8 | epollout | onecore | onecore0)
      scpus=0-1 gcpus=2-15 n=4 loads="ping chat"
      [ $part = ratio8 ] && scpus=0-7 gcpus=8-15 n=3
      [ $part = epollout ] && servers=(chat-epoll-before chat-epoll chat-epoll-level redis)
      [ $part = onecore ] && scpus=1 n=2 servers=(chat-epoll redis)
      [ $part = onecore0 ] && scpus=0 n=2 servers=(chat-epoll redis) loads=ping
      for round in 1 2 3; do
        for load in $loads; do
          for i in $(seq 0 $((n - 1))); do
            server=${servers[$(((i + round - 1) % n))]}
            run $part $server-$load-$round $server $scpus $gcpus --workload $load "${closed[@]}"
          done
        done
      done ;;
    paced)
      paced=(--room-size 10 --warmup 2s --duration 10s --connect-rate 5000)
      run paced r1-10000x1 chat-epoll 0 2-15 --conns 10000 --rate 1 "${paced[@]}"
      run paced r1-10000x1-t1 chat-epoll 0 2-15 --conns 10000 --rate 1 --threads 1 "${paced[@]}"
      run paced r1-5000x2 chat-epoll 0 2-15 --conns 5000 --rate 2 "${paced[@]}"
      run paced r2-10000x1 chat-epoll 0 2-15 --conns 10000 --rate 1 "${paced[@]}" ;;
    cpu)
      for round in 1 2; do
        run cpu chat-epoll-chat-$round chat-epoll 0 2 --threads 1 --workload chat --closed \
          --conns 1000 --room-size 10 --warmup 1s --duration 5s
      done ;;
  esac
done

# What every lessons/exercises/NN-name/check shares. A check sources this file, then calls
# `handin "$@"`. The convention: lessons/exercises/README.md.
#
#   lessons/exercises/NN-name/check HANDIN      HANDIN: the student's hand-in folder
#
# The folder holds what the exercise asks for: `server` (an executable that starts the student's
# server: it must take `--addr ADDR`, print `listening on ADDR` first, and stop on SIGTERM),
# `program` or `client` (an executable), the reports and command outputs the exercise names, and
# `answers.txt` (`key: value` lines). The course's tools (`loadgen`, the `chat-*` servers) are
# found on PATH.
#
# The verdict is the last line and the exit status:
#   PASS NN-name: why                  exit 0
#   FAIL NN-name: why                  exit 1  (the hand-in falls short)
#   CANNOT GRADE NN-name: why          exit 2  (a tool is missing, or the grading machine was too
#                                               busy for the measurement to mean anything)

set -uo pipefail

EXERCISE=$(basename "$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)")
EXERCISE_DIR=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
HANDIN=""
WORK=$(mktemp -d "${TMPDIR:-/tmp}/grade-$EXERCISE.XXXXXX")
SERVER_PIDS=()

# The verdict goes to the check's own stdout (fd 3), even from inside a command substitution.
exec 3>&1

pass() {
    echo "PASS $EXERCISE: $*" >&3
    exit 0
}

fail() {
    echo "FAIL $EXERCISE: $*" >&3
    exit 1
}

cannot_grade() {
    echo "CANNOT GRADE $EXERCISE: $*" >&3
    exit 2
}

# A step of the grading, for the reader of the output.
step() {
    echo "-- $*"
}

cleanup() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do
        stop_pid "$pid"
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 2' INT TERM

# Stops a process we started, and its direct children (a `server` script that did not `exec`).
stop_pid() {
    local pid=$1 child
    kill -0 "$pid" 2>/dev/null || return 0
    for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
        kill -TERM "$child" 2>/dev/null
    done
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 30); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

# handin "$@": the one argument is the hand-in folder; every tool in $NEEDS must be on PATH.
handin() {
    if [ $# -ne 1 ]; then
        echo "usage: $0 HANDIN_FOLDER"
        echo "(what the folder holds: lessons/exercises/README.md and the exercise's README.md)"
        exit 2
    fi
    [ -d "$1" ] || cannot_grade "$1 is not a folder"
    HANDIN=$(cd "$1" && pwd)
    local tool
    for tool in ${NEEDS:-}; do
        command -v "$tool" >/dev/null || cannot_grade "\`$tool\` is not on PATH (the course's tools: export PATH=\"\$PWD/target/release:\$PATH\")"
    done
}

# need FILE WHAT: the hand-in must contain FILE (WHAT says what it is, for the FAIL message).
need() {
    [ -e "$HANDIN/$1" ] || fail "the hand-in has no \`$1\` ($2)"
}

# need_exec FILE WHAT: like `need`, and executable.
need_exec() {
    need "$1" "$2"
    [ -x "$HANDIN/$1" ] || fail "\`$1\` is not executable (chmod +x it)"
}

# answer KEY: sets ANSWER to the value of the `KEY: value` line of answers.txt (fails when
# there is none).
answer() {
    need answers.txt "the answers, one \`key: value\` per line"
    ANSWER=$(sed -n "s/^$1:[[:space:]]*//p" "$HANDIN/answers.txt" | head -n 1 | sed 's/[[:space:]]*$//')
    [ -n "$ANSWER" ] || fail "answers.txt has no \`$1:\` line"
}

# number KEY: `answer KEY`, which must be a number.
number() {
    answer "$1"
    [[ "$ANSWER" =~ ^-?[0-9]+([.][0-9]+)?$ ]] || fail "answers.txt: \`$1: $ANSWER\` is not a number"
}

# near A B TOLERANCE: whether |A - B| <= TOLERANCE (decimals welcome).
near() {
    awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }'
}

# holds EXPRESSION: an awk comparison of numbers, e.g. holds "$x >= 2 * $y".
holds() {
    awk "BEGIN { exit !($1) }"
}

# report FILE WHAT: sets REPORT to the path of the hand-in's `loadgen run --json` report FILE,
# which must be one (schema v2).
report() {
    need "$1" "$2: the JSON of \`loadgen run --json $1\`"
    local schema
    schema=$(jq -r '.schema // empty' "$HANDIN/$1" 2>/dev/null) || fail "\`$1\` is not JSON"
    [ "$schema" = "c10k-lab/loadgen-run/v2" ] ||
        fail "\`$1\` is not a loadgen run report of schema c10k-lab/loadgen-run/v2 (it says \`$schema\`): rerun it with this loadgen"
    REPORT="$HANDIN/$1"
}

# field FILE FILTER: a jq filter on a report (the raw value).
field() {
    jq -r "$2" "$1"
}

# expect_report FILE FILTER WHY: the report must satisfy the jq filter, or the check fails with WHY.
expect_report() {
    jq -e "$2" "$1" >/dev/null || fail "$(basename "$1"): $3"
}

# start_server [FLAGS...]: starts the hand-in's `server` with `--addr 127.0.0.1:0 FLAGS`, waits
# for its `listening on ADDR` line and sets ADDR, PORT and SERVER_PID. It is stopped at exit.
start_server() {
    need_exec server "an executable that starts your server: it takes --addr and prints \`listening on ADDR\`"
    launch fail "$HANDIN/server" --addr 127.0.0.1:0 "$@"
}

# start_course_server COMMAND [ARGS...]: like start_server, for one of the course's servers the
# check needs (a server that will not start is the grading machine's problem, not the hand-in's).
start_course_server() {
    launch cannot_grade "$@"
}

# launch VERDICT COMMAND...: starts COMMAND (stdout in $SERVER_OUT, stderr in $SERVER_ERR), waits up
# to 20 s for its first line, `listening on ADDR`; calls VERDICT with the reason if it does not come.
launch() {
    local verdict=$1
    shift
    local n=${#SERVER_PIDS[@]}
    SERVER_OUT="$WORK/server-$n.out"
    SERVER_ERR="$WORK/server-$n.err"
    "$@" >"$SERVER_OUT" 2>"$SERVER_ERR" &
    SERVER_PID=$!
    SERVER_PIDS+=("$SERVER_PID")
    local line=""
    for _ in $(seq 1 200); do
        line=$(head -n 1 "$SERVER_OUT" 2>/dev/null)
        case "$line" in
            "listening on "*) break ;;
        esac
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            "$verdict" "\`$*\` exited before printing \`listening on ADDR\`: $(tail -n 3 "$SERVER_ERR" | tr '\n' ' ')"
        fi
        sleep 0.1
    done
    case "$line" in
        "listening on "*) ;;
        *) "$verdict" "\`$*\` printed no \`listening on ADDR\` line within 20 s (its first line: \`$line\`)" ;;
    esac
    ADDR=${line#listening on }
    ADDR=${ADDR%$'\r'}
    PORT=${ADDR##*:}
    step "started: $* (pid $SERVER_PID, $ADDR)"
}

# stop_server: stops the last server started (SIGTERM, then SIGKILL after 3 s).
stop_server() {
    stop_pid "$SERVER_PID"
}

# loadgen_check ARGS...: runs `loadgen check --addr $ADDR ARGS`, keeps its output in
# $WORK/check.out and prints its summary line; returns its exit status.
loadgen_check() {
    loadgen check --addr "$ADDR" "$@" >"$WORK/check.out" 2>&1
    local status=$?
    grep -E '^(FAIL|SKIP) ' "$WORK/check.out" | head -n 20
    tail -n 1 "$WORK/check.out"
    return $status
}

# first_failure: the first FAIL line of the last loadgen_check.
first_failure() {
    grep -m 1 '^FAIL ' "$WORK/check.out" || tail -n 1 "$WORK/check.out"
}

# generator_verdict FILE EXPECTED: for a correctness run, whose report counts what was lost,
# duplicated and reordered among the messages really sent. A generator that could not keep its
# schedule (a busy grading machine) sends fewer, late: the verdict stands, on fewer messages. Only
# when it sent less than 90% of the EXPECTED messages did the run not stress the server as asked:
# then the verdict is the generator's (CANNOT GRADE), not the hand-in's.
generator_verdict() {
    local sent
    sent=$(jq -r '.messages.sent_total' "$1")
    if ! holds "$sent >= 0.9 * $2"; then
        cannot_grade "the load generator sent only $sent of the $2 messages (it fell behind: the grading machine is too busy for this run); run the check again on a quieter machine"
    fi
}

# chat_smoke: the server speaks the chat protocol at all (a `join` is answered `welcome`). It
# fails fast, before the long runs, against a server that answers nothing.
chat_smoke() {
    step "join: is it a chat server?"
    local got
    got=$(printf '{"type":"join","nickname":"smoke"}\n{"type":"quit"}\n' | timeout 5 nc -N 127.0.0.1 "$PORT")
    case "$got" in
        *'"type":"welcome"'*) ;;
        *) fail "a \`join\` got no \`welcome\` within 5 s (got \`${got:0:120}\`)" ;;
    esac
}

# time_a_ping SILENT: the "predict the wait" experiment on the server started last. SILENT clients
# connect and say nothing; then one more sends a `ping`. Sets WAITED to the seconds (one decimal)
# until its `pong` came; fails, as the grading machine's problem, when no `pong` came within 60 s.
time_a_ping() {
    local silent=() fd start reply
    for _ in $(seq 1 "$1"); do
        exec {fd}<>"/dev/tcp/127.0.0.1/$PORT" || cannot_grade "could not connect a silent client"
        silent+=("$fd")
    done
    sleep 0.5
    start=$(date +%s.%N)
    reply=$(printf '{"type":"ping","id":"timed"}\n' | timeout 60 nc 127.0.0.1 "$PORT" | head -n 1)
    WAITED=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
    for fd in "${silent[@]}"; do exec {fd}>&-; done
    case "$reply" in
        *'"type":"pong"'*) ;;
        *) cannot_grade "the timed client got no \`pong\` within 60 s (got \`${reply:0:120}\`)" ;;
    esac
}

# idle_report FILE CONNS: FILE must be the report of `loadgen run --workload idle --conns CONNS
# --server-pid PID` with every connection made; sets REPORT and PER_CONN_KIB (the server's
# resident memory per connection, in KiB, as the report's `memory` row prints it).
idle_report() {
    report "$1" "the idle run of $2 connections"
    expect_report "$REPORT" ".config.workload == \"idle\" and .config.conns == $2" \
        "not a \`loadgen run --workload idle --conns $2\` report ($(jq -c '.config | {workload, conns}' "$REPORT"))"
    expect_report "$REPORT" ".connections.connected == $2" \
        "only $(field "$REPORT" .connections.connected) of $2 connections were made: the figures are not those of $2"
    expect_report "$REPORT" '.server.rss_per_conn_bytes != null' \
        "the report has no server memory: run it with --server-pid PID"
    PER_CONN_KIB=$(jq -r '.server.rss_per_conn_bytes / 1024 * 10 | round / 10' "$REPORT")
}

# agrees KEY VALUE: the number `KEY:` of answers.txt must be VALUE, within 5% and the 0.1 that
# rounding to one decimal costs (what the student read from the report must be what it says).
agrees() {
    number "$1"
    holds "($ANSWER - $2) <= 0.05 * $2 + 0.1 && ($2 - $ANSWER) <= 0.05 * $2 + 0.1" ||
        fail "answers.txt: \`$1: $ANSWER\`, but the report says $2"
}

# run_report FILE WHAT WORKLOAD: FILE must be the report of a `loadgen run` of WORKLOAD with every
# connection made and the server's CPU measured (`--server-pid`); sets REPORT. A run whose
# generator fell behind on a busy machine still counts: its figures are those of what was sent.
run_report() {
    report "$1" "$2"
    expect_report "$REPORT" ".config.workload == \"$3\"" \
        "not a $3 workload ($(field "$REPORT" .config.workload))"
    expect_report "$REPORT" '.connections.connected == .config.conns and .messages.sent_total > 0' \
        "$(field "$REPORT" .connections.connected) of $(field "$REPORT" .config.conns) connections made, $(field "$REPORT" .messages.sent_total) messages sent: run it again"
    expect_report "$REPORT" '.server.cpu_percent != null' \
        "the report has no server CPU: run it with --server-pid PID"
}

# chat_report FILE WHAT: `run_report` of the chat workload.
chat_report() {
    run_report "$1" "$2" chat
}

# compare_runs WORKLOAD FILTER NAME...: the hand-in's NAME.json, one report per configuration
# compared, each a `run_report` of WORKLOAD satisfying the jq FILTER (the run the exercise asks
# for), all with the same `config` but the address; the answers `msg_per_sec_NAME` and
# `server_cpu_percent_NAME` are what they say, and `winner:` names the one with the most
# acknowledged msg/s. Sets BEST to that NAME and BEST_QPS to its msg/s.
compare_runs() {
    local workload=$1 filter=$2 name first="" best_qps=-1
    shift 2
    for name in "$@"; do
        run_report "$name.json" "the run against $name" "$workload"
        expect_report "$REPORT" "$filter" \
            "not the run the exercise asks for ($(jq -c '.config | {workload, mode, conns, message_size, duration_s}' "$REPORT"))"
        if [ -z "$first" ]; then
            first=$REPORT
        else
            [ "$(jq -c '.config | del(.addr, .addrs)' "$first")" = "$(jq -c '.config | del(.addr, .addrs)' "$REPORT")" ] ||
                fail "$name.json was run with other settings than $(basename "$first"): compare the servers under the same load"
        fi
        local qps
        qps=$(field "$REPORT" .messages.qps)
        agrees "msg_per_sec_$name" "$qps"
        agrees "server_cpu_percent_$name" "$(field "$REPORT" .server.cpu_percent)"
        if holds "$qps > $best_qps"; then
            best_qps=$qps
            BEST=$name
        fi
    done
    BEST_QPS=$best_qps
    answer winner
    [ "$ANSWER" = "$BEST" ] ||
        fail "\`winner: $ANSWER\`, but the reports say $BEST acknowledged the most messages ($BEST_QPS msg/s)"
}

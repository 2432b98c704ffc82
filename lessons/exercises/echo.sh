# The echo tests exercises 6 (select) and 30 (epoll) share: sourced by their checks, after
# grade.sh and `start_server`. Each stage fails fast, with the reason; the cheap ones come first.

# echo_one_line: one line, and back.
echo_one_line() {
    step "one line: hello"
    local got
    got=$(printf 'hello\n' | timeout 5 nc -N 127.0.0.1 "$PORT")
    [ "$got" = "hello" ] || fail "sent \`hello\`, got back \`${got:0:80}\` (expected the same line, then the close when the client hangs up)"
}

# echo_clients N LINES: N clients at once, each sending LINES lines in one write and reading
# its own back, byte for byte.
echo_clients() {
    local clients=$1 lines=$2 i
    step "$clients clients at once, $lines lines each, every line back to its sender"
    mkdir -p "$WORK/echo"
    for i in $(seq 1 "$clients"); do
        seq -f "client $i line %g" 1 "$lines" >"$WORK/echo/in.$i"
    done
    local pids=()
    for i in $(seq 1 "$clients"); do
        timeout 30 nc -N 127.0.0.1 "$PORT" <"$WORK/echo/in.$i" >"$WORK/echo/out.$i" 2>/dev/null &
        pids+=($!)
    done
    wait "${pids[@]}"
    for i in $(seq 1 "$clients"); do
        cmp -s "$WORK/echo/in.$i" "$WORK/echo/out.$i" ||
            fail "client $i sent $lines lines and got back $(wc -l <"$WORK/echo/out.$i") of them ($(diff "$WORK/echo/in.$i" "$WORK/echo/out.$i" | head -n 2 | tr '\n' ' '))"
    done
}

# echo_stream MB: one client streams MB megabytes through the server while reading them back:
# the server's writes are partial whenever the client is slower, and nothing may be lost.
echo_stream() {
    step "one client streams $1 MB through the server (partial writes)"
    head -c $(($1 * 1024 * 1024)) /dev/urandom | base64 >"$WORK/stream.in"
    timeout 60 nc -N 127.0.0.1 "$PORT" <"$WORK/stream.in" >"$WORK/stream.out" 2>/dev/null
    cmp -s "$WORK/stream.in" "$WORK/stream.out" ||
        fail "streamed $(wc -c <"$WORK/stream.in") bytes, got back $(wc -c <"$WORK/stream.out"): partial writes must keep what the socket refused and send it later, in order"
}

# echo_many N: N connections at once (more than FD_SETSIZE when N > 1024); the server must keep
# serving its first clients, and serve a newcomer once they are gone.
echo_many() {
    local n=$1 i fd first
    step "$n connections at once"
    ulimit -n $((n + 256)) 2>/dev/null || cannot_grade "this shell may not open $n sockets (ulimit -n $((n + 256)) failed)"
    local fds=()
    for i in $(seq 1 "$n"); do
        exec {fd}<>"/dev/tcp/127.0.0.1/$PORT" || fail "connection $i of $n could not be opened"
        fds+=("$fd")
    done
    first=${fds[0]}
    printf 'still there\n' >&"$first"
    local reply=""
    read -r -t 5 reply <&"$first"
    [ "$reply" = "still there" ] ||
        fail "with $n connections open, the first client got \`$reply\` instead of its echo (did the server crash, or stop serving?)"
    kill -0 "$SERVER_PID" 2>/dev/null || fail "the server died with $n connections open"
    if [ "${ECHO_ALL_CONNECTIONS:-}" = 1 ]; then
        local last=${fds[$((n - 1))]}
        printf 'last one\n' >&"$last"
        reply=""
        read -r -t 5 reply <&"$last"
        [ "$reply" = "last one" ] ||
            fail "connection $n of $n got \`$reply\` instead of its echo (epoll has no FD_SETSIZE limit)"
    fi
    for fd in "${fds[@]}"; do
        exec {fd}>&-
    done
    sleep 0.5
    echo_one_line
}

# echo_loadgen: the load generator's echo workload (open and closed loop) and its checker.
echo_loadgen() {
    step "loadgen check --profile echo"
    loadgen_check --profile echo || fail "loadgen check --profile echo: $(first_failure)"
    local mode
    for mode in "--rate 100" "--closed"; do
        step "loadgen run --workload echo --conns 100 $mode --duration 5s"
        # shellcheck disable=SC2086 # $mode is two words on purpose
        loadgen run --addr "$ADDR" --workload echo --conns 100 $mode --duration 5s --warmup 0s \
            --max-send-lag 1s --json "$WORK/run.json" >"$WORK/run.out" 2>&1
        [ -s "$WORK/run.json" ] || fail "loadgen run wrote no report: $(tail -n 3 "$WORK/run.out" | tr '\n' ' ')"
        head -n 1 "$WORK/run.out"
        [ "$mode" = "--closed" ] || generator_verdict "$WORK/run.json" 50000
        expect_report "$WORK/run.json" '.connections.connected == 100 and .connections.dropped == 0' \
            "not all 100 connections were served to the end ($(jq -c .connections.failures "$WORK/run.json"))"
        expect_report "$WORK/run.json" '.messages.lost == 0 and .messages.duplicated == 0 and .messages.out_of_order == 0' \
            "lines were lost, duplicated or reordered ($(jq -c '.messages | {lost, duplicated, out_of_order}' "$WORK/run.json"))"
    done
}

# Sourced by the cpu-*.sh tools: `start_server SERVER` starts the server binary SERVER on a free
# loopback port, without idle timeout, its output in the file $OUT; it sets SP (its pid) and
# ADDR (the address it printed in `listening on ADDR`, waiting up to 5 s for it). With
# C10K_SERVER_CPUS set (a CPU list as `taskset -c` takes it, the variable `cargo bench --bench
# redis_ratio` reads), the server runs pinned to those CPUs, every thread of it.
start_server() {
  OUT=$(mktemp)
  local pin=()
  [ -n "${C10K_SERVER_CPUS:-}" ] && pin=(taskset -c "$C10K_SERVER_CPUS")
  "${pin[@]}" $1 --addr 127.0.0.1:0 --idle-timeout 0 > $OUT 2>&1 &
  SP=$!
  for i in $(seq 50); do grep -q listening $OUT && break; sleep 0.1; done
  ADDR=$(grep -o 'listening on [0-9.:]*' $OUT | cut -d' ' -f3)
}

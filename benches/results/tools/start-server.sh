# Sourced by the cpu-*.sh tools: `start_server SERVER` starts the server binary SERVER on a free
# loopback port, without idle timeout, its output in the file $OUT; it sets SP (its pid) and
# ADDR (the address it printed in `listening on ADDR`, waiting up to 5 s for it).
start_server() {
  OUT=$(mktemp)
  $1 --addr 127.0.0.1:0 --idle-timeout 0 > $OUT 2>&1 &
  SP=$!
  for i in $(seq 50); do grep -q listening $OUT && break; sleep 0.1; done
  ADDR=$(grep -o 'listening on [0-9.:]*' $OUT | cut -d' ' -f3)
}

# Sourced after common.sh by the tests that run expert servers on loopback. Every process put in
# PIDS is killed when the test ends, however it ends.
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# serve NAME ARGS...: `moe serve-experts SERVE_FLAGS... ARGS...` in the background (log WORK/NAME.log,
# pid PID_NAME); waits at most 20 s for its ready line.
SERVE_FLAGS=()
serve() {
  local name=$1; shift
  "$MOE" serve-experts "${SERVE_FLAGS[@]}" "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  eval "PID_$name=$!"
  for _ in $(seq 200); do
    grep -qs "^serving" "$WORK/$name.log" && return 0
    sleep 0.1
  done
  cat "$WORK/$name.log"; fail "server $name did not start"
}
# key_of NAME: the key id in server NAME's serving line.
key_of() { sed -n 's/.*; key \([0-9a-f]*\)$/\1/p' "$WORK/$1.log"; }

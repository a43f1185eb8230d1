# Sourced by the scripts that run `moe serve` on 127.0.0.1: a work directory and a server, both
# gone when the script exits however it exits. Needs MOE (the binary) set.
WORK=$(mktemp -d)
SERVER=""
cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# start_server MODEL ARGS...: moe serve --model MODEL on a free port with ARGS, its stderr in
# $WORK/serve.log; waits up to 120 s for it to listen, then sets SERVER (the pid) and PORT.
start_server() {
  local model=$1
  shift
  rm -f "$WORK/port"
  "$MOE" serve --model "$model" --listen 127.0.0.1:0 --port-file "$WORK/port" "$@" 2>"$WORK/serve.log" &
  SERVER=$!
  for _ in $(seq 600); do [ -s "$WORK/port" ] && break; kill -0 "$SERVER" 2>/dev/null || break; sleep 0.2; done
  [ -s "$WORK/port" ] || { cat "$WORK/serve.log" >&2; echo "$(basename "$0"): the server did not start" >&2; exit 1; }
  PORT=$(cat "$WORK/port")
}

# stop_server: SIGTERM, then waits for it.
stop_server() {
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  SERVER=""
}

# Sourced by the CLI tests: $1 is the moe binary, $2 the source tree.
set -euo pipefail
# A command that ends the test through set -e names itself (many hide their stderr on purpose).
trap 'echo "FAIL: ${BASH_SOURCE[0]##*/} line $LINENO exited $?: $BASH_COMMAND" >&2' ERR
MOE=$1
SRC=$2
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# The command fails with exactly one line on stderr, which matches PATTERN (grep).
expect_error() {  # expect_error PATTERN CMD...
  local pat=$1; shift
  if "$@" >"$WORK/out" 2>"$WORK/err"; then fail "succeeded: $*"; fi
  grep -q -e "$pat" "$WORK/err" || { cat "$WORK/err"; fail "expected '$pat' for: $*"; }
  [ "$(wc -l <"$WORK/err")" -eq 1 ] || { cat "$WORK/err"; fail "more than one line of error for: $*"; }
}
# json_line OUT CMD...: runs CMD and keeps the last line of its stdout (the --json summary) in OUT.
# A failing CMD fails the test showing its stderr, rather than ending it silently through set -e.
json_line() {
  local out=$1; shift
  "$@" >"$out.all" 2>"$out.err" || { local rc=$?; cat "$out.err" >&2; fail "exit $rc from: $*"; }
  tail -n 1 "$out.all" >"$out"
}
# try_json_line OUT CMD...: as json_line, but a failing CMD only returns its status, for the loops
# that wait for a swarm to settle (json_ok after the loop); a sanitizer report fails the test at once.
try_json_line() {
  local out=$1; shift
  local rc=0
  "$@" >"$out.all" 2>"$out.err" || rc=$?
  if grep -q "Sanitizer" "$out.err"; then cat "$out.err" >&2; fail "sanitizer report from: $*"; fi
  tail -n 1 "$out.all" >"$out"
  [ $rc -eq 0 ] || echo "exit $rc (tried again): $(head -c 300 "$out.err")"
  return $rc
}
# json_ok OUT: OUT (from try_json_line) holds a JSON summary, else the test fails showing the stderr.
json_ok() {
  python3 -c 'import json,sys; json.loads(open(sys.argv[1]).read())' "$1" 2>/dev/null \
    || { cat "$1.err" >&2; fail "no JSON summary in $1"; }
}
# A small multilingual-ish corpus made on the fly.
make_text() {
  python3 - "$1" <<'PY'
import sys, random
random.seed(0)
words = "the quick brown fox jumps over a lazy dog der schnelle braune Fuchs el zorro marrón il volpe".split()
with open(sys.argv[1], "w") as f:
    for i in range(600):
        f.write(" ".join(random.choice(words) for _ in range(8)) + ".\n")
PY
}

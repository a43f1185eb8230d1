# Sourced by the CLI tests: $1 is the moe binary, $2 the source tree.
set -euo pipefail
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

# Sourced by the scripts that take --options: their error and help lines, so each names itself.
# die MESSAGE: "<script>: MESSAGE" on stderr, exit 2.
die() { echo "$(basename "$0"): $*" >&2; exit 2; }
# usage: the script's header comment (from line 2 down to `set -euo`), for -h/--help.
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0; }
# unknown_argument ARG: the error for an option the script does not take.
unknown_argument() { die "unknown argument $1 (see --help)"; }
# positive_integers WHAT VALUE...: each VALUE must be a positive integer, else "WHAT must be ...".
positive_integers() {
  local what=$1 v
  shift
  for v in "$@"; do [[ $v =~ ^[1-9][0-9]*$ ]] || die "$what must be positive integers, got '$v'"; done
}
# need_moe: the binary in $MOE must exist.
need_moe() { [ -x "$MOE" ] || die "no moe binary at $MOE (set MOE=...)"; }

#!/usr/bin/env bash
# Crash safety: `moe train` saving every step, SIGKILLed 5 times (mostly while a checkpoint is being
# written); each time the directory loads, evaluates to the fully written step and resumes with the
# uninterrupted run's losses (scripts/crash_test.py; 100 kills: docs/reliability.md). ~20 s.
source "$(dirname "$0")/lib/common.sh"
SEED=2 timeout 300 /usr/bin/python3 "$SRC/scripts/crash_test.py" "$MOE" "$WORK/crash" 5 | tail -n 1

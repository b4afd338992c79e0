#!/usr/bin/env bash
# Sets everything up on a fresh machine and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
# OpenMP threads: the test machines have 2 cores; oversubscription only slows things.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}"
ctest --test-dir build --output-on-failure -j 2
# The server's request parser under libFuzzer + ASan/UBSan for a bounded time
# (LONGCTX_FUZZ_SECONDS, default 60), in its own clang build (build-fuzz/).
bash scripts/fuzz.sh
# The server under 50 concurrent clients for 60 s: no error, KV back to idle, RSS stable.
bash scripts/load_test.sh build/src/longctx

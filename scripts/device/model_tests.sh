#!/usr/bin/env bash
# The GPU model on a machine with an NVIDIA GPU: all GPU tests (kernels and the model vs
# the transformers goldens and the CPU backend), compute-sanitizer memcheck on a few model
# steps, then `longctx bench latency` and its transformers peer on the same GPU.
# Nothing is built here: the binaries come prebuilt from a machine with nvcc, with their
# non-CUDA shared libraries beside them (scripts/device/bundle_libs.sh):
#   cmake -S . -B build-cuda5 -G Ninja -DLONGCTX_CUDA=ON -DLONGCTX_NATIVE=OFF
#   ninja -C build-cuda5 longctx_cuda_tests longctx
#   scripts/device/bundle_libs.sh build-cuda5/devlibs build-cuda5/tests/longctx_cuda_tests build-cuda5/src/longctx
# Through the device tool (docs/cuda.md): `OUT=$OUT bash scripts/device/model_tests.sh [all|tests|bench]`
# with carry = build-cuda5/tests/longctx_cuda_tests, build-cuda5/src/longctx, build-cuda5/devlibs.
# Run from the repo root (the tests read tests/data/hf). Results in $OUT: device.txt,
# model_tests.log, model_tests.json, model_memcheck.log, latency_ours.json,
# latency_peer.json, latency.log. Exit status: non-zero if any step failed.
set -uo pipefail
MODE=${1:-all}
OUT=${OUT:-/tmp/longctx-cuda-out}
BIN=${BIN:-build-cuda5}
TESTS=$BIN/tests/longctx_cuda_tests
LONGCTX=$BIN/src/longctx
mkdir -p "$OUT"
status=0

# Our binaries see the carried libraries; python3 (the peer) keeps the image's own.
LIBS=$PWD/$BIN/devlibs:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# shellcheck source=scripts/device/find_cuda_libs.sh
. "$(dirname "${BASH_SOURCE[0]}")/find_cuda_libs.sh"
find_cuda_libs "$TESTS" "$LONGCTX" || status=1

{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem --format=csv
  git rev-parse HEAD 2>/dev/null || true
} 2>&1 | tee "$OUT/device.txt"

if [ "$MODE" = all ] || [ "$MODE" = tests ]; then
  echo "== tests"
  LD_LIBRARY_PATH=$LIBS timeout 300 "$TESTS" --gtest_output=json:"$OUT/model_tests.json" >"$OUT/model_tests.log" 2>&1
  rc=$?
  grep -E "^\[  (FAILED|PASSED) |FAILED|Failure|\[ gpu \]|seed" "$OUT/model_tests.log" | head -80
  [ $rc -eq 0 ] || { echo "tests FAILED ($rc)"; status=1; }
  echo "== memcheck (model steps: padded graph replay, a mixed prefill + decode batch, batch-1 decode; skinny_linear)"
  CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  LD_LIBRARY_PATH=$LIBS timeout 240 "$CS" --tool memcheck --error-exitcode 3 "$TESTS" \
    --gtest_filter='CudaGraphs.PaddedBatchReplayMatchesEager:CudaDenseModel.BatchOfPrefillAndDecodeMatchesSeparateRuns:*BatchOneGreedyDecode*/2:*SkinnyLinear*' \
    >"$OUT/model_memcheck.log" 2>&1
  rc=$?
  tail -3 "$OUT/model_memcheck.log"
  [ $rc -eq 0 ] || { echo "memcheck FAILED ($rc)"; status=1; }
fi

if [ "$MODE" = all ] || [ "$MODE" = bench ]; then
  echo "== bench latency (ours, then the transformers peer)"
  PROMPTS=${PROMPTS:-4096,16384,32768,131072}
  LD_LIBRARY_PATH=$LIBS timeout 300 "$LONGCTX" bench latency --prompt-lens "$PROMPTS" --json-out "$OUT/latency_ours.json" \
    >/dev/null 2>"$OUT/latency.log" || status=1
  cat "$OUT/latency.log"
  PYTHONUNBUFFERED=1 timeout 240 python3 bench/cuda/peer_latency.py "$PROMPTS" >"$OUT/latency_peer.json" \
    2>>"$OUT/latency.log" || status=1
  tail -15 "$OUT/latency.log"
fi
exit $status

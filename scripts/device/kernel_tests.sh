#!/usr/bin/env bash
# GPU kernel tests, memcheck and the kernel benchmark, on a machine with an NVIDIA GPU.
# Nothing is built here: the binaries come prebuilt (a machine with nvcc, no GPU needed):
#   cmake -S . -B build-cuda -G Ninja -DLONGCTX_CUDA=ON
#   ninja -C build-cuda longctx_cuda_tests longctx_bench_kernels
# Through the device tool (docs/cuda.md): run `scripts/device/kernel_tests.sh [all|tests|bench]`
# with carry = build-cuda/tests/longctx_cuda_tests, build-cuda/bench/cuda/longctx_bench_kernels.
# Logs go to $OUT (default /tmp/longctx-cuda-out): device.txt, tests.log, tests.json,
# memcheck.log, bench_ours.jsonl, bench_peer.jsonl. Exit status: non-zero if any step failed.
set -uo pipefail
MODE=${1:-all}
OUT=${OUT:-/tmp/longctx-cuda-out}
BIN=${BIN:-build-cuda}
TESTS=$BIN/tests/longctx_cuda_tests
BENCH=$BIN/bench/cuda/longctx_bench_kernels
mkdir -p "$OUT"
status=0

# libcudart/libcublasLt: the toolkit's, else wherever the image keeps them (PyTorch's wheels).
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/usr/local/cuda/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
for b in "$TESTS" "$BENCH"; do
  if [ -x "$b" ] && ldd "$b" | grep -q "not found"; then
    lib=$(find / -name 'libcublasLt.so.13*' -not -path '/proc/*' 2>/dev/null | head -1)
    [ -n "$lib" ] && export LD_LIBRARY_PATH=$(dirname "$lib"):$LD_LIBRARY_PATH
    lib=$(find / -name 'libcudart.so.13*' -not -path '/proc/*' 2>/dev/null | head -1)
    [ -n "$lib" ] && export LD_LIBRARY_PATH=$(dirname "$lib"):$LD_LIBRARY_PATH
    ldd "$b" | grep "not found" && status=1
  fi
done

{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem --format=csv
  nvidia-smi -L
} 2>&1 | tee "$OUT/device.txt"

if [ "$MODE" = all ] || [ "$MODE" = tests ]; then
  echo "== tests"
  timeout 300 "$TESTS" --gtest_output=json:"$OUT/tests.json" 2>&1 | tee "$OUT/tests.log" | grep -E "^\[  (FAILED|PASSED) |OK \]|FAILED|Failure|error|seed" | head -120
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "tests FAILED"; status=1; }
  echo "== memcheck (filtered: small shapes of every kernel)"
  CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  FILTER='LinearTest*/0:RmsNorm.FusedAdd:SiluMul.*:Embedding.*:Argmax.*:RopeKvTest*/1:RopeKvTest*/3:*PrefillMhaD64Block5*:*PrefixChunkD64Split*:*DecodeForcedSplit64*:*MixedStep*:MergeAttentionStates.*'
  timeout 300 "$CS" --tool memcheck --error-exitcode 3 "$TESTS" --gtest_filter="$FILTER" >"$OUT/memcheck.log" 2>&1
  rc=$?
  tail -5 "$OUT/memcheck.log"
  [ $rc -eq 0 ] || { echo "memcheck FAILED ($rc)"; status=1; }
fi

if [ "$MODE" = all ] || [ "$MODE" = bench ]; then
  echo "== bench"
  timeout 240 "$BENCH" | tee "$OUT/bench_ours.jsonl" || status=1
  PYTHONUNBUFFERED=1 timeout 240 python3 bench/cuda/peer_attention.py | tee "$OUT/bench_peer.jsonl" || status=1
fi
exit $status

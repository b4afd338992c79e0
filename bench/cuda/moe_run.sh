#!/usr/bin/env bash
# MoE grouped expert GEMMs on a machine with an NVIDIA GPU: the grouped-GEMM tests (and
# memcheck over them), then longctx_bench_moe_grouped and its PyTorch peer in the same
# session. Nothing is built here; the binaries come prebuilt (docs/cuda.md):
#   cmake -S . -B build-cuda -G Ninja -DLONGCTX_CUDA=ON
#   ninja -C build-cuda longctx_cuda_tests longctx_bench_moe_grouped
# BIN (default build-cuda) names the build folder. Logs in $OUT: device.txt, moe_tests.log,
# moe_memcheck.log, moe_ours.jsonl, moe_peer.jsonl. Non-zero exit if any step failed.
set -uo pipefail
OUT=${OUT:-/tmp/longctx-moe-out}
BIN=${BIN:-build-cuda}
TESTS=$BIN/tests/longctx_cuda_tests
BENCH=$BIN/bench/cuda/longctx_bench_moe_grouped
mkdir -p "$OUT"
status=0
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/usr/local/cuda/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
for b in "$TESTS" "$BENCH"; do
  if [ -x "$b" ] && ldd "$b" | grep -q "not found"; then
    for lib in libcublas.so.13 libcublasLt.so.13 libcudart.so.13; do
      f=$(find / -name "$lib*" -not -path '/proc/*' 2>/dev/null | head -1)
      [ -n "$f" ] && export LD_LIBRARY_PATH=$(dirname "$f"):$LD_LIBRARY_PATH
    done
    ldd "$b" | grep "not found" && status=1
  fi
done
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1 | tee "$OUT/device.txt"

echo "== grouped GEMM tests"
timeout 120 "$TESTS" --gtest_filter='*GroupedGemm*' 2>&1 | tee "$OUT/moe_tests.log" | grep -E "OK \]|FAILED|Failure|seed|PASSED" | head -40
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "tests FAILED"; status=1; }
CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
timeout 120 "$CS" --tool memcheck --error-exitcode 3 "$TESTS" --gtest_filter='*GroupedGemm*' >"$OUT/moe_memcheck.log" 2>&1
rc=$?
tail -3 "$OUT/moe_memcheck.log"
[ $rc -eq 0 ] || { echo "memcheck FAILED ($rc)"; status=1; }

echo "== bench"
timeout 150 "$BENCH" >"$OUT/moe_ours.jsonl" || { echo "bench FAILED"; status=1; }
grep -v moe_routing "$OUT/moe_ours.jsonl"
PYTHONUNBUFFERED=1 timeout 150 python3 bench/cuda/moe_peer.py "$OUT/moe_ours.jsonl" | tee "$OUT/moe_peer.jsonl" || status=1
exit $status

#!/usr/bin/env bash
# The Hopper prefill kernel on a GPU machine: its SASS (HGMMA count), its tests and the
# attention tests with it on and off, compute-sanitizer memcheck and racecheck on small
# shapes, then the kernel benchmark with it on and off (LONGCTX_ATTN_SM90=0: the portable
# kernel) in the same session. Prebuilt binaries (docs/cuda.md, "Hopper prefill kernel"):
#   ninja -C build-wgmma longctx_cuda_tests longctx_bench_kernels
#   run(command="OUT=$OUT bash scripts/device/prefill_sm90.sh [all|tests|san|bench]",
#       carry=["build-wgmma/tests/longctx_cuda_tests", "build-wgmma/bench/cuda/longctx_bench_kernels",
#              "build-wgmma/devlibs"])
# SM90_CPASYNC=1 also times the Hopper kernel with its K/V loads on cp.async (LONGCTX_ATTN_SM90_TMA=0),
# SM90_STAGES3=1 with 3 K/V stages, SM90_REPEAT=1 the default again (the run-to-run spread).
# Logs in $OUT: device.txt, sass.txt, tests.log, tests_off.log, memcheck.log, racecheck.log,
# bench_sm90.jsonl, bench_portable.jsonl (+ bench_sm90_<variant>.jsonl); the last lines print
# each file's prefill TFLOP/s by L.
set -uo pipefail
MODE=${1:-all}
OUT=${OUT:-/tmp/longctx-sm90-out}
BIN=${BIN:-build-wgmma}
TESTS=$BIN/tests/longctx_cuda_tests
BENCH=$BIN/bench/cuda/longctx_bench_kernels
mkdir -p "$OUT"
status=0
# The test binary links the GPU model's libraries: carry $BIN/devlibs (scripts/device/bundle_libs.sh).
export LD_LIBRARY_PATH=$BIN/devlibs:/usr/local/cuda/lib64:/usr/local/cuda/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
for b in "$TESTS" "$BENCH"; do
  if [ -x "$b" ] && ldd "$b" | grep -q "not found"; then
    for l in 'libcublasLt.so.13*' 'libcudart.so.13*'; do
      lib=$(find / -name "$l" -not -path '/proc/*' 2>/dev/null | head -1)
      [ -n "$lib" ] && export LD_LIBRARY_PATH=$(dirname "$lib"):$LD_LIBRARY_PATH
    done
  fi
done
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv 2>&1 | tee "$OUT/device.txt"

# The kernel's SASS: HGMMA must be there (not HMMA), no local memory.
CUOBJDUMP=$(command -v cuobjdump || echo /usr/local/cuda/bin/cuobjdump)
"$CUOBJDUMP" -sass "$TESTS" 2>/dev/null |
  awk '/Function : .*paged_prefill_sm90/{f=1} /Function : /&&!/paged_prefill_sm90/{f=0} f' >"$OUT/sass.txt"
echo "sass: $(wc -l <"$OUT/sass.txt") lines, HGMMA $(grep -c HGMMA "$OUT/sass.txt"), HMMA $(grep -c 'HMMA' "$OUT/sass.txt"), LDL/STL $(grep -cE 'LDL|STL' "$OUT/sass.txt"), WARPGROUP.ARRIVE $(grep -c 'WARPGROUP.ARRIVE' "$OUT/sass.txt"), WARPGROUP.DEPBAR $(grep -c 'WARPGROUP.DEPBAR' "$OUT/sass.txt")"

if [ "$MODE" = all ] || [ "$MODE" = tests ]; then
  echo "== tests (Hopper kernel on)"
  timeout 150 "$TESTS" --gtest_filter='*PrefillSm90*:*PagedAttention*' >"$OUT/tests.log" 2>&1
  rc=$?; grep -E "^\[  (FAILED|PASSED) |FAILED|Failure|Expected|Which is|seed|rror" "$OUT/tests.log" | head -60
  [ $rc -eq 0 ] || { echo "tests FAILED ($rc)"; status=1; }
  [ $rc -eq 124 ] && { echo "tests timed out: a hang; stopping"; tail -5 "$OUT/tests.log"; exit 1; }
  echo "== attention tests (Hopper kernel off)"
  LONGCTX_ATTN_SM90=0 timeout 240 "$TESTS" --gtest_filter='*PagedAttention*' >"$OUT/tests_off.log" 2>&1
  rc=$?; grep -E "^\[  (FAILED|PASSED) |FAILED" "$OUT/tests_off.log" | head -20
  [ $rc -eq 0 ] || { echo "tests (off) FAILED ($rc)"; status=1; }
fi
if [ "$MODE" = all ] || [ "$MODE" = san ]; then
  CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  FILTER='*PrefillSm90*ChunksOverPrefix*:*PrefillSm90*ChunkMhaBlock5*'
  for tool in memcheck racecheck; do
    echo "== $tool"
    timeout 240 "$CS" --tool $tool --error-exitcode 3 "$TESTS" --gtest_filter="$FILTER" >"$OUT/$tool.log" 2>&1
    rc=$?; tail -4 "$OUT/$tool.log"
    [ $rc -eq 0 ] || { echo "$tool FAILED ($rc)"; status=1; }
  done
fi
if [ "$MODE" = all ] || [ "$MODE" = bench ]; then
  echo "== bench"
  timeout 200 "$BENCH" >"$OUT/bench_sm90.jsonl" 2>&1 || status=1
  LONGCTX_ATTN_SM90=0 timeout 200 "$BENCH" >"$OUT/bench_portable.jsonl" 2>&1 || status=1
  [ "${SM90_CPASYNC:-0}" = 1 ] && { LONGCTX_ATTN_SM90_TMA=0 timeout 200 "$BENCH" >"$OUT/bench_sm90_cpasync.jsonl" 2>&1 || status=1; }
  [ "${SM90_STAGES3:-0}" = 1 ] && { LONGCTX_ATTN_SM90_STAGES=3 timeout 200 "$BENCH" >"$OUT/bench_sm90_stages3.jsonl" 2>&1 || status=1; }
  [ "${SM90_REPEAT:-0}" = 1 ] && { timeout 200 "$BENCH" >"$OUT/bench_sm90_repeat.jsonl" 2>&1 || status=1; }
  for f in "$OUT"/bench_*.jsonl; do
    echo "$(basename "$f" .jsonl): $(grep prefill "$f" | sed -E 's/.*"L":([0-9]+).*"tflops":([0-9.]+).*/\1:\2/' | tr '\n' ' ')"
  done
fi
exit $status

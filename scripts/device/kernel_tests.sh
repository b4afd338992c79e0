#!/usr/bin/env bash
# GPU kernel tests, memcheck, racecheck and the kernel benchmark, on a machine with an NVIDIA GPU.
# Nothing is built here: the binaries come prebuilt (a machine with nvcc, no GPU needed):
#   cmake -S . -B build-cuda -G Ninja -DLONGCTX_CUDA=ON -DLONGCTX_NATIVE=OFF
#   ninja -C build-cuda longctx_cuda_tests longctx_bench_kernels
#   scripts/device/bundle_libs.sh build-cuda/devlibs build-cuda/tests/longctx_cuda_tests
# (the test binary holds the GPU model's tests too, which link OpenBLAS: devlibs carries it).
# Through the device tool (docs/cuda.md): run `scripts/device/kernel_tests.sh MODE`
# with carry = build-cuda/tests/longctx_cuda_tests, build-cuda/bench/cuda/longctx_bench_kernels,
# build-cuda/devlibs. Logs go to $OUT (default /tmp/longctx-cuda-out): device.txt, tests.log,
# tests.json, memcheck.log, racecheck.log, bench_ours.jsonl, bench_peer.jsonl (sweep:
# bench_sweep.jsonl, the decode partition sweep). MODE: all (default) = tests + memcheck +
# racecheck + bench with peers; tests = the first three; unit (the test binary alone; GTEST_FILTER
# narrows it), racecheck, bench, sweep. Exit status: non-zero if any step failed.
set -uo pipefail
MODE=${1:-all}
OUT=${OUT:-/tmp/longctx-cuda-out}
BIN=${BIN:-build-cuda}
TESTS=$BIN/tests/longctx_cuda_tests
BENCH=$BIN/bench/cuda/longctx_bench_kernels
mkdir -p "$OUT"
status=0

# libcudart/libcublasLt: the toolkit's, else wherever the image keeps them (PyTorch's wheels);
# the carried devlibs for the rest. python3 (the peer) keeps the image's own libraries.
LIBS=/usr/local/cuda/lib64:/usr/local/cuda/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
[ -d "$BIN/devlibs" ] && LIBS=$PWD/$BIN/devlibs:$LIBS
# shellcheck source=scripts/device/find_cuda_libs.sh
. "$(dirname "${BASH_SOURCE[0]}")/find_cuda_libs.sh"
find_cuda_libs "$TESTS" "$BENCH" || status=1

{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem --format=csv
  nvidia-smi -L
} 2>&1 | tee "$OUT/device.txt"
CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)

if [ "$MODE" = all ] || [ "$MODE" = tests ] || [ "$MODE" = unit ]; then
  echo "== tests"
  LD_LIBRARY_PATH=$LIBS timeout 300 "$TESTS" --gtest_output=json:"$OUT/tests.json" 2>&1 | tee "$OUT/tests.log" | grep -E "^\[  (FAILED|PASSED) |OK \]|FAILED|Failure|error|seed" | head -120
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "tests FAILED"; status=1; }
fi

if [ "$MODE" = all ] || [ "$MODE" = tests ]; then
  echo "== memcheck (filtered: small shapes of every kernel)"
  FILTER='*LinearTest*/0:RmsNorm.FusedAdd:SiluMul.*:Embedding.*:Argmax.*:*RopeKvTest*/1:*RopeKvTest*/3:*PrefillMhaD64Block5*:*PrefixChunkD64Split*:*DecodeForcedSplit64*:*MixedStep*:*DecodeForcedSplit79D64*:PagedAttention.SplitDecodeInACudaGraphEqualsEager:MergeAttentionStates.*'
  LD_LIBRARY_PATH=$LIBS timeout 300 "$CS" --tool memcheck --error-exitcode 3 "$TESTS" --gtest_filter="$FILTER" >"$OUT/memcheck.log" 2>&1
  rc=$?
  tail -5 "$OUT/memcheck.log"
  [ $rc -eq 0 ] || { echo "memcheck FAILED ($rc)"; status=1; }
fi

if [ "$MODE" = all ] || [ "$MODE" = tests ] || [ "$MODE" = racecheck ]; then
  # Every kernel that uses shared memory, on small shapes: attention prefill and decode (d 16,
  # 64, 128; with the split merge, also replayed from a CUDA graph), the RMSNorms (block
  # reductions; the fp32-in norm through a model step), RoPE's per-token sin/cos table, argmax,
  # sampling and the Hopper prefill kernel (those two patterns match nothing in builds without them).
  echo "== racecheck (filtered: every kernel with shared memory, small shapes)"
  RFILTER='*PrefillMhaD64Block5*:*PrefillGqa4x2D16Block5*:*PrefixChunkD64Split*:*DecodeForcedSplit64*:*DecodeD16ForcedSplit*:*MixedStep*:*DecodeForcedSplit79D64*:PagedAttention.SplitDecodeInACudaGraphEqualsEager:RmsNorm.*:*RopeKvTest*/1:Argmax.*:CudaDenseModel.BatchOfPrefillAndDecodeMatchesSeparateRuns:*SampleVsCpu*/1:*SampleVsCpu*/2:Sample.GreedyIsArgmax:*PrefillSm90*ChunkMhaBlock5*'
  LD_LIBRARY_PATH=$LIBS timeout "${RACECHECK_TIMEOUT:-400}" "$CS" --tool racecheck --racecheck-report all --error-exitcode 4 "$TESTS" --gtest_filter="$RFILTER" >"$OUT/racecheck.log" 2>&1
  rc=$?
  grep -E "^\[  (PASSED|FAILED) |RACECHECK SUMMARY|Race reported|hazard" "$OUT/racecheck.log" | sort | uniq -c | head -20
  [ $rc -eq 0 ] || { echo "racecheck FAILED ($rc)"; status=1; }
fi

if [ "$MODE" = sweep ]; then
  echo "== decode partition sweep"
  LD_LIBRARY_PATH=$LIBS timeout 240 "$BENCH" --sweep | tee "$OUT/bench_sweep.jsonl" || status=1
fi

if [ "$MODE" = all ] || [ "$MODE" = bench ]; then
  echo "== bench"
  LD_LIBRARY_PATH=$LIBS timeout 240 "$BENCH" | tee "$OUT/bench_ours.jsonl" || status=1
  PYTHONUNBUFFERED=1 timeout 300 python3 bench/cuda/peer_attention.py | tee "$OUT/bench_peer.jsonl" || status=1
fi
exit $status

#!/usr/bin/env bash
# The engine on GPU ranks (`--device cuda` with a layout; exec/cuda_parallel_runner.h,
# tests/cuda/engine_cuda_ranks_test.cpp, docs/cuda.md "The engine on GPU ranks") on a machine
# with an NVIDIA GPU: every rank a thread, ranks sharing the GPUs (rank r on GPU r % count).
#   1. EngineCudaRanksTest.* (longctx_cuda_tests): tp2, pp2, tp2xpp2, tp4xdcp2, kvp2, cp2 engines
#      against the single-GPU engine, abort, an injected rank failure, refusals, the planned pool;
#   2. when the CLI binary is carried: `generate --device cuda` on the llama_gqa fixture alone and
#      with --pp 2 / --tp 2 / --cp 2 (the memory plan over the ranks sharing the GPU, the flags'
#      wiring); pp2 must give the single GPU's tokens (eager both: bitwise the same logits), the others
#      are printed.
# Nothing is built here. On the build machine (nvcc, no GPU needed):
#   cmake -S . -B build-gpuranks -G Ninja -DLONGCTX_CUDA=ON -DLONGCTX_NATIVE=OFF -DCMAKE_BUILD_TYPE=Release
#   ninja -C build-gpuranks longctx_cuda_tests longctx
#   scripts/device/bundle_libs.sh build-gpuranks/devlibs build-gpuranks/tests/longctx_cuda_tests build-gpuranks/src/longctx
# Through the device tool: `OUT=$OUT bash scripts/device/engine_ranks_gpu.sh` with carry =
# build-gpuranks/tests/longctx_cuda_tests, build-gpuranks/src/longctx, build-gpuranks/devlibs (~60 MB),
# or the same three packed (~11 MB): carry build-gpuranks/engine_ranks.tar.xz and run
# `tar xJf build-gpuranks/engine_ranks.tar.xz && OUT=$OUT bash scripts/device/engine_ranks_gpu.sh`.
# At most 100 s of tests plus 4 CLI runs of at most 15 s each.
# BIN=<build dir> picks another build (its devlibs too). Run from the repo root (the tests read
# tests/data/hf). One file back in $OUT (the device tool returns few): engine_ranks.log — the
# device, the tests' output, the CLI runs and their logs (JSON=1 adds the gtest engine_ranks.json).
# Exit non-zero if a step failed.
set -uo pipefail
OUT=${OUT:-/tmp/longctx-engine-ranks-out}
BIN=${BIN:-build-gpuranks}
TESTS=$BIN/tests/longctx_cuda_tests
CLI=$BIN/src/longctx
FILTER=${FILTER:-'EngineCudaRanksTest.*'}
T_TESTS=${T_TESTS:-100}
mkdir -p "$OUT"
status=0
export NCCL_NVLS_ENABLE=0  # KINDS.md (the runner uses no NCCL today; kept for when it does)

LIBS=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
[ -d "$BIN/devlibs" ] && LIBS=$PWD/$BIN/devlibs:$LIBS
# shellcheck source=scripts/device/find_cuda_libs.sh
. "$(dirname "${BASH_SOURCE[0]}")/find_cuda_libs.sh"
find_cuda_libs "$TESTS" "$CLI" || status=1

LOG=$OUT/engine_ranks.log
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  git rev-parse HEAD 2>/dev/null || true
  echo "GPUs: $(nvidia-smi -L 2>/dev/null | wc -l)"
} 2>&1 | tee "$LOG"

echo "== $FILTER" | tee -a "$LOG"
json=()
[ "${JSON:-0}" = 1 ] && json=(--gtest_output=json:"$OUT/engine_ranks.json")
LD_LIBRARY_PATH=$LIBS timeout "$T_TESTS" "$TESTS" --gtest_filter="$FILTER" ${json[@]+"${json[@]}"} >"$OUT/.tests.log" 2>&1
rc=$?
cat "$OUT/.tests.log" >>"$LOG"
grep -E "^\[  (FAILED|PASSED) |OK \]|FAILED|Failure|\[ gpu \]|error" "$OUT/.tests.log" | head -80
rm -f "$OUT/.tests.log"
[ $rc -eq 0 ] || { echo "engine-on-ranks tests FAILED ($rc; 124 = timed out: a hang?)" | tee -a "$LOG"; status=1; }

if [ -x "$CLI" ]; then
  echo "== generate --device cuda, alone and on ranks sharing the GPU" | tee -a "$LOG"
  ids=$(seq -s, 3 2 67)  # 33 prompt tokens
  declare -A got
  for layout in "" "--pp 2" "--tp 2" "--cp 2"; do
    out=$(LD_LIBRARY_PATH=$LIBS timeout 15 "$CLI" generate --model tests/data/hf/llama_gqa --prompt-ids "$ids" \
      --max-tokens 8 --ignore-eos --device cuda --enforce-eager --max-model-len 512 --gpu-memory-utilization 0.2 $layout \
      2>>"$OUT/.cli.log")
    rc=$?
    echo "[${layout:-single}] rc=$rc tokens: $out" | tee -a "$LOG"
    [ $rc -eq 0 ] || { echo "generate --device cuda $layout FAILED ($rc)" | tee -a "$LOG"; status=1; }
    key=${layout:-single}
    got[${key// /}]=$out
  done
  grep -E "device cuda:" "$OUT/.cli.log" | head -20
  { echo "== the CLI runs' logs"; cat "$OUT/.cli.log"; } >>"$LOG"
  rm -f "$OUT/.cli.log"
  if [ "${got[--pp2]}" != "${got[single]}" ] || [ -z "${got[single]}" ]; then
    echo "pp2 tokens differ from the single GPU's: FAILED" | tee -a "$LOG"; status=1
  fi
  for key in --tp2 --cp2; do
    [ "${got[$key]}" = "${got[single]}" ] ||
      echo "$key tokens differ from the single GPU's (a near-tie? see the test's policy)" | tee -a "$LOG"
  done
fi
exit $status

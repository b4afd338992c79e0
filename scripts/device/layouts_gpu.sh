#!/usr/bin/env bash
# The GPU model over ranks (TP, PP, CP, DCP, KVP; tests/cuda/sharded_model_test.cpp, docs/cuda.md
# "Layouts on the GPU") on a machine with NVIDIA GPUs:
#   - always: every rank a thread on GPU 0 through the device-staged communicator
#     (longctx_cuda_tests) with the DCP/KVP pieces (RankKVPlacement, paged attention with
#     causal_lens), then compute-sanitizer memcheck on one fixture's layouts;
#   - on >= 2 GPUs: the same tests with one GPU per rank over NCCL (longctx_cuda_layout_tests,
#     LONGCTX_LAYOUT_COMM=nccl; a layout with more ranks than GPUs is skipped and says so),
#     NVLink multicast off (NCCL_NVLS_ENABLE=0, KINDS.md).
# Nothing is built here. On the build machine (nvcc, no GPU needed):
#   cmake -S . -B build-gpulayout -G Ninja -DLONGCTX_CUDA=ON -DLONGCTX_NATIVE=OFF -DCMAKE_BUILD_TYPE=Release
#   ninja -C build-gpulayout longctx_cuda_tests longctx_cuda_layout_tests
#   scripts/device/bundle_libs.sh build-gpulayout/devlibs build-gpulayout/tests/longctx_cuda_tests \
#     build-gpulayout/tests/longctx_cuda_layout_tests
# Through the device tool: `OUT=$OUT bash scripts/device/layouts_gpu.sh [all|shared|nccl]` with carry =
# build-gpulayout/tests/longctx_cuda_tests, build-gpulayout/tests/longctx_cuda_layout_tests,
# build-gpulayout/devlibs (about 50 MB). BIN=<build dir> picks another build.
# Run from the repo root (the tests read tests/data/hf). Logs in $OUT: device.txt,
# layouts_shared.log/json, layouts_memcheck.log, layouts_nccl.log/json. Exit non-zero if a step failed.
set -uo pipefail
MODE=${1:-all}
OUT=${OUT:-/tmp/longctx-layouts-out}
BIN=${BIN:-build-gpulayout}
TESTS=$BIN/tests/longctx_cuda_tests
NCCL_TESTS=$BIN/tests/longctx_cuda_layout_tests
FILTER=${FILTER:-'*CudaShardedModel*:DeviceStagedCommunicator.*:RankKVPlacement.*:*PagedAttentionCausalLens*'}
T_TESTS=${T_TESTS:-240}        # seconds per step (the device tool's calls are capped)
T_MEMCHECK=${T_MEMCHECK:-240}
mkdir -p "$OUT"
status=0
export NCCL_NVLS_ENABLE=0

# The carried libraries; cuBLASLt / cudart from wherever the image has them; NCCL from the
# machine's PyTorch wheel (nvidia-nccl) when the toolkit lacks it (as nccl_check.sh).
LIBS=$PWD/$BIN/devlibs:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
NCCL_DIR=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' 2>/dev/null || true)
[ -n "$NCCL_DIR" ] && LIBS=$LIBS:$NCCL_DIR
# shellcheck source=scripts/device/find_cuda_libs.sh
. "$(dirname "${BASH_SOURCE[0]}")/find_cuda_libs.sh"
find_cuda_libs --nccl "$TESTS" "$NCCL_TESTS"  # what is still missing shows when it runs

GPUS=$(nvidia-smi -L 2>/dev/null | wc -l)
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  git rev-parse HEAD 2>/dev/null || true
  echo "GPUs: $GPUS"
} 2>&1 | tee "$OUT/device.txt"

if [ "$MODE" = all ] || [ "$MODE" = shared ]; then
  echo "== ranks sharing GPU 0 (device-staged communicator)"
  LD_LIBRARY_PATH=$LIBS timeout "$T_TESTS" "$TESTS" --gtest_filter="$FILTER" --gtest_output=json:"$OUT/layouts_shared.json" \
    >"$OUT/layouts_shared.log" 2>&1
  rc=$?
  grep -E "^\[  (FAILED|PASSED) |FAILED|Failure|\[ gpu \]|seed" "$OUT/layouts_shared.log" | head -60
  [ $rc -eq 0 ] || { echo "shared-GPU layout tests FAILED ($rc)"; status=1; }
  echo "== memcheck (one fixture: tp2, tp4, pp2, tp2 x pp2, the CP/DCP/KVP layouts; the communicator)"
  CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  MC_FILTER=${MC_FILTER:-'Fixtures/CudaShardedModelTest.*/1:DeviceStagedCommunicator.*'}
  LD_LIBRARY_PATH=$LIBS timeout "$T_MEMCHECK" "$CS" --tool memcheck --error-exitcode 3 "$TESTS" \
    --gtest_filter="$MC_FILTER" \
    >"$OUT/layouts_memcheck.log" 2>&1
  rc=$?
  tail -3 "$OUT/layouts_memcheck.log"
  [ $rc -eq 0 ] || { echo "memcheck FAILED ($rc)"; status=1; }
fi

if [ "$MODE" = all ] || [ "$MODE" = nccl ]; then
  if [ "$GPUS" -lt 2 ]; then
    echo "== NCCL, one GPU per rank: NOT run (this machine has $GPUS GPU; it needs 2, and 4 for tp4 / tp2 x pp2)"
    if [ -x "$NCCL_TESTS" ]; then
      # The binary must still load (libnccl found) and list its tests.
      LD_LIBRARY_PATH=$LIBS "$NCCL_TESTS" --gtest_list_tests >"$OUT/layouts_nccl.log" 2>&1 ||
        { echo "longctx_cuda_layout_tests does not start"; status=1; }
    fi
  elif [ ! -x "$NCCL_TESTS" ]; then
    echo "== NCCL: $NCCL_TESTS missing (built without NCCL?)"; status=1
  else
    echo "== NCCL, one GPU per rank ($GPUS GPUs)"
    LONGCTX_LAYOUT_COMM=nccl LD_LIBRARY_PATH=$LIBS timeout "$T_TESTS" "$NCCL_TESTS" --gtest_filter='*CudaShardedModelTest*' \
      --gtest_output=json:"$OUT/layouts_nccl.json" >"$OUT/layouts_nccl.log" 2>&1
    rc=$?
    grep -E "^\[  (FAILED|PASSED) |FAILED|Failure|\[ gpu \]|skipped" "$OUT/layouts_nccl.log" | head -60
    [ $rc -eq 0 ] || { echo "NCCL layout tests FAILED ($rc)"; status=1; }
  fi
fi
exit $status

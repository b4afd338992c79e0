#!/usr/bin/env bash
# Where the GPU model's prefill time goes (docs/cuda.md "Where TTFT goes"), on a GPU machine:
#   breakdown: longctx_bench_ttft (the step's ops one by one at the chunk shapes) and its
#              PyTorch/transformers peers (bench/cuda/ttft_peer.py: torch GEMMs and SDPA at the
#              same shapes, transformers' 32K prefill under torch.profiler);
#   latency:   `longctx bench latency` TTFT at 32K and 128K with 16K and 32K chunks;
#   ncu:       Nsight Compute on one Hopper prefill-attention launch (16K queries over 32K keys);
#   peer:      the transformers TTFT peer (bench/cuda/peer_latency.py) at the same lengths.
# Prebuilt binaries with their libraries, as one archive (the carry limit):
#   ninja -C build-ttft longctx longctx_bench_ttft longctx_bench_kernels
#   scripts/device/bundle_libs.sh build-ttft/devlibs build-ttft/src/longctx
#   tar -cJf build-ttft/carry.tar.xz build-ttft/src/longctx build-ttft/bench/cuda/longctx_bench_ttft \
#       build-ttft/bench/cuda/longctx_bench_kernels build-ttft/devlibs
#   run(command="OUT=$OUT bash scripts/device/ttft_breakdown.sh [breakdown latency ncu peer]",
#       carry=["build-ttft/carry.tar.xz"])
# Logs in $OUT: device.txt, ttft_ours.jsonl, ttft_peer.jsonl, latency_c16k.json, latency_c32k.json,
# latency.log, ncu.txt, latency_peer.json.
set -uo pipefail
OUT=${OUT:-/tmp/longctx-ttft-out}
BIN=${BIN:-build-ttft}
STEPS=${*:-breakdown latency ncu}
mkdir -p "$OUT"
[ -f "$BIN/carry.tar.xz" ] && tar -xJf "$BIN/carry.tar.xz"
status=0
LIBS=$PWD/$BIN/devlibs:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# shellcheck source=scripts/device/find_cuda_libs.sh
. "$(dirname "${BASH_SOURCE[0]}")/find_cuda_libs.sh"
find_cuda_libs "$BIN/src/longctx" "$BIN/bench/cuda/longctx_bench_ttft" || status=1
ours() { LD_LIBRARY_PATH=$LIBS "$@"; }  # our binaries; python3 keeps the image's own libraries
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv
  git rev-parse HEAD 2>/dev/null || true
} 2>&1 | tee "$OUT/device.txt"
has() { case " $STEPS " in *" $1 "*) return 0 ;; esac; return 1; }

if has breakdown; then
  echo "== longctx_bench_ttft"
  ours timeout 120 "$BIN/bench/cuda/longctx_bench_ttft" --chunks 16384,32768 --prompts 32768,131072 \
    >"$OUT/ttft_ours.jsonl" 2>"$OUT/ttft_ours.log" || { echo "bench_ttft FAILED"; status=1; }
  cat "$OUT/ttft_ours.log"
  echo "== ttft_peer.py"
  PYTHONUNBUFFERED=1 timeout 150 python3 bench/cuda/ttft_peer.py 16384,32768 32768 \
    >"$OUT/ttft_peer.jsonl" 2>"$OUT/ttft_peer.log" || { echo "ttft_peer FAILED"; tail -5 "$OUT/ttft_peer.log"; status=1; }
  grep peer_profile "$OUT/ttft_peer.jsonl" | cut -c1-400
fi
if has latency; then
  for c in 16384 32768; do
    echo "== bench latency, chunk $c"
    ours timeout 120 "$BIN/src/longctx" bench latency --prompt-lens "${PROMPTS:-32768,131072}" --max-num-batched-tokens $c \
      --batches 1 --contexts 1024 --decode-steps 2 --json-out "$OUT/latency_c$((c / 1024))k.json" \
      >/dev/null 2>>"$OUT/latency.log" || { echo "bench latency FAILED"; status=1; }
    grep -E "ttft|GEMM" "$OUT/latency.log" | tail -3
  done
fi
if has ncu; then
  echo "== ncu: Hopper prefill attention, 16K queries over 32K keys"
  NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  ours timeout 150 "$NCU" --clock-control none -k regex:paged_prefill_sm90 --launch-skip 6 --launch-count 1 \
    --section SpeedOfLight --section ComputeWorkloadAnalysis --section WarpStateStats --section SchedulerStats \
    --section MemoryWorkloadAnalysis --section LaunchStats --section Occupancy \
    "$BIN/bench/cuda/longctx_bench_ttft" --chunks 16384 --prompts 32768 --reps 5 >"$OUT/ncu.txt" 2>&1 ||
    { echo "ncu FAILED"; status=1; }
  grep -E "Duration|Throughput|Pipe|Issue|Stall|Warp Cycles|Eligible|Active Warps|Registers|Executed Ipc" "$OUT/ncu.txt" | head -40
fi
if has peer; then
  echo "== transformers peer (TTFT)"
  PYTHONUNBUFFERED=1 timeout 200 python3 bench/cuda/peer_latency.py "${PROMPTS:-32768,131072}" 1 1024 \
    >"$OUT/latency_peer.json" 2>>"$OUT/latency.log" || status=1
  grep prompt_tokens "$OUT/latency.log" | tail -4
fi
exit $status

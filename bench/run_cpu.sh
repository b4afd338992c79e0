#!/usr/bin/env bash
# CPU forward benchmark: tiny preset and a Qwen3-0.6B-shaped model, bf16 and fp32
# weights. Appends a section to bench/RESULTS.md and the raw JSON to bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
json=bench/results/cpu_forward_$(date -u +%Y%m%d_%H%M%S).json
: > "$json"
run() { ./build/bench/longctx_bench_cpu_forward "$@" | tee -a "$json"; }
{
  echo
  echo "## CPU forward — $stamp"
  echo
  echo "Machine: $cpu, $(nproc) cores (OMP_NUM_THREADS=$OMP_NUM_THREADS). Commit: $commit."
  echo "Prefill of 512 tokens, then 32 decode steps; medians of 3 runs. GEMM share: the"
  echo "prefill's GEMMs replayed in isolation over the whole prefill time. Peer: OpenBLAS"
  echo "sgemm (fp32) of the same shapes in the same run; ratio = sgemm time / our time."
  echo
  echo "| model | weights | prefill tok/s | decode tok/s | GEMM share of prefill | our GEMMs vs sgemm |"
  echo "|---|---|---|---|---|---|"
} >> bench/RESULTS.md
for preset in tiny 0.6b; do
  for dt in bf16 f32; do
    line=$(run --model "models/qwen3-$preset" --dtype "$dt" --prefill-tokens 512 --decode-tokens 32 --repeats 3)
    python3 - "$line" "$preset" >> bench/RESULTS.md <<'PY'
import json, sys
r = json.loads(sys.argv[1])
print(f"| qwen3/{sys.argv[2]} | {r['weights']} | {r['prefill_tok_s']:.1f} | {r['decode_tok_s']:.2f} | "
      f"{100*r['prefill_gemm_share']:.0f}% | {100*r['gemm_vs_sgemm']:.0f}% |")
PY
  done
done
echo "results: bench/RESULTS.md, $json"

#!/usr/bin/env bash
# Engine throughput at batch 1, 8, 32 (tiny preset and a Qwen3-0.6B-shaped model) and
# the scheduler's CPU time per step at 256 running sequences. Appends to
# bench/RESULTS.md and bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
json=bench/results/engine_$(date -u +%Y%m%d_%H%M%S).json
tiny=$(./build/bench/longctx_bench_engine --model models/qwen3-tiny --prompt-len 128 --output-len 32)
small=$(./build/bench/longctx_bench_engine --model models/qwen3-0.6b --prompt-len 32 --output-len 16)
printf '%s\n%s\n' "$tiny" "$small" > "$json"
python3 - "$tiny" "$small" "$stamp" "$cpu" "$(nproc)" "$commit" >> bench/RESULTS.md <<'PY'
import json, sys
tiny, small = json.loads(sys.argv[1]), json.loads(sys.argv[2])
stamp, cpu, cores, commit = sys.argv[3:7]
print(f"\n## Engine throughput — {stamp}\n")
print(f"Machine: {cpu}, {cores} cores. Commit: {commit}. All requests submitted at once, greedy,")
print("bf16 weights; tokens/s = generated tokens / wall time (prefill included), total = prompt + generated.\n")
print("| model | prompt / output | batch | generated tok/s | total tok/s | batch-1 generated tok/s × batch (linear scaling) |")
print("|---|---|---|---|---|---|")
for name, r in (("qwen3/tiny", tiny), ("qwen3/0.6b", small)):
    base = r["batch_1"]["generated_tok_s"]
    for b in (1, 8, 32):
        x = r[f"batch_{b}"]
        print(f"| {name} | {r['prompt_len']} / {r['output_len']} | {b} | {x['generated_tok_s']:.1f} | {x['total_tok_s']:.1f} | {base*b:.1f} |")
print(f"\nScheduler CPU time per step, 256 running decodes (no model; target < 1 ms): "
      f"{tiny['scheduler_step_ms_256_seqs_ctx_1024']:.3f} ms at 1K context, "
      f"{tiny['scheduler_step_ms_256_seqs_ctx_32768']:.3f} ms at 32K context (median of the timed steps).")
PY
echo "results: bench/RESULTS.md, $json"

#!/usr/bin/env bash
# CPU MoE layer benchmark: the qwen3_moe fixture's shape and a Qwen3-30B-A3B-shaped layer,
# beside the dense floor of the same active FLOPs in the same run (bench/moe_bench.cpp).
# Appends a section to bench/RESULTS.md and the raw JSON to bench/results/.
# BUILD (default build) is the build folder; only longctx_bench_moe is (re)built in it
# (or set BENCH, RESULTS_MD, RESULTS_DIR and COMMIT as in run_moe_ep.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_TARGET=longctx_bench_moe
source bench/moe_common.sh
# One thread, timed by process CPU time (bench/moe_bench.cpp): on a shared, loaded machine
# wall-clock medians of multi-threaded OpenBLAS calls swing by 10-1000x; core-seconds do not.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
json=$RESULTS_DIR/moe_layer_$(date -u +%Y%m%d_%H%M%S).json
: > "$json"
"$bench" --config tests/data/hf/qwen3_moe --dtype f32 --tokens 1,16,256,2048 --repeats 5 | tee -a "$json"
"$bench" --config qwen3_moe/30b-a3b --dtype f32 --tokens 1,16,256,2048 --repeats 3 | tee -a "$json"
"$bench" --config qwen3_moe/30b-a3b --dtype bf16 --tokens 1,16,256,2048 --repeats 3 | tee -a "$json"
python3 - "$json" "$stamp" "$commit" "$cpu" "$cores" "$OMP_NUM_THREADS" "${OPENBLAS_CORETYPE:-unset}" >> "$RESULTS_MD" <<'PY'
import sys
sys.path.insert(0, "bench")
from moe_results import layer, load_rows
path, stamp, commit, cpu, cores, omp, coretype = sys.argv[1:]
rows = load_rows(path)
print(f"\n## MoE layer on CPU — {stamp}\n")
print(f"Machine: {cpu}, {cores} cores shared with other jobs that were compiling during the run")
print(f"(load average > 10). So: one thread (OMP_NUM_THREADS={omp}), timed by process CPU time (a")
print(f"descheduled thread does not count), MoE and floor samples interleaved, medians — tok/s is")
print(f"per core; the ratio is the number to read. OPENBLAS_CORETYPE={coretype}. Commit: {commit}.")
print("One routed MLP layer forward (model/moe_mlp.cpp: router GEMM, top-k, tokens grouped")
print("per expert, one gate_up and one down GEMM per expert, weighted scatter-add), random")
print("weights and inputs (near-balanced routing). Floor: a dense MLP of width top_k ×")
print("moe_intermediate — the same active FLOPs — through the same cpu::linear / OpenBLAS;")
print("floor/MoE = floor time over MoE time (1.0 = routing and grouping cost nothing).")
print("Activations fp32; the weights column is the experts' storage (bf16 is converted to fp32")
print("in panels before sgemm, as in the engine).\n")
print("| layer | weights | tokens | MoE tok/s | MoE GFLOP/s | floor tok/s | floor GFLOP/s | floor/MoE |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {layer(r)} | {r['weights']} | {r['tokens']} | {r['moe_tok_s']:.1f} | {r['moe_gflops']:.1f} | "
          f"{r['floor_tok_s']:.1f} | {r['floor_gflops']:.1f} | {r['floor_over_moe']:.2f} |")
PY
echo "results: $RESULTS_MD, $json"

#!/usr/bin/env python3
"""Step-by-step fidelity: every step a real engine ran (`serve --step-log FILE`) priced by
the calibration that `bench profile` fitted (PROFILE, perf/hardware.h StepCalibration), so
a systematic miss shows up by step kind instead of hiding in per-request medians.

Usage: step_fidelity.py STEPS_JSONL PROFILE_JSON

Prints, per kind of step (decode-only steps by the largest context in the batch, steps
with a prefill chunk by its size), the number of steps and the median and p90 of
measured / predicted; then the totals. The formula is the cost model's calibrated one
(src/perf/cost_model.cpp): step_s + per_seq_s·sequences + per_token_s·tokens
+ per_pair_s·query-key pairs + per_kv_token_s·KV tokens read (the context of every chunk
plus its new tokens) + per_narrow_token_s·tokens·[tokens ≤ small_m]
+ wide_gemm_s·[tokens > small_m] + wide_head_s·[sequences > small_m];
a calibration with gemm_scale > 0 also needs the roofline GEMM term,
which this script does not rebuild (it says so and stops)."""
import json
import sys


def pct(values, p):
    # numpy's default (linear between closest ranks), as sim/report.cpp.
    v = sorted(values)
    if not v:
        return float("nan")
    pos = p / 100 * (len(v) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def predict(cal, chunks):
    seqs = len(chunks)
    tokens = sum(n for _, _, n in chunks)
    pairs = sum(n * ctx + n * (n + 1) / 2 for _, ctx, n in chunks)
    kv = sum(ctx + n for _, ctx, n in chunks)
    m = cal.get("small_m", 0)
    wide = (cal.get("wide_gemm_s", 0.0) * (tokens > m) + cal.get("wide_head_s", 0.0) * (seqs > m)
            + cal.get("per_narrow_token_s", 0.0) * tokens * (tokens <= m)) if m > 0 else 0.0
    return (cal["step_s"] + cal["per_seq_s"] * seqs + cal["per_token_s"] * tokens + cal["per_pair_s"] * pairs
            + cal.get("per_kv_token_s", 0.0) * kv + wide)


def kind(chunks):
    prefill = [n for _, _, n in chunks if n > 1]
    if prefill:
        big = max(prefill)
        b = "<=256" if big <= 256 else "257-1024" if big <= 1024 else ">1024"
        return f"prefill chunk {b}, {'alone' if len(chunks) == 1 else 'with others'}"
    ctx = max(c for _, c, _ in chunks)
    b = "<1K" if ctx < 1024 else "1K-4K" if ctx < 4096 else ">=4K"
    n = len(chunks)
    nb = "1" if n == 1 else "2-4" if n <= 4 else "5-16" if n <= 16 else ">16"
    return f"decode, max context {b}, {nb} seqs"


def main():
    steps = [json.loads(line) for line in open(sys.argv[1])]
    prof = json.load(open(sys.argv[2]))
    cal = prof["calibrations"][0]
    if cal.get("gemm_scale", 0) > 0:
        sys.exit("calibration has gemm_scale > 0: the roofline GEMM term is not rebuilt here")
    groups = {}
    for s in steps:
        r = s["dur"] / predict(cal, s["chunks"])
        groups.setdefault(kind(s["chunks"]), []).append((r, s["dur"]))
    print("| step kind | steps | measured s | measured / predicted p50 | p90 |")
    print("|---|---|---|---|---|")
    for k in sorted(groups):
        rs = [r for r, _ in groups[k]]
        print(f"| {k} | {len(rs)} | {sum(d for _, d in groups[k]):.2f} | {pct(rs, 50):.2f} | {pct(rs, 90):.2f} |")
    meas = sum(s["dur"] for s in steps)
    pred = sum(predict(cal, s["chunks"]) for s in steps)
    print(f"\nall {len(steps)} steps: measured {meas:.2f} s, predicted {pred:.2f} s ({(pred / meas - 1) * 100:+.0f}%)")
    if len(steps) > 1:
        span = steps[-1]["t"] + steps[-1]["dur"] - steps[0]["t"]
        print(f"engine busy {meas / span * 100:.0f}% of the {span:.1f} s between the first step and the last")


if __name__ == "__main__":
    main()

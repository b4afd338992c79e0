#!/usr/bin/env python3
"""How much slower the engine's steps run while a server streams to its clients than the
engine-only profile predicts: the median of measured / predicted over the decode steps of
several sequences in lines FROM..TO of a --step-log (a probe of concurrent streams that
fidelity.sh sends before the trace). Prints the factor (what `simulate --step-scale` takes);
the spread goes to stderr.

Usage: serving_factor.py STEPS_JSONL PROFILE_JSON FROM_LINE TO_LINE   (1-based, inclusive)"""
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from step_fidelity import predict  # noqa: E402


def main():
    lo, hi = int(sys.argv[3]), int(sys.argv[4])
    lines = open(sys.argv[1]).read().splitlines()[lo - 1:hi]
    cal = json.load(open(sys.argv[2]))["calibrations"][0]
    if cal.get("gemm_scale", 0) > 0:
        sys.exit("calibration has gemm_scale > 0: predict() does not rebuild the roofline GEMM term")
    ratios = []
    for line in lines:
        s = json.loads(line)
        if len(s["chunks"]) >= 2 and all(n == 1 for _, _, n in s["chunks"]):
            ratios.append(s["dur"] / predict(cal, s["chunks"]))
    if not ratios:
        sys.exit("no decode step of several sequences in those lines")
    factor = statistics.median(ratios)
    print(f"{factor:.4f}")
    print(f"serving factor over {len(ratios)} decode steps of the concurrent probe: min {min(ratios):.3f}, "
          f"median {factor:.3f}, max {max(ratios):.3f}", file=sys.stderr)


if __name__ == "__main__":
    main()

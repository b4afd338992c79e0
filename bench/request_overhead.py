#!/usr/bin/env python3
"""What a request costs beyond the priced engine steps, from requests sent one at a time
(a probe trace on an otherwise idle server) and the server's --step-log:

  overhead:  client TTFT minus the engine's time from the request's first step to the end of
             the step that sampled its first token (HTTP, tokenization, the stream's first
             write) -> `simulate --request-overhead`;
  idle wake: the measured first step of a request that found the engine idle minus what the
             calibration (PROFILE) predicts for it (cold caches, a core that was given away)
             -> `simulate --idle-wake`.

Usage: request_overhead.py PROBE_SERVE_JSON STEPS_JSONL PROFILE_JSON
Prints "OVERHEAD_S IDLE_WAKE_S" (medians, >= 0); the spread goes to stderr. The probe's
requests must be the first the server saw (engine ids 1..N, in order)."""
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from step_fidelity import predict  # noqa: E402


def main():
    serve = json.load(open(sys.argv[1]))
    steps = [json.loads(line) for line in open(sys.argv[2])]
    cal = json.load(open(sys.argv[3]))["calibrations"][0]
    if cal.get("gemm_scale", 0) > 0:
        sys.exit("calibration has gemm_scale > 0: predict() does not rebuild the roofline GEMM term")
    lens = {i + 1: n for i, n in enumerate(serve["input_lens"])}
    first_step, first_token_end = {}, {}
    for s in steps:
        for rid, ctx, n in s["chunks"]:
            if rid not in lens:
                continue
            first_step.setdefault(rid, s)
            if ctx + n >= lens[rid] and rid not in first_token_end:
                first_token_end[rid] = s["t"] + s["dur"]
    gaps, wakes = [], []
    for i, ttft in enumerate(serve["ttfts"]):
        rid = i + 1
        if not ttft or rid not in first_token_end:
            continue
        first = first_step[rid]
        gaps.append(ttft - (first_token_end[rid] - first["t"]))
        if len(first["chunks"]) == 1:  # alone in its step: the engine was idle
            wakes.append(first["dur"] - predict(cal, first["chunks"]))
    if not gaps or not wakes:
        sys.exit("no probe request matched a logged step")
    overhead, wake = max(0.0, statistics.median(gaps)), max(0.0, statistics.median(wakes))
    print(f"{overhead:.6f} {wake:.6f}")
    print(f"probe of {len(gaps)} requests: overhead min {min(gaps)*1e3:.2f} ms, median {overhead*1e3:.2f} ms, "
          f"max {max(gaps)*1e3:.2f} ms; idle wake (measured - predicted first step) min {min(wakes)*1e3:.2f} ms, "
          f"median {statistics.median(wakes)*1e3:.2f} ms, max {max(wakes)*1e3:.2f} ms", file=sys.stderr)


if __name__ == "__main__":
    main()

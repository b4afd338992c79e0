#!/usr/bin/env python3
"""The serving path's cost per request outside the engine's steps: for requests sent one
at a time (a probe trace, nothing else running), client TTFT minus the engine's time from
the request's first step to the end of the step that sampled its first token (from the
server's --step-log). Prints the median in seconds (what `simulate --request-overhead`
takes); the spread goes to stderr.

Usage: request_overhead.py PROBE_SERVE_JSON STEPS_JSONL
The probe's requests must be the first the server saw (engine ids 1..N, in order)."""
import json
import statistics
import sys


def main():
    serve = json.load(open(sys.argv[1]))
    steps = [json.loads(line) for line in open(sys.argv[2])]
    first_start, first_token_end = {}, {}
    lens = {i + 1: n for i, n in enumerate(serve["input_lens"])}
    for s in steps:
        for rid, ctx, n in s["chunks"]:
            if rid not in lens:
                continue
            first_start.setdefault(rid, s["t"])
            if ctx + n >= lens[rid] and rid not in first_token_end:
                first_token_end[rid] = s["t"] + s["dur"]
    gaps = []
    for i, ttft in enumerate(serve["ttfts"]):
        rid = i + 1
        if ttft and rid in first_token_end:
            gaps.append(ttft - (first_token_end[rid] - first_start[rid]))
    if not gaps:
        sys.exit("no probe request matched a logged step")
    gaps.sort()
    print(f"{statistics.median(gaps):.6f}")
    print(f"request overhead over {len(gaps)} probe requests: min {gaps[0]*1e3:.2f} ms, "
          f"median {statistics.median(gaps)*1e3:.2f} ms, max {gaps[-1]*1e3:.2f} ms", file=sys.stderr)


if __name__ == "__main__":
    main()

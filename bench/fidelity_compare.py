#!/usr/bin/env python3
"""Per-class TTFT and TBT (median, p90) of a real run (bench serve --result-json) next to
the simulator's prediction for the same trace (simulate --requests-json), as a Markdown
table. Usage: fidelity_compare.py SERVE_JSON SIM_REQUESTS_JSON LONG_THRESHOLD"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from step_fidelity import pct  # noqa: E402


def main():
    serve = json.load(open(sys.argv[1]))
    sim = json.load(open(sys.argv[2]))
    threshold = int(sys.argv[3])
    real = {"short": {"ttft": [], "tbt": []}, "long": {"ttft": [], "tbt": []}}
    pred = {"short": {"ttft": [], "tbt": []}, "long": {"ttft": [], "tbt": []}}
    for n, ttft, itl in zip(serve["input_lens"], serve["ttfts"], serve["itls"]):
        if ttft is None or ttft <= 0:
            continue
        c = real["long" if n >= threshold else "short"]
        c["ttft"].append(ttft)
        c["tbt"].extend(itl or [])
    for r in sim[: len(serve["input_lens"])]:
        if "ttft_s" not in r:
            continue
        c = pred["long" if r["prompt_tokens"] >= threshold else "short"]
        c["ttft"].append(r["ttft_s"])
        c["tbt"].extend(r["tbt_s"])
    print("| class | n | metric | real | simulated | error |")
    print("|---|---|---|---|---|---|")
    worst = 0.0
    for cls in ("short", "long"):
        for metric in ("ttft", "tbt"):
            for p in (50, 90):
                a, b = pct(real[cls][metric], p), pct(pred[cls][metric], p)
                err = (b - a) / a if a > 0 else float("nan")
                if p == 50:
                    worst = max(worst, abs(err))
                print(f"| {cls} | {len(real[cls]['ttft'])} | {metric} p{p} | {a*1e3:.1f} ms | {b*1e3:.1f} ms | {err*100:+.0f}% |")
    print(f"\nlargest median error: {worst*100:.0f}% (target 15%)")


if __name__ == "__main__":
    main()

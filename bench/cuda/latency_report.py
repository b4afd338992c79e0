"""Writes the end-to-end latency run (ours + the transformers peer, one device call) as
bench/results/cuda_latency_<stamp>.json and appends its bench/RESULTS.md section.

Usage (on the dev machine, after the device run of scripts/device/model_tests.sh):
  python3 bench/cuda/latency_report.py DIR   # DIR holds latency_ours.json, latency_peer.json, device.txt
"""
import datetime
import json
import os
import subprocess
import sys

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
src = sys.argv[1]


def load(name):
    with open(os.path.join(src, name)) as f:
        text = f.read()
    # The peer prints one JSON object last; progress lines go to stderr.
    return json.loads(text[text.index("{"):]) if text.strip() else {}


ours = load("latency_ours.json")
try:
    peer = load("latency_peer.json")
except (OSError, ValueError):
    peer = {}
with open(os.path.join(src, "device.txt")) as f:
    smi = f.read().splitlines()
device = smi[1].split(",")[0].strip() if len(smi) > 1 else ours.get("device", "unknown")
# The binaries' commit (LONGCTX_COMMIT when they were built elsewhere than HEAD).
commit = os.environ.get("LONGCTX_COMMIT") or subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
now = datetime.datetime.now(datetime.timezone.utc)
stamp = now.strftime("%Y%m%d_%H%M%S")


def peer_of(kind, **kw):
    for r in peer.get(kind, []):
        if all(r.get(k) == v for k, v in kw.items()):
            return r
    return {}


def fmt(x, scale, unit):
    return "—" if x is None else f"{x * scale:.3g} {unit}"


rows = []
out = [f"\n## CUDA end-to-end latency — {now.strftime('%Y-%m-%dT%H:%M:%SZ')}\n",
       f"Device: {device}. Commit: {commit}. Model: {ours.get('preset')} shape, random bf16 weights "
       f"(made on the GPU). Peer: {peer.get('peer', 'not run')} on the same GPU in the same device call "
       f"(torch {peer.get('torch', '?')}). Ceilings measured in the run: bf16 GEMM 8192³ "
       f"{ours.get('gemm_tflops', 0):.0f} TFLOP/s (torch.matmul {peer.get('torch_matmul_tflops', 0):.0f}), "
       f"device copy {ours.get('copy_gbps', 0):.0f} GB/s (read + write). Memory plan: {ours.get('memory_plan')}.",
       "",
       f"TTFT (ours: chunked prefill, {ours.get('max_num_batched_tokens')} tokens per step; transformers: one "
       "forward, logits of the last position). Floor = FLOPs ÷ GEMM rate (2·params·L + 2·L²·Hq·d·layers).",
       "",
       "| prompt tokens | ours | transformers (sdpa) | floor | ours ÷ floor | transformers ÷ ours |",
       "|---:|---:|---:|---:|---:|---:|"]
for r in ours.get("ttft", []):
    p = peer_of("ttft", prompt_tokens=r["prompt_tokens"])
    ps = p.get("peer_s")
    rows.append({"metric": "ttft_s", "prompt_tokens": r["prompt_tokens"], "ours": r["ours_s"], "peer": ps,
                 "peer_error": p.get("error"), "floor": r["floor_s"]})
    ratio = f"{ps / r['ours_s']:.2f}×" if ps else (p.get("error") or "not run")
    out.append(f"| {r['prompt_tokens']} | {fmt(r['ours_s'], 1, 's')} | {fmt(ps, 1, 's')} | {fmt(r['floor_s'], 1, 's')} | "
               f"{r['ours_s'] / r['floor_s']:.2f} | {ratio} |")
out += ["", "Decode TPOT (median step after 3 warm-up steps, to the sampled ids on the host). Floor = bytes ÷ copy "
        "bandwidth (weights once + every sequence's KV).", "",
        "| batch | context | ours | transformers (sdpa) | floor | ours ÷ floor | note |",
        "|---:|---:|---:|---:|---:|---:|---|"]
for r in ours.get("tpot", []):
    p = peer_of("tpot", batch=r["batch"], context=r["context"]) if r["cuda_graphs"] else {}
    ps = p.get("peer_s")
    rows.append({"metric": "tpot_s", "batch": r["batch"], "context": r["context"], "cuda_graphs": r["cuda_graphs"],
                 "ours": r["ours_s"], "peer": ps, "peer_error": p.get("error"), "floor": r["floor_s"]})
    note = [] if r["cuda_graphs"] else ["eager (no CUDA graphs)"]
    if r.get("shared_prefix_kv"):
        note.append("sequences share the context's KV blocks (distinct ones do not fit)")
    if p.get("error"):
        note.append("peer: " + p["error"])
    out.append(f"| {r['batch']} | {r['context']} | {fmt(r['ours_s'], 1e3, 'ms')} | {fmt(ps, 1e3, 'ms')} | "
               f"{fmt(r['floor_s'], 1e3, 'ms')} | {r['ours_s'] / r['floor_s']:.2f} | {'; '.join(note)} |")
with open(os.path.join(root, "bench", "results", f"cuda_latency_{stamp}.json"), "w") as f:
    json.dump({"date": now.isoformat(), "device": device, "commit": commit, "ours": ours, "peer": peer,
               "rows": rows}, f, indent=1)
with open(os.path.join(root, "bench", "RESULTS.md"), "a") as f:
    f.write("\n".join(out) + "\n")
print("\n".join(out))

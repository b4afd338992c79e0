"""The MoE sections of bench/RESULTS.md (bench/run_moe.sh, bench/run_moe_ep.sh): a run's
JSON lines and the layer column, named by its shape."""
import json


def load_rows(path):
    return [json.loads(line) for line in open(path)]


def layer(r):
    name = "qwen3_moe fixture" if "tests/data" in r["config"] else "Qwen3-30B-A3B"
    return f"{name} (h {r['hidden']}, {r['experts']} experts, top-{r['top_k']}, inter {r['moe_intermediate']})"

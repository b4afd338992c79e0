#!/usr/bin/env bash
# Simulator speed at the issue's scale: 10,000 requests, 100 of them (1%) with 10M-token
# prompts (the rest 1K-8K), Poisson arrivals, on 128 simulated H100s (tp 8 × kvp 16,
# Llama-3-8B shape), with FCFS fixed chunks and with LRS + adaptive chunking. Target:
# under a minute each. Appends a section to bench/RESULTS.md (wall and CPU seconds,
# peak memory, the machine's load, steps simulated).
#
#   bash bench/sim_bench.sh        Env: LONGCTX (default build/src/longctx)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${LONGCTX:-build/src/longctx}
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src bench || echo "+dirty")
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
workload="mix:n=10000,rate=0.25,prompts=0.99@1k-8k+0.01@10m,out=128-512,seed=1"
common=(--preset llama/8b --gpu h100 --gpus 128 --tp 8 --kvp 16 --kvp-shard-tokens 655360
        --max-num-batched-tokens 8192 --max-num-seqs 1024 --block-size 256 --workload "$workload" --json)
rows=""
for variant in "fcfs" "lrs --adaptive-chunking"; do
  load=$(cut -d' ' -f1 /proc/loadavg)
  # shellcheck disable=SC2086
  /usr/bin/time -f "%e %U %S %M" -o /tmp/sim_bench_time.$$ "$bin" simulate "${common[@]}" --policy $variant \
    > /tmp/sim_bench_out.$$
  read -r wall user sys rss < /tmp/sim_bench_time.$$
  steps=$(python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print(j['steps'], round(j['duration_s']))" /tmp/sim_bench_out.$$)
  rows+="| $variant | $wall s | $(python3 -c "print(round($user + $sys, 1))") s | $((rss / 1024)) MB | ${steps% *} | ${steps#* } s | $load |"$'\n'
  echo "$variant: $wall s wall, $user user, $sys sys" >&2
done
rm -f /tmp/sim_bench_time.$$ /tmp/sim_bench_out.$$
{
  echo
  echo "## Simulator speed: 10,000 requests with 10M-token prompts on 128 GPUs — $stamp"
  echo
  echo "Machine: $cpu, $(nproc) cores, shared with other jobs (1-minute load average in the table)."
  echo "Commit: $commit. \`bash bench/sim_bench.sh\`: \`longctx simulate ${common[*]} --policy P\`."
  echo "Target: under a minute of wall time."
  echo
  echo "| policy | wall | CPU (user + sys) | peak RSS | steps simulated | simulated time | load |"
  echo "|---|---|---|---|---|---|---|"
  printf '%s' "$rows"
} >> bench/RESULTS.md
echo "appended to bench/RESULTS.md" >&2

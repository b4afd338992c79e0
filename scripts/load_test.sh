#!/usr/bin/env bash
# Load acceptance of `longctx serve` (issue 5): `longctx bench serve` keeps 50 clients
# busy for 60 s against the tiny model (streaming completions, random token-id prompts).
# Fails (exit 1) when any request fails, when KV usage does not return to its idle value
# after the run, or when the server's RSS (VmRSS, sampled every second) differs by more
# than 10% between the first and the last 20 s of the load. Prints every figure.
#   $1                      the longctx binary (default build/src/longctx)
#   LONGCTX_LOAD_SECONDS    load duration (60)      LONGCTX_LOAD_CLIENTS  concurrency (50)
#   LONGCTX_LOAD_INPUT_LEN  prompt tokens (64)      LONGCTX_LOAD_OUTPUT_LEN  generated (32)
#   LONGCTX_LOAD_JSON       also write bench serve's --result-json here
#   LONGCTX_LOAD_KV_BYTES   the server's --kv-cache-memory (8 MiB: 8192 tokens of the tiny model)
#   LONGCTX_LOAD_WARMUP_REQUESTS requests of the same load before the measured run (150)
#   LONGCTX_LOAD_MMAP_THRESHOLD  the server's glibc mmap threshold in bytes (1048576; 0: glibc's default)
#
# Why a small KV pool: the pool is allocated once but its pages become resident only as
# blocks are first written, and freed (prefix-cached) blocks are reused least recently
# used first, so every new token lands on a page not touched before until the whole
# pool has been used once. With the 1 GiB default that takes ~1M tokens (half an hour
# of this load), and RSS climbs all that time with no leak (measured: +18% over 150 s,
# slowing; bench/RESULTS.md). A pool under twice the load's working set (50 × 96 tokens
# in flight) is all resident within seconds, so growth after that would be a leak.
# Why a fixed mmap threshold for the server (GLIBC_TUNABLES, LONGCTX_LOAD_MMAP_THRESHOLD,
# 1 MiB): glibc raises its threshold to the largest block freed so far, so the large
# per-step buffers (logits and sampling rows of 50 sequences over a 152K vocabulary,
# ~0.6 MB each) move from mmap to the heap, where freed ones stay resident. RSS then
# climbs in steps of 10-35 MiB whenever a step needs more than any before (measured:
# +8% between the windows even after a 30 s warm-up; bench/RESULTS.md) with nothing
# leaked. With a fixed threshold those buffers are returned when freed and RSS follows
# what the server holds, which is what a leak would raise. The windows are compared by
# their minimum, what stays resident between steps (a step's buffers add ~30 MiB while
# it runs, so a mean depends on how many samples fell inside steps: +-4% run to run); a
# leak raises the minimum as much as any statistic. The warm-up (150 requests × 6
# blocks, against a pool of 512 blocks) writes every block of the pool once, whatever the
# machine's speed, and keeps the start-up out of the first window.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(realpath "${1:-build/src/longctx}")"
seconds="${LONGCTX_LOAD_SECONDS:-60}"
clients="${LONGCTX_LOAD_CLIENTS:-50}"
input_len="${LONGCTX_LOAD_INPUT_LEN:-64}"
output_len="${LONGCTX_LOAD_OUTPUT_LEN:-32}"
kv_bytes="${LONGCTX_LOAD_KV_BYTES:-8388608}"
warmup="${LONGCTX_LOAD_WARMUP_REQUESTS:-150}"
mmap_threshold="${LONGCTX_LOAD_MMAP_THRESHOLD:-1048576}"
window=$((seconds / 3))  # the first and last thirds: 20 s of a 60 s run

work="$(mktemp -d)"
server_pid=""
sampler_pid=""
cleanup() {
  [ -n "$sampler_pid" ] && kill "$sampler_pid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" make-model --arch qwen3 --preset tiny --out "$work/qwen3-tiny" >/dev/null
tunables=()
[ "$mmap_threshold" -gt 0 ] && tunables=(env "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=$mmap_threshold")
"${tunables[@]}" "$bin" serve --model "$work/qwen3-tiny" --port 0 --served-model-name tiny \
  --kv-cache-memory "$kv_bytes" >"$work/serve.out" 2>"$work/serve.err" &
server_pid=$!
port=""
for _ in $(seq 1 600); do
  port="$(sed -n 's|.*listening on http://[^:]*:\([0-9]*\).*|\1|p' "$work/serve.out")"
  if [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1; then break; fi
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.err" >&2; echo "load_test: the server did not start" >&2; exit 1; }
  sleep 0.1
done
curl -sf "http://127.0.0.1:$port/health" >/dev/null || { echo "load_test: the server is not healthy" >&2; exit 1; }
# A metric's first sample (awk reads to the end: an early exit would fail curl under pipefail).
metric() { curl -sf "http://127.0.0.1:$port/metrics" | awk -v m="$1" 'index($0, m "{") == 1 && !v { v = $NF } END { print v }'; }
idle_kv="$(metric vllm:kv_cache_usage_perc)"

bench_args=(--base-url "http://127.0.0.1:$port" --request-rate inf --max-concurrency "$clients"
  --input-len "$input_len" --output-len "$output_len" --vocab-size 151643)
if [ "$warmup" -gt 0 ]; then
  echo "== warm-up: $warmup requests of the same load (not measured)"
  "$bin" bench serve "${bench_args[@]}" --num-prompts "$warmup" --seed 2 >/dev/null ||
    { echo "FAIL: requests failed during the warm-up"; exit 1; }
fi

# VmRSS (kB) once a second while the load runs: "<seconds since start> <kB>".
(
  t=0
  while kill -0 "$server_pid" 2>/dev/null; do
    echo "$t $(awk '/^VmRSS:/ { print $2 }' "/proc/$server_pid/status")"
    sleep 1
    t=$((t + 1))
  done
) >"$work/rss.txt" &
sampler_pid=$!

bench_status=0
json_args=()
[ -n "${LONGCTX_LOAD_JSON:-}" ] && json_args=(--result-json "$LONGCTX_LOAD_JSON")
"$bin" bench serve "${bench_args[@]}" --num-prompts 500 --duration "$seconds" --seed 1 "${json_args[@]}" || bench_status=$?
kill "$sampler_pid" 2>/dev/null || true
wait "$sampler_pid" 2>/dev/null || true
sampler_pid=""

# Everything finished: the running count and the KV usage settle back to idle.
after_kv=""
for _ in $(seq 1 100); do
  after_kv="$(metric vllm:kv_cache_usage_perc)"
  running="$(metric vllm:num_requests_running)"
  [ "$after_kv" = "$idle_kv" ] && [ "$running" = "0" ] && break
  sleep 0.1
done

fail=0
echo "== load test: $clients clients, ${seconds} s (after $warmup warm-up requests), prompts $input_len tokens, outputs $output_len tokens, KV pool $kv_bytes bytes, mmap threshold $mmap_threshold"
if [ "$bench_status" -ne 0 ]; then echo "FAIL: bench serve reported failed requests (exit $bench_status)"; fail=1; fi
echo "KV cache usage: idle $idle_kv, after the run $after_kv"
if [ "$after_kv" != "$idle_kv" ]; then echo "FAIL: KV usage did not return to idle"; fail=1; fi
awk -v w="$window" -v total="$seconds" '
  $2 != "" { t[NR] = $1; r[NR] = $2; n = NR }
  END {
    for (i = 1; i <= n; ++i) {
      if (t[i] < w) { a += r[i]; na++; if (!amin || r[i] < amin) amin = r[i] }
      if (t[i] >= total - w && t[i] < total) { b += r[i]; nb++; if (!bmin || r[i] < bmin) bmin = r[i] }
      if (r[i] > mx) mx = r[i]
    }
    if (na == 0 || nb == 0) { print "FAIL: too few RSS samples (" n ")"; exit 1 }
    for (i = 1; i <= n; i += 5) series = series sprintf(" %.0f", r[i] / 1024)
    print "Server RSS (MiB) every 5 s:" series
    change = (bmin - amin) / amin * 100
    printf "Server RSS (MiB): first %d s min %.1f mean %.1f; last %d s min %.1f mean %.1f; peak %.1f (%d samples)\n",
           w, amin / 1024, a / na / 1024, w, bmin / 1024, b / nb / 1024, mx / 1024, n
    printf "RSS change between the windows: %+.1f%% (minimum: what stays resident between steps)\n", change
    if (change > 10 || change < -10) { print "FAIL: RSS changed by more than 10%"; exit 1 }
  }' "$work/rss.txt" || fail=1

# SIGTERM drains and exits 0.
kill -TERM "$server_pid"
serve_status=0
wait "$server_pid" || serve_status=$?
server_pid=""
if [ "$serve_status" -ne 0 ]; then echo "FAIL: the server exited $serve_status on SIGTERM"; fail=1; fi
[ "$fail" -eq 0 ] && echo "load test: OK"
exit "$fail"

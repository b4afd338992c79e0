#!/usr/bin/env bash
# ctest driver: makes the tiny model, starts `longctx serve` on a free loopback port,
# runs test.mjs with the official openai client, then SIGTERMs the server and expects
# a clean drain (exit 0). Usage: run.sh LONGCTX_BINARY TOKENIZERS_DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
longctx="$1"
tokenizers="$2"
work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then kill -KILL "$server_pid"; fi
  rm -rf "$work"
}
trap cleanup EXIT

[ -d "$here/node_modules/openai" ] || (cd "$here" && npm ci --no-audit --no-fund >/dev/null)
"$longctx" make-model --arch qwen3 --preset tiny --out "$work/tiny" --tokenizers-dir "$tokenizers" >/dev/null
port="$(node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")"
"$longctx" serve --model "$work/tiny" --served-model-name tiny --port "$port" --api-key test-key \
  --kv-cache-memory 268435456 >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do
  if node -e "fetch('http://127.0.0.1:$port/health').then(r=>process.exit(r.status===200?0:1)).catch(()=>process.exit(1))"; then
    break
  fi
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; exit 1; }
  sleep 0.1
done
status=0
node "$here/test.mjs" "http://127.0.0.1:$port/v1" tiny test-key || status=$?
kill -TERM "$server_pid"
server_status=0
wait "$server_pid" || server_status=$?
server_pid=""
if [ "$server_status" != 0 ]; then
  echo "longctx serve exited with $server_status after SIGTERM"
  cat "$work/server.log"
  exit 1
fi
exit "$status"

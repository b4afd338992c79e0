#!/usr/bin/env bash
# The NCCL communicator on a lent multi-GPU machine (docs/cuda.md, "NCCL"):
#   1. one process, one thread per GPU: every collective, then every layout group;
#   2. two processes (two "nodes" of one GPU each) that meet through the TCP rendezvous,
#      while stray connections (garbage, a wrong secret, a silent peer) hit the port.
# Usage: OUT=dir bash scripts/device/nccl_check.sh [dir holding longctx_nccl_check and
# the non-CUDA shared libraries it needs]. Logs go to $OUT; exit 0 when all passed.
set -uo pipefail
BIN_DIR=${1:-build-nccl/devlibs}
OUT=${OUT:-/tmp/nccl_check}
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0  # never NVLink multicast on shared machines (KINDS.md)
# NCCL comes with the machine's PyTorch wheels (nvidia-nccl-cu13) when the toolkit lacks it.
NCCL_DIR=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' 2>/dev/null || true)
export LD_LIBRARY_PATH="$BIN_DIR:${NCCL_DIR}:${LD_LIBRARY_PATH:-}"
BIN="$BIN_DIR/longctx_nccl_check"
chmod +x "$BIN"
nvidia-smi --query-gpu=name,memory.total --format=csv > "$OUT/device.txt" 2>&1
status=0

"$BIN" threads 2>&1 | tee "$OUT/threads.log" || status=1

GPUS=$(nvidia-smi -L 2>/dev/null | wc -l)
if [ "$GPUS" -lt 2 ]; then
  echo "nccl_check: two-process rendezvous run NOT done: this machine has $GPUS GPU(s), it needs 2"
  echo "nccl_check: threads $([ $status = 0 ] && echo PASS || echo FAIL) (world of $GPUS)"
  exit $status
fi
export LONGCTX_RENDEZVOUS_SECRET=device-check-secret
PORT=29517
"$BIN" node --nnodes 2 --node-rank 0 --master-addr 127.0.0.1 --master-port $PORT --gpu 0 > "$OUT/node0.log" 2>&1 &
N0=$!
sleep 1
# Strays: another protocol, a wrong-secret hello, and a silent connection held open.
(exec 3<>/dev/tcp/127.0.0.1/$PORT && printf 'GET / HTTP/1.1\r\n\r\n' >&3 && sleep 1) 2>/dev/null &
(exec 3<>/dev/tcp/127.0.0.1/$PORT && sleep 3) 2>/dev/null &
LONGCTX_RENDEZVOUS_SECRET=wrong "$BIN" node --nnodes 2 --node-rank 1 --master-addr 127.0.0.1 --master-port $PORT \
  --gpu 1 > "$OUT/stray_wrong_secret.log" 2>&1
"$BIN" node --nnodes 2 --node-rank 1 --master-addr 127.0.0.1 --master-port $PORT --gpu 1 > "$OUT/node1.log" 2>&1 || status=1
wait $N0 || status=1
cat "$OUT/node0.log" "$OUT/node1.log" "$OUT/stray_wrong_secret.log"
grep -q "FAIL node 1: rendezvous: node 0 at" "$OUT/stray_wrong_secret.log" || { echo "the wrong-secret node was not rejected"; status=1; }
echo "nccl_check: $([ $status = 0 ] && echo PASS || echo FAIL)"
exit $status

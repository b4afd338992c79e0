# Sourced by the device scripts: find_cuda_libs [--nccl] BINARY...
# For each executable BINARY that ldd (under LD_LIBRARY_PATH=$LIBS) finds libraries missing
# for, looks for libcublasLt.so.13* and libcudart.so.13* (with --nccl also libnccl.so.2*)
# anywhere on the machine (the image may keep them in PyTorch's wheels, not the toolkit) and
# appends their folders to LIBS, the colon list the caller starts. Then prints what is still
# not found; returns 1 if anything is.
find_cuda_libs() {
  local names=('libcublasLt.so.13*' 'libcudart.so.13*') b name lib rc=0
  if [ "${1:-}" = --nccl ]; then
    names+=('libnccl.so.2*')
    shift
  fi
  for b in "$@"; do
    if [ -x "$b" ] && LD_LIBRARY_PATH=$LIBS ldd "$b" | grep "not found" >/dev/null; then  # not -q: under pipefail an early exit can kill ldd and read as "none missing"
      for name in "${names[@]}"; do
        lib=$(find / -name "$name" -not -path '/proc/*' 2>/dev/null | head -1)
        [ -n "$lib" ] && LIBS=$LIBS:$(dirname "$lib")
      done
      LD_LIBRARY_PATH=$LIBS ldd "$b" | grep "not found" && rc=1
    fi
  done
  return $rc
}

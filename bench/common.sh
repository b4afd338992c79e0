# Sourced by the bench/run_*.sh scripts: builds longctx, writes the CPU benchmark models
# when absent, and sets stamp, commit, cpu for the RESULTS.md section headers.
bash scripts/build.sh
mkdir -p models bench/results
for preset in tiny 0.6b; do
  [ -f "models/qwen3-$preset/model.safetensors" ] ||
    ./build/src/longctx make-model --arch qwen3 --preset "$preset" --out "models/qwen3-$preset"
done
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}"
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src bench || echo "+dirty")
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)

// Token sampling from one row of logits. The engine's full sampler (top-k/p, min-p,
// penalties) builds on these; `longctx generate` uses greedy and temperature.
#pragma once

#include <cstdint>
#include <random>

namespace longctx::cpu {

// Index of the largest logit; ties go to the lowest index (as torch.argmax).
int32_t argmax(const float* logits, int64_t n);

// Samples from softmax(logits / temperature) with the given generator; temperature
// <= 0 is greedy. Deterministic for a given generator state.
int32_t sample_with_temperature(const float* logits, int64_t n, float temperature, std::mt19937_64& rng);

}  // namespace longctx::cpu

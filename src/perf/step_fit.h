// Fitting a StepCalibration (perf/hardware.h) to measured steps: non-negative least
// squares of measured seconds on the features [1, sequences, tokens, query-key pairs,
// KV tokens read, tokens of steps with ≤ small_m tokens, tokens > small_m, sequences >
// small_m, roofline GEMM seconds] (perf/hardware.h says what each prices). With nine
// features the exact NNLS solution is found by
// trying every subset of active features (unconstrained least squares on the subset,
// kept when all its coefficients are >= 0) and keeping the smallest residual.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "perf/cost_model.h"

namespace longctx {

struct MeasuredStep {
  std::vector<ChunkWork> chunks;
  double seconds = 0;
};

// `roofline` prices the GEMM feature (its hardware should carry no calibration for the
// model). Errors: fewer steps than features, or no subset with a solution.
// small_m: the backend's GEMM regime switch (0: none; the three regime features are then
// left out; > 0: the roofline GEMM feature is left out instead, gemm_scale = 0).
Result<StepCalibration> fit_step_calibration(std::span<const MeasuredStep> steps, const RooflineCostModel& roofline,
                                             const std::string& model_name, int64_t small_m = 0);

}  // namespace longctx

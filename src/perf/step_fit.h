// Fitting a StepCalibration (perf/hardware.h) to measured steps: non-negative least
// squares of measured seconds on the features [1, sequences, tokens, query-key pairs,
// KV tokens read, roofline GEMM seconds]. With six features the exact NNLS solution is found by
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
Result<StepCalibration> fit_step_calibration(std::span<const MeasuredStep> steps, const RooflineCostModel& roofline,
                                             const std::string& model_name);

}  // namespace longctx

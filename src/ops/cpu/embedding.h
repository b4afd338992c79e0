#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace longctx::cpu {

// out[t, :] = table[ids[t], :] converted to fp32. ids must be < vocab (callers validate).
void embedding(const int32_t* ids, int64_t num_tokens, const void* table, DType table_dtype, int64_t dim,
               float* out);

}  // namespace longctx::cpu

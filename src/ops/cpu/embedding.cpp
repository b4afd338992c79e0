#include "ops/cpu/embedding.h"

#include "ops/cpu/convert_row.h"

namespace longctx::cpu {

void embedding(const int32_t* ids, int64_t num_tokens, const void* table, DType table_dtype, int64_t dim,
               float* out) {
  const size_t row_bytes = static_cast<size_t>(dim) * dtype_size(table_dtype);
  const char* base = static_cast<const char*>(table);
#pragma omp parallel for schedule(static) if (num_tokens * dim > 65536)
  for (int64_t t = 0; t < num_tokens; ++t)
    detail::widen_to_f32(base + static_cast<size_t>(ids[t]) * row_bytes, table_dtype, out + t * dim, dim);
}

}  // namespace longctx::cpu

#pragma once
// Top-k over the last dimension.
// Raw row-major float buffers; outputs first; activation gradients are assigned, parameter
// gradients accumulate (+=).
#include <cstdint>

namespace moe::kernels {

// For each row, the k largest values in descending order with their column indices. Ties go to the
// lower column index (the same order as a stable sort), so results are deterministic.
void topk_rows(int32_t* idx, float* val, const float* x, int64_t rows, int64_t cols, int k);

}  // namespace moe::kernels

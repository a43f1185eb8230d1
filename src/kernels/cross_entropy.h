#pragma once
// Cross-entropy over logits.
// Raw row-major float buffers; outputs first; activation gradients are assigned, parameter
// gradients accumulate (+=).
#include <cstdint>

namespace moe::kernels {

// logits: [n, V]; targets[i] in [0, V) or -1 (ignored). nll[i] = -log softmax(logits[i])[t] (0 for
// ignored rows). Returns the sum of nll over counted rows (double for accuracy).
double cross_entropy_forward(float* nll, const float* logits, const int32_t* targets, int64_t n,
                             int64_t V);
// dlogits[i] = scale * (softmax(logits[i]) - onehot(t)); zero rows for ignored targets.
// dlogits may alias logits.
void cross_entropy_backward(float* dlogits, const float* logits, const int32_t* targets, int64_t n,
                            int64_t V, float scale);

}  // namespace moe::kernels

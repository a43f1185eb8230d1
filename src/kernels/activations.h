#pragma once
// Activations.
// Raw row-major float buffers; outputs first; activation gradients are assigned, parameter
// gradients accumulate (+=).
#include <cstdint>

namespace moe::kernels {

// silu(a) = a * sigmoid(a)
void silu_forward(float* y, const float* a, int64_t n);
void silu_backward(float* da, const float* a, const float* dy, int64_t n);
// Fused SwiGLU: h = silu(g) * u, elementwise over n entries.
void swiglu_forward(float* h, const float* g, const float* u, int64_t n);
// dg = dh * u * silu'(g); du = dh * silu(g). In place is allowed: dg may alias g or dh, du may
// alias u (the SwiGLU backward overwrites the forward's saves).
void swiglu_backward(float* dg, float* du, const float* g, const float* u, const float* dh, int64_t n);

}  // namespace moe::kernels

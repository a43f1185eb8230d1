#pragma once
// Vectorisable math shared by the kernels.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

namespace moe::kernels {

// a * b + c: one fused multiply-add where the CPU has it, written out so that every compiled
// version of a loop (vector body, remainder, alias-check fallback) rounds the same way; the
// kernels are built with -ffp-contract=off, which leaves no other FMA to chance (CMakeLists.txt).
inline float madd(float a, float b, float c) {
#ifdef __FMA__
  return std::fma(a, b, c);
#else
  return a * b + c;
#endif
}

// exp(x) in float, within ~1 ulp (1.01 measured over the float range), written without a libm
// call so that GCC vectorises the loops that use it (without -ffast-math glibc's vector expf is
// never used). Cephes' range reduction
// x = n ln2 + r, |r| <= ln2/2, a degree-6 polynomial for e^r, and 2^n built in the exponent bits
// as 2^(n/2) * 2^(n - n/2) so that n = 128 (x near 88.7) does not overflow early.
// exp(-inf) = 0, exp(+inf) = inf, exp(NaN) = NaN; results below FLT_MIN flush to 0.
inline float exp_f32(float x) {
  constexpr float kLo = -87.33654f, kHi = 88.72283f;
  const float xc = std::min(std::max(x, kLo), kHi);  // NaN passes through
  const float t = madd(xc, 1.44269504088896341f, 12582912.0f);  // 1.5 * 2^23: rounds to an integer
  const float n = t - 12582912.0f;
  float r = madd(n, -0.693359375f, xc);  // ln2 in two parts (Cody-Waite)
  r = madd(n, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = madd(p, r, 1.3981999507e-3f);
  p = madd(p, r, 8.3334519073e-3f);
  p = madd(p, r, 4.1665795894e-2f);
  p = madd(p, r, 1.6666665459e-1f);
  p = madd(p, r, 5.0000001201e-1f);
  p = madd(p, r * r, r) + 1.0f;
  const int32_t ni = std::bit_cast<int32_t>(t) - 0x4B400000;  // n as an integer, in [-126, 128]
  const int32_t n1 = ni >> 1, n2 = ni - n1;
  const float s1 = std::bit_cast<float>((n1 + 127) << 23);
  const float s2 = std::bit_cast<float>((n2 + 127) << 23);
  float y = p * s1 * s2;
  y = x < kLo ? 0.0f : y;
  y = x > kHi ? INFINITY : y;
  return y;
}

}  // namespace moe::kernels

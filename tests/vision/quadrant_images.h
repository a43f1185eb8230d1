#pragma once
// The vision tests' task: n 8x8 one-channel images, each with one bright 4x4 quadrant (its label,
// 0-3) on noise. Learnable in a few epochs by a tiny classifier.
#include <algorithm>

#include "core/rng.h"
#include "vision/image_set.h"

namespace moe::test {

inline vision::ImageSet quadrant_images(int64_t n, uint64_t seed) {
  Rng rng(seed);
  vision::ImageSet s;
  s.n = n, s.rows = 8, s.cols = 8, s.channels = 1, s.num_labels = 4;
  s.pixels.resize(size_t(n * 64));
  s.labels.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) {
    const int q = int(rng.below(4));
    s.labels[size_t(i)] = q;
    for (int y = 0; y < 8; ++y)
      for (int x = 0; x < 8; ++x) {
        const bool on = (y / 4) * 2 + x / 4 == q;
        s.pixels[size_t(i * 64 + y * 8 + x)] = uint8_t(std::clamp((on ? 160 : 60) + 50 * rng.normal(), 0.0, 255.0));
      }
  }
  return s;
}

}  // namespace moe::test

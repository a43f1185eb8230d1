#pragma once
// Labelled images for classification, read from a pair of IDX files (MNIST's format: images
// [n, rows, cols] or [n, rows, cols, channels] of bytes, labels [n]). Fashion-MNIST comes from
// Debian's dataset-fashion-mnist package.
#include <cstdint>
#include <string>
#include <vector>

namespace moe::vision {

struct ImageSet {
  int64_t n = 0, rows = 0, cols = 0, channels = 1;
  std::vector<uint8_t> pixels;  // [n, rows, cols, channels]
  std::vector<int32_t> labels;  // [n], each in [0, num_labels)
  int num_labels = 0;           // 1 + the largest label
  const uint8_t* image(int64_t i) const { return pixels.data() + i * rows * cols * channels; }
};

// moe::Error("[idx] <file>: ...") on a bad file, and naming both files when they disagree.
ImageSet load_image_set(const std::string& images, const std::string& labels);
// Images alone (labels all -1: not counted by the evaluation).
ImageSet load_images(const std::string& images);

// Where dataset-fashion-mnist installs its files.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
// The "train" or "test" split; moe::Error saying which package to install when it is missing.
ImageSet load_fashion_mnist(const std::string& split);

}  // namespace moe::vision

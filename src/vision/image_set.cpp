#include "vision/image_set.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "io/idx.h"

namespace moe::vision {

ImageSet load_images(const std::string& images) {
  IdxArray im = read_idx(images);
  if (im.shape.size() != 3 && im.shape.size() != 4)
    throw Error("[idx] " + images + ": images must have 3 dimensions [n, rows, cols] or 4 [n, rows, cols, channels], not " +
                std::to_string(im.shape.size()));
  ImageSet s;
  s.n = im.shape[0], s.rows = im.shape[1], s.cols = im.shape[2], s.channels = im.shape.size() == 4 ? im.shape[3] : 1;
  s.pixels = std::move(im.data);
  s.labels.assign(size_t(s.n), -1);
  return s;
}

ImageSet load_image_set(const std::string& images, const std::string& labels) {
  ImageSet s = load_images(images);
  const IdxArray lb = read_idx(labels);
  if (lb.shape.size() != 1) throw Error("[idx] " + labels + ": labels must have 1 dimension, not " + std::to_string(lb.shape.size()));
  if (s.n != lb.shape[0])
    throw Error("[idx] " + images + " holds " + std::to_string(s.n) + " images but " + labels + " " +
                std::to_string(lb.shape[0]) + " labels");
  s.labels.assign(lb.data.begin(), lb.data.end());
  for (int32_t l : s.labels) s.num_labels = std::max(s.num_labels, l + 1);
  return s;
}

ImageSet load_fashion_mnist(const std::string& split) {
  if (split != "train" && split != "test") throw Error("[data] fashion-mnist has the splits train and test, not '" + split + "'");
  const std::string stem = std::string(kFashionMnistDir) + "/" + (split == "train" ? "train" : "t10k");
  const std::string images = stem + "-images-idx3-ubyte.gz", labels = stem + "-labels-idx1-ubyte.gz";
  if (!std::filesystem::exists(images))
    throw Error("[data] " + images + " is missing: install Debian's dataset-fashion-mnist (scripts/setup.sh does)");
  return load_image_set(images, labels);
}

}  // namespace moe::vision

#pragma once
// A dense row-major float32 tensor that owns 64-byte aligned storage. Shapes are small vectors. The
// engine computes in f32; only inference weights may stay 16-bit (Param::half, kernels/gemm_16bit.h).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "core/error.h"

namespace moe {

template <class T>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() = default;
  template <class U>
  AlignedAllocator(const AlignedAllocator<U>&) {}
  T* allocate(std::size_t n) {
    void* p = std::aligned_alloc(64, ((n * sizeof(T) + 63) / 64) * 64 + 64);
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t) { std::free(p); }
  template <class U>
  bool operator==(const AlignedAllocator<U>&) const { return true; }
};

template <class T>
using avector = std::vector<T, AlignedAllocator<T>>;

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(Shape shape) : shape_(std::move(shape)), numel_(shape_numel(shape_)), data_(size_t(numel_), 0.0f) {}
  static Tensor zeros(Shape shape) { return Tensor(std::move(shape)); }
  // The shape without storage (has_storage() false) until allocate().
  static Tensor unallocated(Shape shape) {
    Tensor t;
    t.numel_ = shape_numel(shape);
    t.shape_ = std::move(shape);
    return t;
  }
  void allocate() { data_.assign(size_t(numel_), 0.0f); }

  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_.at(i < 0 ? shape_.size() + i : i); }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return numel_; }
  bool empty() const { return numel_ == 0; }
  // False after release_storage(): the shape stays, data() is null.
  bool has_storage() const { return int64_t(data_.size()) == numel_; }
  // Frees the data and keeps the shape: for a weight whose values live elsewhere (Param::half).
  void release_storage() { avector<float>().swap(data_); }

  float* data() { return data_.data(); }
  const float* data() const { return data_.data(); }
  float& operator[](int64_t i) { return data_[i]; }
  float operator[](int64_t i) const { return data_[i]; }

  void zero() {
    if (!data_.empty()) std::memset(data_.data(), 0, data_.size() * sizeof(float));
  }
  // Reshape keeps the data; the element count must not change.
  void reshape(Shape s) {
    if (shape_numel(s) != numel()) throw Error("[tensor] cannot reshape " + shape_str(shape_) + " to " + shape_str(s));
    shape_ = std::move(s);
  }
  // Resize to a new shape, reusing capacity; contents are unspecified (zero when grown).
  void resize(Shape s) {
    shape_ = std::move(s);
    numel_ = shape_numel(shape_);
    data_.resize(size_t(numel_));
  }

 private:
  Shape shape_;
  int64_t numel_ = 0;
  avector<float> data_;
};

}  // namespace moe

// Tensors: a dtype, a shape, strides and shared, 64-byte aligned storage.
//
// Strides are in elements. Packed-bit tensors (DType::b1) are always row-major with the
// last dimension packed into 64-bit words; each row holds `words_per_row` words, a multiple
// of 8 (512 bits) so that vector kernels never need a tail, and every padding bit is zero.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "lowbit/core/dtype.h"
#include "lowbit/core/error.h"

namespace lowbit {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);

// Number of 64-bit words per packed row of k bits: ceil(k / 64) rounded up to a multiple of 8.
constexpr int64_t packed_words_per_row(int64_t k) { return ((k + 511) / 512) * 8; }

class Tensor {
 public:
  Tensor() = default;

  // New zero-filled, contiguous tensor. Dimensions must be >= 0; throws otherwise.
  static Tensor zeros(const Shape& shape, DType dtype);
  // A tensor that copies `values` (its size must equal the product of `shape`).
  template <typename T>
  static Tensor from(const Shape& shape, std::span<const T> values);

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t size(int64_t d) const;
  int64_t numel() const { return shape_numel(shape_); }
  bool defined() const { return storage_ != nullptr; }
  bool is_contiguous() const;
  // For b1 tensors: words per packed row (see packed_words_per_row).
  int64_t words_per_row() const;
  // Bytes of storage this tensor refers to.
  std::size_t nbytes() const { return nbytes_; }

  // Typed access. Throws when T does not match the dtype (uint64_t for b1).
  template <typename T> T* data();
  template <typename T> const T* data() const;
  void* raw() { return static_cast<char*>(storage_.get()) + offset_bytes_; }
  const void* raw() const { return static_cast<const char*>(storage_.get()) + offset_bytes_; }

  // Same storage, new shape (contiguous tensors only; the element count must match).
  Tensor reshape(const Shape& shape) const;
  // Deep copy into new contiguous storage.
  Tensor clone() const;
  // Rows [begin, end) of dimension 0, sharing storage.
  Tensor slice_rows(int64_t begin, int64_t end) const;

  std::string describe() const;  // e.g. "f32[3, 4]"

 private:
  std::shared_ptr<void> storage_;
  std::size_t offset_bytes_ = 0;
  std::size_t nbytes_ = 0;
  DType dtype_ = DType::f32;
  Shape shape_;
  Shape strides_;
  void check_type(DType want) const;
};

template <typename T>
T* Tensor::data() {
  check_type(dtype_of<T>::value);
  return reinterpret_cast<T*>(raw());
}
template <typename T>
const T* Tensor::data() const {
  check_type(dtype_of<T>::value);
  return reinterpret_cast<const T*>(raw());
}

template <typename T>
Tensor Tensor::from(const Shape& shape, std::span<const T> values) {
  Tensor t = zeros(shape, dtype_of<T>::value);
  LOWBIT_CHECK(static_cast<int64_t>(values.size()) == t.numel(), "Tensor::from: ", values.size(),
               " values given for shape ", shape_str(shape), " (", t.numel(), " elements expected)");
  T* d = t.data<T>();
  for (std::size_t i = 0; i < values.size(); ++i) d[i] = values[i];
  return t;
}

}  // namespace lowbit

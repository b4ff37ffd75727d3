#include "lowbit/core/tensor.h"

#include <cstring>
#include <limits>

#include "lowbit/core/aligned.h"

namespace lowbit {

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  return out + "]";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    LOWBIT_CHECK(d >= 0, "negative dimension ", d, " in shape ", shape_str(s));
    LOWBIT_CHECK(d == 0 || n <= std::numeric_limits<int64_t>::max() / d, "shape ", shape_str(s),
                 " has too many elements");
    n *= d;
  }
  return n;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = shape;
  const int64_t n = shape_numel(shape);
  t.strides_.assign(shape.size(), 1);
  std::size_t bytes;
  if (dtype == DType::b1) {
    LOWBIT_CHECK(!shape.empty(), "a packed-bit tensor needs at least one dimension");
    const int64_t k = shape.back();
    const int64_t rows = k == 0 ? 0 : n / k;
    const int64_t wpr = packed_words_per_row(k);
    // Strides of a b1 tensor count words for the outer dimensions and bits for the last.
    int64_t stride = wpr;
    t.strides_.back() = 1;
    for (int64_t i = static_cast<int64_t>(shape.size()) - 2; i >= 0; --i) {
      t.strides_[i] = stride;
      stride *= shape[i];
    }
    bytes = static_cast<std::size_t>(rows * wpr) * sizeof(uint64_t);
  } else {
    int64_t stride = 1;
    for (int64_t i = static_cast<int64_t>(shape.size()) - 1; i >= 0; --i) {
      t.strides_[i] = stride;
      stride *= shape[i];
    }
    bytes = static_cast<std::size_t>(n) * dtype_size(dtype);
  }
  t.storage_ = std::shared_ptr<void>(aligned_alloc_zeroed(bytes), AlignedDeleter{});
  t.nbytes_ = bytes;
  return t;
}

int64_t Tensor::size(int64_t d) const {
  const int64_t n = dim();
  if (d < 0) d += n;
  LOWBIT_CHECK(d >= 0 && d < n, "dimension ", d, " out of range for ", describe());
  return shape_[d];
}

bool Tensor::is_contiguous() const {
  if (dtype_ == DType::b1) return true;
  int64_t stride = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (shape_[i] != 1 && strides_[i] != stride) return false;
    stride *= shape_[i];
  }
  return true;
}

int64_t Tensor::words_per_row() const {
  LOWBIT_CHECK(dtype_ == DType::b1, "words_per_row() asked of a ", dtype_name(dtype_), " tensor");
  return packed_words_per_row(shape_.back());
}

void Tensor::check_type(DType want) const {
  LOWBIT_CHECK(storage_ != nullptr, "access to an undefined tensor");
  LOWBIT_CHECK(want == dtype_, "tensor ", describe(), " accessed as ", dtype_name(want));
}

Tensor Tensor::reshape(const Shape& shape) const {
  LOWBIT_CHECK(defined(), "reshape of an undefined tensor");
  LOWBIT_CHECK(dtype_ != DType::b1 || (!shape.empty() && shape.back() == shape_.back()),
               "a packed-bit tensor can only be reshaped with the same last dimension; ",
               describe(), " to ", shape_str(shape));
  LOWBIT_CHECK(is_contiguous(), "reshape of a non-contiguous tensor ", describe());
  LOWBIT_CHECK(shape_numel(shape) == numel(), "cannot reshape ", describe(), " to ", shape_str(shape));
  Tensor t = *this;
  t.shape_ = shape;
  t.strides_.assign(shape.size(), 1);
  int64_t stride = dtype_ == DType::b1 ? packed_words_per_row(shape.back()) : 1;
  for (int64_t i = static_cast<int64_t>(shape.size()) - (dtype_ == DType::b1 ? 2 : 1); i >= 0; --i) {
    t.strides_[i] = stride;
    stride *= shape[i];
  }
  return t;
}

Tensor Tensor::clone() const {
  LOWBIT_CHECK(defined(), "clone of an undefined tensor");
  LOWBIT_CHECK(is_contiguous(), "clone of a non-contiguous tensor ", describe());
  Tensor t = zeros(shape_, dtype_);
  std::memcpy(t.raw(), raw(), t.nbytes_);
  return t;
}

Tensor Tensor::slice_rows(int64_t begin, int64_t end) const {
  LOWBIT_CHECK(dim() >= 1, "slice_rows of a scalar tensor");
  LOWBIT_CHECK(dtype_ != DType::b1 || dim() >= 2, "slice_rows of a one-row packed-bit tensor ", describe());
  LOWBIT_CHECK(0 <= begin && begin <= end && end <= shape_[0], "rows [", begin, ", ", end,
               ") out of range for ", describe());
  Tensor t = *this;
  t.shape_[0] = end - begin;
  const std::size_t unit = dtype_ == DType::b1 ? sizeof(uint64_t) : dtype_size(dtype_);
  const int64_t row = strides_[0];
  t.offset_bytes_ += static_cast<std::size_t>(begin * row) * unit;
  t.nbytes_ = static_cast<std::size_t>((end - begin) * row) * unit;
  return t;
}

std::string Tensor::describe() const { return std::string(dtype_name(dtype_)) + shape_str(shape_); }

}  // namespace lowbit

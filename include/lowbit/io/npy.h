// NumPy .npy files (format versions 1.0, 2.0 and 3.0), the array format of `lowbit run`.
//
// Reading accepts C-order arrays of little-endian (or byte-order-free) i1, u1, i2, i4, i8 and f4
// data; everything else (Fortran order, big-endian, other dtypes, object arrays) is an error.
// Every error names the file: a bad magic string, an unsupported version, a malformed header
// dictionary, or a data section shorter than the shape needs ("truncated"). Writing produces
// version 1.0 files with the header padded to a multiple of 64 bytes.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/core/tensor.h"

namespace lowbit::io {

enum class NpyType : uint8_t { i8, u8, i16, i32, i64, f32 };

struct NpyArray {
  NpyType type = NpyType::f32;
  Shape shape;
  std::vector<uint8_t> data;  // little-endian, C order
  int64_t numel() const { return shape_numel(shape); }
  template <typename T>
  const T* as() const { return reinterpret_cast<const T*>(data.data()); }
  template <typename T>
  T* as() { return reinterpret_cast<T*>(data.data()); }
};

const char* npy_type_descr(NpyType t);  // "<f4", "|i1", ...
int npy_type_size(NpyType t);

NpyArray read_npy(const std::string& path);
// `source` names the bytes in error messages.
NpyArray parse_npy(const std::vector<uint8_t>& bytes, const std::string& source);
std::vector<uint8_t> serialize_npy(const NpyArray& a);
void write_npy(const std::string& path, const NpyArray& a);

template <typename T> struct npy_type_of;
template <> struct npy_type_of<int8_t> { static constexpr NpyType value = NpyType::i8; };
template <> struct npy_type_of<uint8_t> { static constexpr NpyType value = NpyType::u8; };
template <> struct npy_type_of<int16_t> { static constexpr NpyType value = NpyType::i16; };
template <> struct npy_type_of<int32_t> { static constexpr NpyType value = NpyType::i32; };
template <> struct npy_type_of<int64_t> { static constexpr NpyType value = NpyType::i64; };
template <> struct npy_type_of<float> { static constexpr NpyType value = NpyType::f32; };

template <typename T>
NpyArray make_npy(const Shape& shape, const T* values) {
  NpyArray a;
  a.type = npy_type_of<T>::value;
  a.shape = shape;
  const auto n = static_cast<std::size_t>(shape_numel(shape));
  a.data.resize(n * sizeof(T));
  if (n) std::copy_n(reinterpret_cast<const uint8_t*>(values), n * sizeof(T), a.data.data());
  return a;
}

}  // namespace lowbit::io

// Model files: a safetensors-style container (docs/formats.md has the byte-level layout).
//
//   [8 bytes]   N, the header length, unsigned little-endian
//   [N bytes]   a JSON object: one entry per tensor, name -> {"dtype", "shape", "data_offsets"},
//               plus "__metadata__": a JSON object with "format": "lowbit", "format_version",
//               and whatever the producer records (architecture, quantization, packing)
//   [rest]      raw little-endian tensor data; data_offsets are [begin, end) relative to the
//               start of this section, and every tensor begins 64-byte aligned in the file
//
// The format is deliberately the one a numpy user can read with json + np.frombuffer
// (scripts/read_model.py). The JSON library stays private to lowbit, so the metadata crosses
// this API as JSON text.
//
// Writing is atomic: the bytes go to a temporary file in the destination folder, are flushed
// to disk, and the temporary file is renamed over the destination; a failure at any point
// leaves an existing file untouched. Reading validates everything before use, and any
// inconsistency is a lowbit::Error naming the file and the problem.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lowbit/core/error.h"
#include "lowbit/core/tensor.h"

namespace lowbit::io {

inline constexpr int kFormatVersion = 1;

// Element types a model file can hold. Packed bit matrices are U64 words (see formats.md).
enum class ElemType : uint8_t { F32, I8, U8, I16, I32, U64 };

std::string_view elem_type_name(ElemType t);  // "F32", "I8", ...
int elem_type_size(ElemType t);

template <typename T> struct elem_type_of;
template <> struct elem_type_of<float> { static constexpr ElemType value = ElemType::F32; };
template <> struct elem_type_of<int8_t> { static constexpr ElemType value = ElemType::I8; };
template <> struct elem_type_of<uint8_t> { static constexpr ElemType value = ElemType::U8; };
template <> struct elem_type_of<int16_t> { static constexpr ElemType value = ElemType::I16; };
template <> struct elem_type_of<int32_t> { static constexpr ElemType value = ElemType::I32; };
template <> struct elem_type_of<uint64_t> { static constexpr ElemType value = ElemType::U64; };

// An n-dimensional array as stored in a model file: a type, a shape and 64-byte aligned,
// zero-initialised storage (so U64 words can be handed to the bit kernels without a copy).
class Array {
 public:
  Array() = default;
  static Array zeros(ElemType type, const Shape& shape);
  template <typename T>
  static Array from(const Shape& shape, std::span<const T> values);

  ElemType type() const { return type_; }
  const Shape& shape() const { return shape_; }
  int64_t numel() const { return shape_numel(shape_); }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel()) * elem_type_size(type_); }
  const uint8_t* bytes() const { return data_.get(); }
  uint8_t* bytes() { return data_.get(); }

  // Typed views; throw when T does not match the element type.
  template <typename T>
  std::span<const T> values() const {
    check(elem_type_of<T>::value);
    return {reinterpret_cast<const T*>(data_.get()), static_cast<std::size_t>(numel())};
  }
  template <typename T>
  std::span<T> values() {
    check(elem_type_of<T>::value);
    return {reinterpret_cast<T*>(data_.get()), static_cast<std::size_t>(numel())};
  }

 private:
  ElemType type_ = ElemType::U8;
  Shape shape_;
  std::shared_ptr<uint8_t> data_;
  void check(ElemType want) const;
};

template <typename T>
Array Array::from(const Shape& shape, std::span<const T> values) {
  Array a = zeros(elem_type_of<T>::value, shape);
  LOWBIT_CHECK(static_cast<int64_t>(values.size()) == a.numel(), "io::Array::from: ", values.size(),
               " values for shape ", shape_str(shape), " (", a.numel(), " expected)");
  T* d = reinterpret_cast<T*>(a.bytes());
  for (std::size_t i = 0; i < values.size(); ++i) d[i] = values[i];
  return a;
}

// The contents of a model file. Tensors keep the order they were added in (the file stores
// them in that order); names are unique and must not be "__metadata__".
struct ModelFile {
  // JSON object text of "__metadata__". save() adds "format" and "format_version"; load()
  // returns them as read.
  std::string metadata = "{}";
  std::vector<std::pair<std::string, Array>> tensors;

  void add(const std::string& name, Array a);
  // The tensor called `name`; throws (naming `name`) when there is none.
  const Array& get(const std::string& name) const;
  bool contains(const std::string& name) const;
};

// The complete file image (header and data) of `model`.
std::vector<uint8_t> serialize(const ModelFile& model);
// Parses and validates a file image; `source` names it in error messages (usually the path).
ModelFile parse(std::span<const uint8_t> bytes, const std::string& source);

// Atomic write (see above). Throws lowbit::Error naming `path` on any failure.
void save(const std::string& path, const ModelFile& model);
// Reads and validates `path`.
ModelFile load(const std::string& path);

}  // namespace lowbit::io

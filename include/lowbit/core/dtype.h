// Element types of lowbit tensors.
#pragma once

#include <cstdint>
#include <string_view>

namespace lowbit {

// b1 is a packed bit: 64 elements per uint64_t word, little-endian bit order (element j of a
// row is bit j % 64 of word j / 64). For ±1 tensors bit 1 means +1 and bit 0 means -1.
enum class DType : uint8_t { f32, i8, u8, i16, i32, b1 };

constexpr std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::i8: return "i8";
    case DType::u8: return "u8";
    case DType::i16: return "i16";
    case DType::i32: return "i32";
    case DType::b1: return "b1";
  }
  return "?";
}

// Size in bytes of one element; 0 for b1, whose storage is counted in 64-bit words.
constexpr int dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::i8: return 1;
    case DType::u8: return 1;
    case DType::i16: return 2;
    case DType::i32: return 4;
    case DType::b1: return 0;
  }
  return 0;
}

template <typename T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::f32; };
template <> struct dtype_of<int8_t> { static constexpr DType value = DType::i8; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::u8; };
template <> struct dtype_of<int16_t> { static constexpr DType value = DType::i16; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::i32; };
template <> struct dtype_of<uint64_t> { static constexpr DType value = DType::b1; };

}  // namespace lowbit

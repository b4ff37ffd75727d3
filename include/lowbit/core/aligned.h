// Aligned allocation. All tensor storage is 64-byte aligned (one cache line, one zmm).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace lowbit {

inline constexpr std::size_t kAlignment = 64;

// Returns zero-initialised storage of at least `bytes` bytes aligned to kAlignment.
// Throws lowbit::Error when the allocation fails.
void* aligned_alloc_zeroed(std::size_t bytes);
// The same without the zeroing, for scratch buffers that are written in full before any read.
void* aligned_alloc_uninit(std::size_t bytes);
void aligned_free(void* p) noexcept;

struct AlignedDeleter {
  void operator()(void* p) const noexcept { aligned_free(p); }
};

template <typename T>
using AlignedPtr = std::unique_ptr<T[], AlignedDeleter>;

template <typename T>
AlignedPtr<T> make_aligned(std::size_t count) {
  return AlignedPtr<T>(static_cast<T*>(aligned_alloc_zeroed(count * sizeof(T))));
}

template <typename T>
AlignedPtr<T> make_aligned_uninit(std::size_t count) {
  return AlignedPtr<T>(static_cast<T*>(aligned_alloc_uninit(count * sizeof(T))));
}

inline bool is_aligned(const void* p, std::size_t alignment = kAlignment) {
  return (reinterpret_cast<std::uintptr_t>(p) % alignment) == 0;
}

}  // namespace lowbit

#include "lowbit/core/aligned.h"

#include <cstdlib>
#include <cstring>

#include "lowbit/core/error.h"

namespace lowbit {

namespace {
std::size_t rounded_size(std::size_t bytes) {
  // std::aligned_alloc needs a size that is a multiple of the alignment; round up, and never
  // ask for zero bytes so that every tensor has a distinct, dereferenceable base pointer.
  const std::size_t rounded = ((bytes + kAlignment - 1) / kAlignment) * kAlignment;
  return rounded == 0 ? kAlignment : rounded;
}
}  // namespace

void* aligned_alloc_uninit(std::size_t bytes) {
  void* p = std::aligned_alloc(kAlignment, rounded_size(bytes));
  if (p == nullptr) fail("out of memory: could not allocate ", bytes, " bytes");
  return p;
}

void* aligned_alloc_zeroed(std::size_t bytes) {
  void* p = aligned_alloc_uninit(bytes);
  std::memset(p, 0, rounded_size(bytes));
  return p;
}

void aligned_free(void* p) noexcept { std::free(p); }

}  // namespace lowbit

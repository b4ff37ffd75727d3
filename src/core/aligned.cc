#include "lowbit/core/aligned.h"

#include <cstdlib>
#include <cstring>

#include "lowbit/core/error.h"

namespace lowbit {

void* aligned_alloc_zeroed(std::size_t bytes) {
  // std::aligned_alloc needs a size that is a multiple of the alignment; round up, and never
  // ask for zero bytes so that every tensor has a distinct, dereferenceable base pointer.
  std::size_t rounded = ((bytes + kAlignment - 1) / kAlignment) * kAlignment;
  if (rounded == 0) rounded = kAlignment;
  void* p = std::aligned_alloc(kAlignment, rounded);
  if (p == nullptr) fail("out of memory: could not allocate ", bytes, " bytes");
  std::memset(p, 0, rounded);
  return p;
}

void aligned_free(void* p) noexcept { std::free(p); }

}  // namespace lowbit

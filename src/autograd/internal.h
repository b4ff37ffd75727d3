// Helpers shared by the op implementations (private to src/autograd).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "lowbit/autograd/var.h"
#include "lowbit/core/error.h"
#include "lowbit/core/threading.h"

namespace lowbit::autograd::detail {

inline std::span<const float> cspan(const Tensor& t) {
  return {t.data<float>(), static_cast<std::size_t>(t.numel())};
}
inline std::span<float> mspan(Tensor& t) { return {t.data<float>(), static_cast<std::size_t>(t.numel())}; }

inline Tensor new_like(const Tensor& t) { return Tensor::zeros(t.shape(), DType::f32); }

// The contiguous f32 value of an op argument; throws naming the op otherwise.
const Tensor& checked_value(const Var& v, const char* op, const char* arg);

// Elementwise loops are worth splitting across threads only when large: below this many
// elements the pool's hand-off costs more than it saves.
inline constexpr int64_t kElementGrain = 1 << 15;

inline void parallel_elements(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  parallel_for(0, n, kElementGrain, fn);
}

// Calls write(span) so that it produces a parent's gradient contribution: directly into the
// parent's gradient buffer when that was just allocated (it holds zeros: overwrite is the same
// as accumulate), else into a scratch buffer that is then added. Lets quantizer backward
// functions, which overwrite their output, accumulate without a copy in the common case.
void accumulate_into(Node& parent, const std::function<void(std::span<float>)>& write);

// Adds src to the parent's gradient (allocating it as needed).
void add_to_grad(Node& parent, std::span<const float> src);

}  // namespace lowbit::autograd::detail

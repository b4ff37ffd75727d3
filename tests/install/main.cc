// Uses the installed library through its public headers only: a tensor, CPU detection and
// a 2x2 float GEMM. Exits non-zero when anything is off.
#include <cmath>
#include <cstdio>
#include <vector>

#include "lowbit/core/cpu.h"
#include "lowbit/core/error.h"
#include "lowbit/core/tensor.h"
#include "lowbit/core/version.h"
#include "lowbit/kernels/sgemm.h"

int main() {
  try {
    const std::vector<float> av{1, 2, 3, 4}, bv{5, 6, 7, 8};
    lowbit::Tensor a = lowbit::Tensor::from<float>({2, 2}, av);
    lowbit::Tensor b = lowbit::Tensor::from<float>({2, 2}, bv);
    lowbit::Tensor c = lowbit::Tensor::zeros({2, 2}, lowbit::DType::f32);
    lowbit::kernels::sgemm(false, false, 2, 2, 2, 1.0f, a.data<float>(), 2, b.data<float>(), 2, 0.0f,
                           c.data<float>(), 2);
    const float want[4] = {19, 22, 43, 50};
    for (int i = 0; i < 4; ++i) {
      if (std::fabs(c.data<float>()[i] - want[i]) > 1e-5f) {
        std::fprintf(stderr, "sgemm: c[%d] = %g, expected %g\n", i, c.data<float>()[i], want[i]);
        return 1;
      }
    }
    const auto features = lowbit::cpu::feature_names(lowbit::cpu::detected_features());
    std::printf("lowbit %s: %s, %zu CPU features detected, 2x2 sgemm correct\n", lowbit::version().c_str(),
                c.describe().c_str(), features.size());
    return 0;
  } catch (const lowbit::Error& e) {
    std::fprintf(stderr, "lowbit error: %s\n", e.what());
    return 1;
  }
}

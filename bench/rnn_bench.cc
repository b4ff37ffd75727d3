// The fused recurrent ops at language-model sizes: one BPTT window (T = 35 steps, batch 20,
// PTB's 300 units) forward, and forward + backward. Items are tokens (T·B).
//
// Arguments: units (input = cells), variant (0 plain LSTM, 1 LSTM with CIFG, peephole, projection
// to units/2 and layer norm, 2 GRU, 3 tanh RNN), backward (0/1).
#include <benchmark/benchmark.h>

#include <random>

#include "lowbit/autograd/rnn.h"

namespace {
using namespace lowbit;
using namespace lowbit::autograd;

Tensor rnd(const Shape& s, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(-0.1f, 0.1f);
  Tensor t = Tensor::zeros(s, DType::f32);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(g);
  return t;
}

void BM_RnnWindow(benchmark::State& state) {
  const int64_t T = 35, B = 20, C = state.range(0), variant = state.range(1);
  const bool with_backward = state.range(2) != 0;
  const Var x(rnd({T, B, C}, 1), with_backward);
  LstmConfig cfg;
  if (variant == 1) cfg.cifg = cfg.peephole = cfg.projection = cfg.layer_norm = true;
  const int64_t G = variant == 2 ? 3 : variant == 3 ? 1 : cfg.gates();
  const int64_t P = cfg.projection ? C / 2 : C;
  const Var wx(rnd({G * C, C}, 2), with_backward), wh(rnd({G * C, P}, 3), with_backward);
  const Var b(rnd({G * C}, 4), with_backward), b2(rnd({G * C}, 5), with_backward);
  LstmWeights w{wx, wh, b, {}, {}, {}, {}};
  if (variant == 1) {
    w.peephole = Var(rnd({(G - 1) * C}, 6), with_backward);
    w.proj_w = Var(rnd({P, C}, 7), with_backward);
    w.proj_b = Var(rnd({P}, 8), with_backward);
    w.ln = Var(rnd({G * C}, 9), with_backward);
  }
  const Tensor g = rnd({T, B, P}, 10);
  for (auto _ : state) {
    Var y = variant == 2   ? gru(x, Var(), GruWeights{wx, wh, b, b2})
            : variant == 3 ? rnn_tanh(x, Var(), RnnWeights{wx, wh, b})
                           : lstm(x, Var(), Var(), w, cfg);
    if (with_backward) backward(y, g);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(state.iterations() * T * B);
}

BENCHMARK(BM_RnnWindow)
    ->ArgNames({"units", "variant", "backward"})
    ->ArgsProduct({{300}, {0, 1, 2, 3}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

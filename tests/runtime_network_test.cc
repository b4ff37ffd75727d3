// Integer runtime against independent references: a direct-convolution integer interpreter of
// the same layer specifications (bit-exact), and a double-precision float graph of the trained
// network (linear -> max-pool -> batch norm -> sign / k-bit / logits) exported through the fold
// helpers. Also save -> load, batching, validation and the eval data path.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <filesystem>
#include <limits>
#include <random>
#include <variant>
#include <vector>

#include "lowbit/core/error.h"
#include "lowbit/data/cifar.h"
#include "lowbit/data/idx.h"
#include "lowbit/io/model_file.h"
#include "lowbit/quant/kbit.h"
#include "lowbit/runtime/fold.h"
#include "lowbit/runtime/network.h"
#include "test_util.h"

namespace lowbit::runtime {
namespace {

namespace fs = std::filesystem;

// ---- independent integer reference ----------------------------------------------------------

struct RefLayer {
  bool dense = false;
  Conv2dSpec spec;  // dense layers are stored with kernel = 0 (resolved at run time)
};

struct RefAct {
  int64_t h, w, c;
  bool bits;                // ±1 values
  std::vector<int64_t> v;   // HWC values: codes 0..255 or ±1
  std::vector<float> logits;
};

RefAct ref_layer(const RefLayer& L, const RefAct& in) {
  const Conv2dSpec& s = L.spec;
  const int64_t kh = L.dense ? in.h : s.kernel_h, kw = L.dense ? in.w : s.kernel_w;
  const int64_t pad = L.dense ? 0 : s.pad, stride = L.dense ? 1 : s.stride, co = s.out_channels;
  const int64_t oh = (in.h + 2 * pad - kh) / stride + 1, ow = (in.w + 2 * pad - kw) / stride + 1;
  std::vector<int64_t> acc(static_cast<std::size_t>(oh * ow * co));
  for (int64_t y = 0; y < oh; ++y)
    for (int64_t x = 0; x < ow; ++x)
      for (int64_t n = 0; n < co; ++n) {
        int64_t sum = 0;
        for (int64_t i = 0; i < kh; ++i)
          for (int64_t j = 0; j < kw; ++j) {
            const int64_t iy = y * stride - pad + i, ix = x * stride - pad + j;
            if (iy < 0 || iy >= in.h || ix < 0 || ix >= in.w) continue;
            for (int64_t c = 0; c < in.c; ++c) {
              const int64_t v = in.v[(iy * in.w + ix) * in.c + c];
              const int64_t a = in.bits ? v : 2 * v - s.input_zero2;
              sum += s.weight[((n * kh + i) * kw + j) * in.c + c] * a;
            }
          }
        acc[(y * ow + x) * co + n] = sum;
      }
  int64_t ph = oh, pw = ow;
  if (s.pool && !L.dense) {
    ph = (oh - s.pool->kernel) / s.pool->stride + 1;
    pw = (ow - s.pool->kernel) / s.pool->stride + 1;
    std::vector<int64_t> p(static_cast<std::size_t>(ph * pw * co), std::numeric_limits<int64_t>::min());
    for (int64_t y = 0; y < ph; ++y)
      for (int64_t x = 0; x < pw; ++x)
        for (int64_t n = 0; n < co; ++n)
          for (int64_t i = 0; i < s.pool->kernel; ++i)
            for (int64_t j = 0; j < s.pool->kernel; ++j)
              p[(y * pw + x) * co + n] = std::max(
                  p[(y * pw + x) * co + n], acc[((y * s.pool->stride + i) * ow + x * s.pool->stride + j) * co + n]);
    acc = p;
  }
  RefAct out{ph, pw, co, false, {}, {}};
  for (int64_t r = 0; r < ph * pw; ++r)
    for (int64_t n = 0; n < co; ++n) {
      const int64_t a = acc[r * co + n];
      if (auto* e = std::get_if<SignEpilogue>(&s.epilogue)) {
        const bool f = !e->flip.empty() && e->flip[n];
        out.bits = true;
        out.v.push_back(((a >= e->threshold[n]) != f) ? 1 : -1);
      } else if (auto* k = std::get_if<KbitEpilogue>(&s.epilogue)) {
        const int64_t l = (1 << k->bits) - 1;
        const bool f = !k->flip.empty() && k->flip[n];
        int64_t code = 0;
        for (int64_t j = 0; j < l; ++j) code += (a >= k->threshold[n * l + j]) != f;
        out.v.push_back(code);
      } else {
        const auto& af = std::get<AffineEpilogue>(s.epilogue);
        out.logits.push_back(af.scale[n] * static_cast<float>(a) + af.bias[n]);
      }
    }
  return out;
}

std::vector<float> ref_logits(const std::vector<RefLayer>& layers, const InputSpec& in, const uint8_t* img) {
  RefAct a{in.height, in.width, in.channels, false, {}, {}};
  const int64_t hw = in.height * in.width;
  a.v.resize(static_cast<std::size_t>(in.features()));
  for (int64_t p = 0; p < hw; ++p)
    for (int64_t c = 0; c < in.channels; ++c)
      a.v[p * in.channels + c] = in.layout == InputLayout::hwc ? img[p * in.channels + c] : img[c * hw + p];
  for (const RefLayer& l : layers) a = ref_layer(l, a);
  return a.logits;
}

// ---- random networks ------------------------------------------------------------------------

struct Builder {
  std::mt19937_64 rng;
  Network net;
  std::vector<RefLayer> ref;
  int64_t h, w, c;
  bool bits = false;
  Builder(const InputSpec& in, uint64_t seed) : rng(seed), net(in), h(in.height), w(in.width), c(in.channels) {}

  int rand_int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

  // Weights: ±1 on bits; on codes either ±1 (binary) or odd k-bit codes.
  std::vector<int8_t> weights(int64_t count, int wbits) {
    std::vector<int8_t> v(static_cast<std::size_t>(count));
    const int l = (1 << wbits) - 1;
    for (auto& x : v) x = static_cast<int8_t>(bits || wbits == 1 ? (rand_int(0, 1) ? 1 : -1) : 2 * rand_int(0, l) - l);
    return v;
  }
  // Thresholds spread around 0 over roughly the accumulator's standard deviation.
  int32_t thr(int64_t k, int z2) {
    const double sd = std::sqrt(static_cast<double>(k)) * (bits ? 1.0 : 150.0 + z2 * 0.0);
    return static_cast<int32_t>(std::uniform_real_distribution<double>(-sd, sd)(rng));
  }
  Epilogue epilogue(const std::string& kind, int64_t co, int64_t k, int z2, int abits = 2) {
    if (kind == "sign") {
      SignEpilogue e;
      for (int64_t n = 0; n < co; ++n) {
        e.threshold.push_back(thr(k, z2));
        e.flip.push_back(static_cast<uint8_t>(rand_int(0, 1)));
      }
      return e;
    }
    if (kind == "kbit") {
      KbitEpilogue e;
      e.bits = abits;
      const int l = (1 << abits) - 1;
      for (int64_t n = 0; n < co; ++n) {
        std::vector<int32_t> t;
        for (int j = 0; j < l; ++j) t.push_back(thr(k, z2));
        std::sort(t.begin(), t.end());
        e.threshold.insert(e.threshold.end(), t.begin(), t.end());
        e.flip.push_back(static_cast<uint8_t>(rand_int(0, 1)));
      }
      return e;
    }
    AffineEpilogue e;
    for (int64_t n = 0; n < co; ++n) {
      e.scale.push_back(std::uniform_real_distribution<float>(0.01f, 0.1f)(rng));
      e.bias.push_back(std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng));
    }
    return e;
  }
  void after(const Epilogue& e, int64_t nh, int64_t nw, int64_t co) {
    h = nh;
    w = nw;
    c = co;
    bits = std::holds_alternative<SignEpilogue>(e);
  }
  void dense(int64_t out, const std::string& epi, int z2 = 0, int wbits = 1, int abits = 2) {
    const int64_t k = h * w * c;
    DenseSpec d{out, weights(out * k, wbits), epilogue(epi, out, k, z2, abits), bits ? 0 : z2};
    net.add_dense(d);
    RefLayer r;
    r.dense = true;
    r.spec.out_channels = out;
    r.spec.weight = d.weight;
    r.spec.epilogue = d.epilogue;
    r.spec.input_zero2 = d.input_zero2;
    ref.push_back(r);
    after(d.epilogue, 1, 1, out);
  }
  void conv(int64_t out, const std::string& epi, bool pool, int z2 = 0, int64_t kernel = 3, int64_t stride = 1,
            int64_t pad = 1, int abits = 2) {
    Conv2dSpec s;
    s.out_channels = out;
    s.kernel_h = s.kernel_w = kernel;
    s.stride = stride;
    s.pad = pad;
    s.weight = weights(out * kernel * kernel * c, 1);
    s.epilogue = epilogue(epi, out, kernel * kernel * c, z2, abits);
    s.input_zero2 = bits ? 0 : z2;
    if (pool) s.pool = MaxPool{2, 2};
    net.add_conv2d(s);
    ref.push_back(RefLayer{false, s});
    int64_t oh = (h + 2 * pad - kernel) / stride + 1, ow = (w + 2 * pad - kernel) / stride + 1;
    if (pool) oh = (oh - 2) / 2 + 1, ow = (ow - 2) / 2 + 1;
    after(s.epilogue, oh, ow, out);
  }
};

Tensor random_images(int64_t n, int64_t features, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Tensor t = Tensor::zeros({n, features}, DType::u8);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<uint8_t>()[i] = static_cast<uint8_t>(rng());
  return t;
}

// Logits of the runtime equal the reference's bit for bit (they are the same float formula on
// the same integer accumulators), on every instruction-set level.
void expect_matches_reference(Builder& b, int64_t n, uint64_t seed) {
  const InputSpec& in = b.net.input();
  const Tensor images = random_images(n, in.features(), seed);
  std::vector<std::vector<float>> want;
  for (int64_t i = 0; i < n; ++i) want.push_back(ref_logits(b.ref, in, images.data<uint8_t>() + i * in.features()));
  lowbit::testing::for_each_isa([&](cpu::IsaLevel) {
    const Tensor got = b.net.logits(images);
    ASSERT_EQ(got.size(0), n);
    ASSERT_EQ(got.size(1), b.net.num_classes());
    int64_t bad = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < got.size(1); ++c) bad += got.data<float>()[i * got.size(1) + c] != want[i][c];
    EXPECT_EQ(bad, 0);
  });
}

TEST(RuntimeNetwork, BinaryMlpMatchesIntegerReference) {
  Builder b(InputSpec{7, 5, 1, InputLayout::hwc, 2.0 / 255, -1.0}, 1);
  b.dense(70, "sign", 255);
  b.dense(67, "sign");
  b.dense(10, "affine");
  expect_matches_reference(b, 37, 11);
}

TEST(RuntimeNetwork, KbitMlpMatchesIntegerReference) {
  Builder b(InputSpec{6, 6, 1, InputLayout::hwc, 1.0 / 255, 0.0}, 2);
  b.dense(40, "kbit", 0, 2, 2);   // 2-bit weights, 2-bit activations
  b.dense(30, "kbit", 0, 3, 3);   // 3-bit weights on 2-bit codes -> 3-bit codes
  b.dense(10, "affine", 0, 4);    // 4-bit weights on 3-bit codes
  expect_matches_reference(b, 29, 12);
}

TEST(RuntimeNetwork, BinaryConvNetMatchesIntegerReference) {
  Builder b(InputSpec{9, 7, 3, InputLayout::chw, 2.0 / 255, -1.0}, 3);
  b.conv(16, "sign", true, 255);     // 3x3 pad 1 on pixels, max-pool (odd sizes: floor)
  b.conv(70, "sign", true);          // on bits, 70 channels: K = 144 bits
  b.conv(65, "kbit", false, 0, 3, 2, 1);  // strided, k-bit output
  b.dense(33, "sign");               // dense on a spatial k-bit input (flatten)
  b.dense(10, "affine");
  expect_matches_reference(b, 13, 13);

  Builder c(InputSpec{8, 8, 2, InputLayout::hwc, 1.0, 0.0}, 4);
  c.conv(64, "sign", false, 0);
  c.conv(129, "sign", true);  // wide rows, padding bits across words
  c.dense(10, "affine");      // dense on spatial bits: the flatten is an im2col
  expect_matches_reference(c, 9, 14);
}

TEST(RuntimeNetwork, BatchingTilesAndEmptyBatches) {
  Builder b(InputSpec{5, 5, 2, InputLayout::hwc, 1.0, 0.0}, 5);
  b.conv(20, "sign", true, 0);
  b.dense(10, "affine");
  const Tensor images = random_images(23, 50, 15);
  const Tensor whole = b.net.logits(images);
  b.net.set_tile(4);
  const Tensor tiled = b.net.logits(images);
  for (int64_t i = 0; i < whole.numel(); ++i) ASSERT_EQ(whole.data<float>()[i], tiled.data<float>()[i]);
  for (int64_t i = 0; i < 23; ++i) {
    const Tensor one = b.net.logits(images.slice_rows(i, i + 1).clone());
    for (int64_t c = 0; c < 10; ++c) ASSERT_EQ(one.data<float>()[c], whole.data<float>()[i * 10 + c]);
  }
  EXPECT_EQ(b.net.logits(Tensor::zeros({0, 50}, DType::u8)).size(0), 0);
  EXPECT_THROW(b.net.logits(Tensor::zeros({2, 49}, DType::u8)), Error);
  EXPECT_THROW(b.net.logits(Tensor::zeros({2, 50}, DType::f32)), Error);
  const std::vector<int32_t> p = b.net.predict(images);
  for (int64_t i = 0; i < 23; ++i) {
    const float* row = whole.data<float>() + i * 10;
    EXPECT_EQ(p[i], std::max_element(row, row + 10) - row);
  }
}

TEST(RuntimeNetwork, SaveLoadGivesIdenticalLogits) {
  Builder b(InputSpec{9, 7, 3, InputLayout::chw, 2.0 / 255, -1.0}, 6);
  b.conv(16, "sign", true, 255);
  b.conv(24, "kbit", true, 0, 3, 1, 1, 3);
  b.dense(33, "sign");
  b.dense(10, "affine");
  const fs::path dir = fs::temp_directory_path() / ("lowbit_rt_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "net.lbm").string();
  b.net.save(path, R"({"dataset":"mnist","seed":7})");
  const Network r = Network::load(path);
  EXPECT_EQ(r.describe(), b.net.describe());
  EXPECT_EQ(r.weight_bytes(), b.net.weight_bytes());
  const Tensor images = random_images(17, b.net.input().features(), 16);
  const Tensor x = b.net.logits(images), y = r.logits(images);
  for (int64_t i = 0; i < x.numel(); ++i) ASSERT_EQ(x.data<float>()[i], y.data<float>()[i]);
  const io::ModelFile f = io::load(path);
  EXPECT_EQ(metadata_string(f, "dataset"), "mnist");
  EXPECT_EQ(f.get("layers.1.weight").type(), io::ElemType::U64);
  // The first layer reads pixel codes with ±1 weights: they are stored packed, 27 bits a row.
  EXPECT_EQ(f.get("layers.0.weight").type(), io::ElemType::U64);
  EXPECT_EQ(f.get("layers.0.weight").shape(), (Shape{16, 8}));
  EXPECT_EQ(f.get("layers.1.threshold").shape(), (Shape{24, 7}));
  EXPECT_THROW(b.net.save(path, R"({"model":1})"), Error);  // reserved key

  // Damaged networks are errors naming the file.
  auto expect_bad = [&](io::ModelFile g, const std::string& needle) {
    try {
      Network::from_model_file(g, "bad.lbm");
      ADD_FAILURE() << "accepted: " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("bad.lbm"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  {
    io::ModelFile g = f;
    g.tensors.erase(g.tensors.begin() + 2);  // layers.0.flip
    expect_bad(g, "no tensor");
  }
  {
    io::ModelFile g = f;
    for (auto& [name, a] : g.tensors)
      if (name == "layers.1.weight") a = io::Array::zeros(io::ElemType::U64, {24, 16});
    expect_bad(g, "expected U64");
  }
  {
    io::ModelFile g = f;
    for (auto& [name, a] : g.tensors)
      if (name == "layers.1.weight") {
        io::Array c = io::Array::zeros(a.type(), a.shape());
        std::copy(a.values<uint64_t>().begin(), a.values<uint64_t>().end(), c.values<uint64_t>().begin());
        c.values<uint64_t>()[7] |= uint64_t{1} << 63;  // a padding bit (K = 144)
        a = c;
      }
    expect_bad(g, "padding bits");
  }
  {
    io::ModelFile g = f;
    g.metadata = R"({"format":"lowbit","format_version":1})";
    expect_bad(g, "no \"model\"");
  }
  {
    io::ModelFile g = f;
    const std::size_t at = g.metadata.find("\"conv2d\"");
    g.metadata.replace(at, 8, "\"convXd\"");
    expect_bad(g, "unknown layer type");
  }
  fs::remove_all(dir);
}

TEST(RuntimeNetwork, RejectsInconsistentSpecs) {
  Network net(InputSpec{4, 4, 1});
  SignEpilogue s{std::vector<int32_t>(8, 0), {}};
  EXPECT_THROW(net.add_dense(DenseSpec{8, std::vector<int8_t>(15 * 8, 1), s, 0}), Error);  // weight count
  EXPECT_THROW(net.add_dense(DenseSpec{8, std::vector<int8_t>(16 * 8, 1), SignEpilogue{{0, 0}, {}}, 0}), Error);
  EXPECT_THROW(net.add_dense(DenseSpec{8, std::vector<int8_t>(16 * 8, 1), SignEpilogue{std::vector<int32_t>(8), std::vector<uint8_t>(8, 2)}, 0}), Error);
  EXPECT_THROW(net.add_dense(DenseSpec{8, std::vector<int8_t>(16 * 8, 1), s, 600}), Error);  // z2
  KbitEpilogue k{2, std::vector<int32_t>(8 * 3, 0), {}};
  k.threshold[1] = -5;  // not sorted
  EXPECT_THROW(net.add_dense(DenseSpec{8, std::vector<int8_t>(16 * 8, 1), k, 0}), Error);
  EXPECT_FALSE(net.complete());
  EXPECT_THROW(net.logits(Tensor::zeros({1, 16}, DType::u8)), Error);
  net.add_dense(DenseSpec{8, std::vector<int8_t>(16 * 8, 1), s, 0});
  EXPECT_THROW(net.add_dense(DenseSpec{8, std::vector<int8_t>(8 * 8, 3), s, 0}), Error);  // not ±1 on bits
  net.add_dense(DenseSpec{3, std::vector<int8_t>(8 * 3, -1), AffineEpilogue{{1, 1, 1}, {0, 0, 0}}, 0});
  EXPECT_TRUE(net.complete());
  EXPECT_THROW(net.add_dense(DenseSpec{3, std::vector<int8_t>(9, 1), AffineEpilogue{{1, 1, 1}, {0, 0, 0}}, 0}), Error);

  // Accumulators that could leave int32: 40000 inputs of weight 127 on pixels.
  Network wide(InputSpec{200, 200, 1});
  EXPECT_THROW(wide.add_dense(DenseSpec{1, std::vector<int8_t>(40000, 127), SignEpilogue{{0}, {}}, 0}), Error);
  // A convolution cannot end in logits over more than one position.
  Network cv(InputSpec{4, 4, 1});
  Conv2dSpec c;
  c.out_channels = 2;
  c.weight.assign(2 * 9, 1);
  c.epilogue = AffineEpilogue{{1, 1}, {0, 0}};
  EXPECT_THROW(cv.add_conv2d(c), Error);
}

// ---- fold helpers ---------------------------------------------------------------------------

TEST(RuntimeFold, KbitThresholdsCountLevelsForAnySign) {
  const std::vector<double> levels = kbit_activation_levels(2, 1.0);
  ASSERT_EQ(levels.size(), 3u);
  EXPECT_DOUBLE_EQ(levels[0], 0.5 / 3);
  ChannelAffine y{{0.01, -0.02, 0.0, 0.0, 1e-12, 3.0}, {0.3, 0.4, 0.5, -1.0, 0.2, 1e12}};
  const KbitEpilogue e = kbit_epilogue(y, 2, levels);
  Network net(InputSpec{1, 1, 1});
  ASSERT_EQ(e.flip[1], 1);
  for (std::size_t c = 0; c < y.alpha.size(); ++c)
    for (int64_t acc = -300; acc <= 300; ++acc) {
      const double v = y.alpha[c] * static_cast<double>(acc) + y.beta[c];
      int want = 0;
      for (double t : levels) want += v >= t;
      int got = 0;
      for (int j = 0; j < 3; ++j) got += (acc >= e.threshold[c * 3 + j]) != (e.flip[c] != 0);
      ASSERT_EQ(got, want) << "channel " << c << " acc " << acc;
    }
  // The same quantizer the training graph uses.
  std::vector<float> ys{-0.2f, 0.1f, 0.2f, 0.5f, 0.9f, 1.3f};
  std::vector<uint8_t> codes(ys.size());
  quant::activations_kbit_to_codes(ys, codes, 2, 1.0f);
  for (std::size_t i = 0; i < ys.size(); ++i) {
    int want = 0;
    for (double t : levels) want += static_cast<double>(ys[i]) >= t;
    EXPECT_EQ(codes[i], want) << ys[i];
  }
  const SignEpilogue s = sign_epilogue(y);
  for (std::size_t c = 0; c < y.alpha.size(); ++c)
    for (int64_t acc = -300; acc <= 300; ++acc)
      ASSERT_EQ((acc >= s.threshold[c]) != (s.flip[c] != 0), y.alpha[c] * acc + y.beta[c] >= 0);
  EXPECT_EQ(input_zero2_for(2.0 / 255, -1.0), 255);
  EXPECT_EQ(input_zero2_for(1.0 / 255, 0.0), 0);
  EXPECT_THROW(input_zero2_for(1.0 / 255, 1.0), Error);
}

// ---- float training graph -> export -> runtime ------------------------------------------------

struct FloatBn {
  std::vector<double> gamma, beta, mean, var;
  double eps = 1e-4;
};

FloatBn random_bn(std::mt19937_64& rng, int64_t c, double spread) {
  FloatBn bn;
  std::uniform_real_distribution<double> u(-1, 1);
  for (int64_t i = 0; i < c; ++i) {
    bn.gamma.push_back(u(rng) + (u(rng) > -0.6 ? 1.2 : -1.2));  // some negative scales
    bn.beta.push_back(0.3 * u(rng));
    bn.mean.push_back(spread * 0.5 * u(rng));
    bn.var.push_back(spread * spread * (0.2 + std::abs(u(rng))));
  }
  return bn;
}

double bn_apply(const FloatBn& bn, int64_t c, double z) {
  return bn.gamma[c] * (z - bn.mean[c]) / std::sqrt(bn.var[c] + bn.eps) + bn.beta[c];
}

// A BNN/QNN ConvNet as the training graph computes it, in double: pixels normalised to
// [-1, 1], conv 3x3 pad 1 (zero padding) with ±1 weights -> max-pool 2 -> BN -> sign; dense on
// ±1 -> BN -> 2-bit activation in [0, 1]; dense with 2-bit weights (step 1/3) -> BN -> logits.
// Exported through the fold helpers, the runtime must agree exactly on every prediction and
// to float rounding on every logit.
TEST(RuntimeFold, FloatGraphExportAgrees) {
  std::mt19937_64 rng(99);
  const int64_t H = 8, W = 6, C = 2, C1 = 12, D2 = 40, K = 10;
  const double s_in = 2.0 / 255, o_in = -1.0;
  auto pm1 = [&](int64_t n) {
    std::vector<int8_t> v(static_cast<std::size_t>(n));
    for (auto& x : v) x = rng() & 1 ? 1 : -1;
    return v;
  };
  const std::vector<int8_t> w1 = pm1(C1 * 9 * C);
  const std::vector<int8_t> w2 = pm1(D2 * 4 * 3 * C1);
  std::vector<int8_t> w3(static_cast<std::size_t>(K * D2));
  for (auto& x : w3) x = static_cast<int8_t>(2 * static_cast<int>(rng() % 4) - 3);  // 2-bit codes: -3,-1,1,3
  const double w3_step = 1.0 / 3;
  const FloatBn bn1 = random_bn(rng, C1, 10.0), bn2 = random_bn(rng, D2, 5.0), bn3 = random_bn(rng, K, 3.0);

  // Export.
  InputSpec in{H, W, C, InputLayout::hwc, s_in, o_in};
  Network net(in);
  const int z2 = input_zero2_for(s_in, o_in);
  {
    Conv2dSpec c;
    c.out_channels = C1;
    c.weight = w1;
    c.pool = MaxPool{2, 2};
    c.input_zero2 = z2;
    const AccMap z = codes_acc_map(w1, C1, 1.0, s_in, o_in, z2);
    c.epilogue = sign_epilogue(fold_batch_norm(z, bn1.gamma, bn1.beta, bn1.mean, bn1.var, bn1.eps));
    net.add_conv2d(c);
  }
  const std::vector<double> levels = kbit_activation_levels(2, 1.0);
  {
    const AccMap z = bits_acc_map(1.0, D2);
    net.add_dense(DenseSpec{D2, w2, kbit_epilogue(fold_batch_norm(z, bn2.gamma, bn2.beta, bn2.mean, bn2.var, bn2.eps), 2, levels), 0});
  }
  {
    const AccMap z = codes_acc_map(w3, K, w3_step, 1.0 / 3, 0.0, 0);
    net.add_dense(DenseSpec{K, w3, affine_epilogue(fold_batch_norm(z, bn3.gamma, bn3.beta, bn3.mean, bn3.var, bn3.eps)), 0});
  }

  const int64_t n = 60;
  const Tensor images = random_images(n, in.features(), 77);
  const Tensor got = net.logits(images);
  const std::vector<int32_t> pred = net.predict(images);
  for (int64_t img = 0; img < n; ++img) {
    const uint8_t* px = images.data<uint8_t>() + img * in.features();
    // conv + pool + BN + sign
    std::vector<double> a1(static_cast<std::size_t>(4 * 3 * C1));
    for (int64_t py = 0; py < 4; ++py)
      for (int64_t pxx = 0; pxx < 3; ++pxx)
        for (int64_t o = 0; o < C1; ++o) {
          double best = -1e300;
          for (int64_t dy = 0; dy < 2; ++dy)
            for (int64_t dx = 0; dx < 2; ++dx) {
              const int64_t y = 2 * py + dy, x = 2 * pxx + dx;
              double z = 0;
              for (int64_t i = 0; i < 3; ++i)
                for (int64_t j = 0; j < 3; ++j)
                  for (int64_t c = 0; c < C; ++c) {
                    const int64_t iy = y - 1 + i, ix = x - 1 + j;
                    const double xv = (iy < 0 || iy >= H || ix < 0 || ix >= W) ? 0.0 : px[(iy * W + ix) * C + c] * s_in + o_in;
                    z += w1[((o * 3 + i) * 3 + j) * C + c] * xv;
                  }
              best = std::max(best, z);
            }
          a1[(py * 3 + pxx) * C1 + o] = bn_apply(bn1, o, best) >= 0 ? 1.0 : -1.0;
        }
    // dense on ±1 (flattened h, w, c) + BN + 2-bit activation in [0, 1]
    std::vector<double> a2(static_cast<std::size_t>(D2));
    for (int64_t o = 0; o < D2; ++o) {
      double z = 0;
      for (int64_t k = 0; k < 4 * 3 * C1; ++k) z += w2[o * 4 * 3 * C1 + k] * a1[k];
      const double y = bn_apply(bn2, o, z);
      int code = 0;
      for (double t : levels) code += y >= t;
      a2[o] = code / 3.0;
    }
    // dense with 2-bit weights + BN -> logits
    std::vector<double> logit(static_cast<std::size_t>(K));
    for (int64_t o = 0; o < K; ++o) {
      double z = 0;
      for (int64_t k = 0; k < D2; ++k) z += w3[o * D2 + k] * w3_step * a2[k];
      logit[o] = bn_apply(bn3, o, z);
      EXPECT_NEAR(got.data<float>()[img * K + o], logit[o], 1e-4 * (1 + std::abs(logit[o]))) << img << "," << o;
    }
    EXPECT_EQ(pred[img], std::max_element(logit.begin(), logit.end()) - logit.begin()) << img;
  }
}

// ---- the eval data path on a synthetic IDX split ------------------------------------------------

TEST(RuntimeEval, SyntheticIdxSplit) {
  Builder b(InputSpec{6, 5, 1, InputLayout::hwc, 1.0 / 255, 0.0}, 8);
  b.dense(64, "sign", 0);
  b.dense(10, "affine");
  const int64_t n = 50;
  Tensor images = random_images(n, 30, 18);
  const std::vector<int32_t> pred = b.net.predict(images);
  Tensor labels = Tensor::zeros({n}, DType::u8);
  int64_t want_wrong = 0;
  for (int64_t i = 0; i < n; ++i) {
    labels.data<uint8_t>()[i] = static_cast<uint8_t>(i % 3 == 0 ? (pred[i] + 1) % 10 : pred[i]);
    want_wrong += i % 3 == 0;
  }
  const fs::path dir = fs::temp_directory_path() / ("lowbit_rt_idx_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  data::write_idx((dir / "t10k-images-idx3-ubyte").string(), images.reshape({n, 6, 5}));
  data::write_idx((dir / "t10k-labels-idx1-ubyte").string(), labels);
  const data::LabelledImages s = data::load_idx_split(dir.string(), "t10k");
  const std::vector<int32_t> got = b.net.predict(s.images.reshape({n, 30}));
  int64_t wrong = 0;
  for (int64_t i = 0; i < n; ++i) wrong += got[i] != s.labels.data<uint8_t>()[i];
  EXPECT_EQ(wrong, want_wrong);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace lowbit::runtime

namespace lowbit::runtime {
namespace {

// Files for tests/eval_cli.sh, which runs `lowbit eval` on them: a model and an IDX test split
// with a known error count, a model whose input differs from the data, and a model of a
// dataset without a reader. Written to $LOWBIT_EVAL_FIXTURE_DIR when set (and kept there),
// else to a temporary folder that is removed.
TEST(RuntimeEval, WriteCliFixture) {
  const char* env = std::getenv("LOWBIT_EVAL_FIXTURE_DIR");
  const fs::path dir = env ? fs::path(env) : fs::temp_directory_path() / ("lowbit_fixture_" + std::to_string(::getpid()));
  fs::create_directories(dir / "data");
  Builder b(InputSpec{6, 5, 1, InputLayout::hwc, 2.0 / 255, -1.0}, 21);
  b.dense(70, "sign", 255);
  b.dense(10, "affine");
  const int64_t n = 40;
  const Tensor images = random_images(n, 30, 22);
  const std::vector<int32_t> pred = b.net.predict(images);
  Tensor labels = Tensor::zeros({n}, DType::u8);
  int64_t wrong = 0;
  for (int64_t i = 0; i < n; ++i) {
    const bool miss = i % 4 == 1;
    labels.data<uint8_t>()[i] = static_cast<uint8_t>(miss ? (pred[i] + 3) % 10 : pred[i]);
    wrong += miss;
  }
  data::write_idx((dir / "data" / "t10k-images-idx3-ubyte").string(), images.reshape({n, 6, 5}));
  data::write_idx((dir / "data" / "t10k-labels-idx1-ubyte").string(), labels);
  b.net.save((dir / "model.lbm").string(), R"({"dataset":"mnist"})");
  {
    std::ofstream f(dir / "expected_errors");
    f << wrong << "\n";
  }
  Builder other(InputSpec{7, 7, 1, InputLayout::hwc, 1.0 / 255, 0.0}, 23);
  other.dense(10, "affine");
  other.net.save((dir / "wrong_input.lbm").string(), R"({"dataset":"mnist"})");
  b.net.save((dir / "cifar.lbm").string(), R"({"dataset":"cifar10"})");
  // A CIFAR-10-shaped network (CHW input, as the files store images) and a test batch with a
  // planted error count, for `lowbit eval` on the CIFAR reader.
  Builder c(InputSpec{32, 32, 3, InputLayout::chw, 2.0 / 255, -1.0}, 24);
  c.dense(40, "sign", 255);
  c.dense(10, "affine");
  const int64_t nc = 12;
  const Tensor cimages = random_images(nc, 3072, 25);
  const std::vector<int32_t> cpred = c.net.predict(cimages);
  Tensor clabels = Tensor::zeros({nc}, DType::u8);
  int64_t cwrong = 0;
  for (int64_t i = 0; i < nc; ++i) {
    const bool miss = i % 3 == 0;
    clabels.data<uint8_t>()[i] = static_cast<uint8_t>(miss ? (cpred[i] + 1) % 10 : cpred[i]);
    cwrong += miss;
  }
  fs::create_directories(dir / "cifar");
  data::write_cifar10_file((dir / "cifar" / "test_batch.bin").string(), cimages.reshape({nc, 3, 32, 32}), clabels);
  c.net.save((dir / "cifar_real.lbm").string(), R"({"dataset":"cifar10"})");
  {
    std::ofstream f(dir / "expected_cifar_errors");
    f << cwrong << "\n";
  }
  EXPECT_NO_THROW(Network::load((dir / "model.lbm").string()));
  if (!env) fs::remove_all(dir);
}

}  // namespace
}  // namespace lowbit::runtime

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "lowbit/core/aligned.h"
#include "lowbit/core/dispatch.h"
#include "lowbit/core/error.h"
#include "lowbit/core/threading.h"
#include "lowbit/kernels/bgemm.h"
#include "lowbit/kernels/bitpack.h"
#include "kernels/cpu/bgemm_common.h"
#include "test_util.h"

namespace lowbit::kernels {
namespace {

// A packed ±1 matrix with random bits and zero padding; `extra_words` widens the row stride
// past the packed width to check that kernels honour words_per_row.
struct Packed {
  AlignedPtr<uint64_t> storage;
  BitMatrix view;
};

Packed random_packed(int64_t rows, int64_t k, std::mt19937_64& rng, int64_t extra_words = 0) {
  const int64_t wpr = packed_words_per_row(k) + extra_words;
  Packed p;
  p.storage = make_aligned<uint64_t>(static_cast<std::size_t>(std::max<int64_t>(1, rows * wpr)));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t w = 0; w * 64 < k; ++w) {
      uint64_t x = rng();
      if ((w + 1) * 64 > k) x &= (uint64_t{1} << (k - w * 64)) - 1;
      p.storage[static_cast<std::size_t>(r * wpr + w)] = x;
    }
  p.view.words = std::span<const uint64_t>(p.storage.get(), static_cast<std::size_t>(rows * wpr));
  p.view.rows = rows;
  p.view.k = k;
  p.view.words_per_row = extra_words == 0 ? 0 : wpr;
  return p;
}

struct Shape3 {
  int64_t m, n, k;
};

std::string str(const Shape3& s) {
  return "M=" + std::to_string(s.m) + " N=" + std::to_string(s.n) + " K=" + std::to_string(s.k);
}

// Runs every epilogue on every runnable ISA level with 1 and 2 threads and compares each
// output bit for bit with the unpacking reference.
void check_shape(const Shape3& s, uint64_t seed, int64_t extra_words = 0) {
  SCOPED_TRACE(str(s));
  std::mt19937_64 rng(seed);
  const Packed a = random_packed(s.m, s.k, rng, extra_words);
  const Packed b = random_packed(s.n, s.k, rng, extra_words);
  const int64_t ldc = s.n + (seed % 3);  // sometimes padded rows of C
  const std::size_t csize = static_cast<std::size_t>(s.m * ldc);

  std::vector<float> scale(static_cast<std::size_t>(s.n)), bias(static_cast<std::size_t>(s.n));
  std::vector<int32_t> thr(static_cast<std::size_t>(s.n));
  std::vector<uint8_t> flip(static_cast<std::size_t>(s.n));
  std::uniform_real_distribution<float> uf(-2.0f, 2.0f);
  std::uniform_int_distribution<int64_t> ut(-s.k - 1, s.k + 1);
  for (int64_t j = 0; j < s.n; ++j) {
    scale[static_cast<std::size_t>(j)] = uf(rng) * 0.37f;
    bias[static_cast<std::size_t>(j)] = uf(rng);
    // Thresholds near zero are where dots actually fall (|dot| ~ sqrt(k)).
    thr[static_cast<std::size_t>(j)] = static_cast<int32_t>(j % 2 ? ut(rng) : ut(rng) / 16);
    flip[static_cast<std::size_t>(j)] = static_cast<uint8_t>(rng() & 1);
  }

  const int32_t kSentinel = 0x5a5a5a5a;
  std::vector<int32_t> want_s32(csize, kSentinel);
  std::vector<float> want_f32(csize, -7.0f), want_f32_plain(csize, -7.0f);
  const int64_t ldo = packed_words_per_row(s.n);
  const std::size_t osize = static_cast<std::size_t>(std::max<int64_t>(1, s.m * ldo));
  AlignedPtr<uint64_t> want_thr = make_aligned<uint64_t>(osize), want_thr_noflip = make_aligned<uint64_t>(osize);
  ref::bgemm_s32(a.view, b.view, want_s32, ldc);
  ref::bgemm_f32(a.view, b.view, scale, bias, want_f32, ldc);
  ref::bgemm_f32(a.view, b.view, {}, {}, want_f32_plain, ldc);
  const std::span<uint64_t> wt(want_thr.get(), static_cast<std::size_t>(s.m * ldo));
  const std::span<uint64_t> wtn(want_thr_noflip.get(), static_cast<std::size_t>(s.m * ldo));
  ref::bgemm_threshold(a.view, b.view, thr, flip, wt);
  ref::bgemm_threshold(a.view, b.view, thr, {}, wtn);

  // B packed ahead of time under each runnable variant: every call below is also made with
  // each of them, so a packing whose layout matches the running kernel is read in place and
  // the others are ignored; both must give the reference's outputs.
  std::vector<BgemmPackedB> packs;
  for (const std::string& name : detail::bgemm_runnable_variants()) {
    detail::bgemm_force_variant(name);
    packs.push_back(bgemm_pack_b(b.view));
  }
  detail::bgemm_force_variant("");

  const int saved_threads = num_threads();
  auto run_checks = [&] {
    for (int threads : {1, 2}) {
      SCOPED_TRACE(std::string("threads=") + std::to_string(threads) + " kernel=" + bgemm_kernel_name());
      set_num_threads(threads);
      std::vector<int32_t> c(csize, kSentinel);
      bgemm_s32(a.view, b.view, c, ldc);
      ASSERT_EQ(c, want_s32);

      std::vector<float> f(csize, -7.0f);
      bgemm_f32(a.view, b.view, scale, bias, f, ldc);
      ASSERT_EQ(0, std::memcmp(f.data(), want_f32.data(), csize * sizeof(float)));
      std::fill(f.begin(), f.end(), -7.0f);
      bgemm_f32(a.view, b.view, {}, {}, f, ldc);
      ASSERT_EQ(0, std::memcmp(f.data(), want_f32_plain.data(), csize * sizeof(float)));

      // Garbage first: the kernel must write every word, padding bits included.
      AlignedPtr<uint64_t> out = make_aligned<uint64_t>(osize);
      const std::span<uint64_t> o(out.get(), static_cast<std::size_t>(s.m * ldo));
      std::fill(o.begin(), o.end(), ~uint64_t{0});
      bgemm_threshold(a.view, b.view, thr, flip, o);
      ASSERT_TRUE(std::equal(o.begin(), o.end(), wt.begin()));
      std::fill(o.begin(), o.end(), 0x0123456789abcdefull);
      bgemm_threshold(a.view, b.view, thr, {}, o);
      ASSERT_TRUE(std::equal(o.begin(), o.end(), wtn.begin()));
      BitMatrix ov{o, s.m, s.n, 0};
      EXPECT_NO_THROW(validate(ov, "threshold output", /*check_padding=*/true));

      for (std::size_t i = 0; i < packs.size(); ++i) {
        SCOPED_TRACE("B packed for " + detail::bgemm_runnable_variants()[i]);
        std::fill(f.begin(), f.end(), -7.0f);
        bgemm_f32(a.view, b.view, scale, bias, f, ldc, &packs[i]);
        ASSERT_EQ(0, std::memcmp(f.data(), want_f32.data(), csize * sizeof(float)));
        std::fill(o.begin(), o.end(), ~uint64_t{0});
        bgemm_threshold(a.view, b.view, thr, flip, o, &packs[i]);
        ASSERT_TRUE(std::equal(o.begin(), o.end(), wt.begin()));
      }
    }
  };
  // Every ISA level through dispatch, then every runnable variant by name (two variants can
  // share a level, and only the best of them is dispatched).
  testing::for_each_isa([&](cpu::IsaLevel) { run_checks(); });
  for (const std::string& name : detail::bgemm_runnable_variants()) {
    SCOPED_TRACE("forced " + name);
    detail::bgemm_force_variant(name);
    run_checks();
  }
  detail::bgemm_force_variant("");
  set_num_threads(saved_threads);
}

TEST(Bgemm, MatchesReferenceOnAwkwardShapes) {
  std::vector<Shape3> shapes;
  for (int64_t s : testing::awkward_sizes()) {
    shapes.push_back({s, 7, 129});   // M sweep (few-row path up to 4, tiles beyond)
    shapes.push_back({13, s, 65});   // N sweep (panel and 64-column tails)
    shapes.push_back({9, 17, s});    // K sweep (sub-word, word and vector tails)
  }
  for (int64_t j = 1; j <= 3; ++j) {
    shapes.push_back({6, 33, 512 * j - 1});
    shapes.push_back({6, 33, 512 * j});
    shapes.push_back({6, 33, 512 * j + 1});
  }
  for (int64_t m : {2, 3, 4, 5, 8, 9, 16, 17, 23}) shapes.push_back({m, 70, 200});
  uint64_t seed = 1;
  for (const Shape3& s : shapes) check_shape(s, seed++);
}

TEST(Bgemm, HonoursWiderRowStrides) {
  check_shape({5, 19, 300}, 101, /*extra_words=*/8);
  check_shape({21, 40, 1000}, 102, /*extra_words=*/16);
}

// Large enough for the driver to split the work over two threads, by columns and by rows.
TEST(Bgemm, ThreadedSplitsMatchReference) {
  check_shape({20, 1031, 4097}, 201);  // few rows, wide: split by columns
  check_shape({257, 129, 2047}, 202);  // tall, narrow: split by rows
}

TEST(Bgemm, ZeroSizesAreLegalAndWriteNothingOutside) {
  std::mt19937_64 rng(5);
  testing::for_each_isa([&](cpu::IsaLevel) {
    {
      const Packed a = random_packed(0, 100, rng), b = random_packed(3, 100, rng);
      std::vector<int32_t> c;
      EXPECT_NO_THROW(bgemm_s32(a.view, b.view, c, 3));
    }
    {
      const Packed a = random_packed(2, 100, rng), b = random_packed(0, 100, rng);
      std::vector<int32_t> c;
      EXPECT_NO_THROW(bgemm_s32(a.view, b.view, c, 0));
      std::vector<uint64_t> none;
      EXPECT_NO_THROW(bgemm_threshold(a.view, b.view, {}, {}, none));
    }
    {
      // K = 0: every dot product is the empty sum 0.
      const Packed a = random_packed(3, 0, rng), b = random_packed(5, 0, rng);
      std::vector<int32_t> c(15, 99);
      bgemm_s32(a.view, b.view, c, 5);
      EXPECT_EQ(c, std::vector<int32_t>(15, 0));
      std::vector<float> f(15, 99.0f), sc(5, 2.0f), bi(5, 0.5f);
      bgemm_f32(a.view, b.view, sc, bi, f, 5);
      EXPECT_EQ(f, std::vector<float>(15, 0.5f));
    }
  });
}

TEST(Bgemm, TensorFormMatchesFloatProductOfSigns) {
  std::mt19937_64 rng(9);
  std::normal_distribution<float> nd;
  const int64_t m = 6, n = 11, k = 150;
  std::vector<float> x(static_cast<std::size_t>(m * k)), w(static_cast<std::size_t>(n * k));
  for (auto& v : x) v = nd(rng);
  for (auto& v : w) v = nd(rng);
  const Tensor c = bgemm(pack_signs(Tensor::from<float>({m, k}, x)), pack_signs(Tensor::from<float>({n, k}, w)));
  ASSERT_EQ(c.shape(), (Shape{m, n}));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      int want = 0;
      for (int64_t t = 0; t < k; ++t)
        want += (x[static_cast<std::size_t>(i * k + t)] >= 0 ? 1 : -1) * (w[static_cast<std::size_t>(j * k + t)] >= 0 ? 1 : -1);
      EXPECT_EQ(c.data<int32_t>()[i * n + j], want) << i << "," << j;
    }
  EXPECT_THROW(bgemm(Tensor::zeros({2, 5}, DType::b1), Tensor::zeros({2, 6}, DType::b1)), Error);
  EXPECT_THROW(bgemm(Tensor::zeros({2, 5}, DType::f32), Tensor::zeros({2, 5}, DType::b1)), Error);
}

// Expects lowbit::Error whose message contains `needle`.
template <typename F>
void expect_error(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error thrown; expected one mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "expected '" << needle << "' in: " << e.what();
  }
}

TEST(Bgemm, RejectsBadArguments) {
  std::mt19937_64 rng(3);
  const Packed a = random_packed(4, 130, rng), b = random_packed(6, 130, rng), b2 = random_packed(6, 131, rng);
  std::vector<int32_t> c(24);
  std::vector<float> f(24);
  std::vector<int32_t> thr(6, 0);
  AlignedPtr<uint64_t> out = make_aligned<uint64_t>(64);
  const std::span<uint64_t> o(out.get(), 32);

  expect_error([&] { bgemm_s32(a.view, b2.view, c, 6); }, "k=131");
  // A packing of another B (here 6 x 131 bits) is refused, whatever kernel runs.
  const BgemmPackedB other = bgemm_pack_b(b2.view);
  if (other.panels) {
    expect_error([&] { bgemm_threshold(a.view, b.view, thr, {}, o, &other); }, "packed B is 6x131");
    expect_error([&] { bgemm_f32(a.view, b.view, {}, {}, f, 6, &other); }, "packed B is 6x131");
  }
  expect_error([&] { bgemm_s32(a.view, b.view, c, 5); }, "ldc=5");
  expect_error([&] { bgemm_s32(a.view, b.view, std::span<int32_t>(c).first(23), 6); }, "needs 24");
  expect_error([&] { bgemm_s32(a.view, b.view, c, -1); }, "ldc=-1");

  BitMatrix bad = a.view;
  bad.rows = -1;
  expect_error([&] { bgemm_s32(bad, b.view, c, 6); }, "rows=-1");
  bad = a.view;
  bad.k = -5;
  expect_error([&] { bgemm_s32(bad, b.view, c, 6); }, "k=-5");
  const Packed a5 = random_packed(5, 130, rng);
  bad = a.view;
  bad.words = std::span<const uint64_t>(a5.storage.get() + 1, 32);  // 8 bytes past a 64-byte boundary
  expect_error([&] { bgemm_s32(bad, b.view, c, 6); }, "aligned");
  const Packed wide = random_packed(4, 600, rng);  // 600 bits need 16 words per row
  bad = wide.view;
  bad.words_per_row = 8;
  bad.k = 600;
  expect_error([&] { bgemm_s32(bad, bad, c, 6); }, "words_per_row=8 is less than the 16 words");
  bad = a.view;
  bad.words_per_row = 12;
  expect_error([&] { bgemm_s32(bad, b.view, c, 6); }, "multiple of 8");
  bad = a.view;
  bad.words_per_row = -8;
  expect_error([&] { bgemm_s32(bad, b.view, c, 6); }, "words_per_row=-8");
  bad = a.view;
  bad.words = bad.words.first(bad.words.size() - 1);
  expect_error([&] { bgemm_s32(bad, b.view, c, 6); }, "words given");

  std::vector<float> s5(5, 1.0f);
  expect_error([&] { bgemm_f32(a.view, b.view, s5, {}, f, 6); }, "scale has 5");
  expect_error([&] { bgemm_f32(a.view, b.view, {}, s5, f, 6); }, "bias has 5");
  expect_error([&] { bgemm_f32(a.view, b.view, {}, {}, std::span<float>(f).first(10), 6); }, "needs 24");

  expect_error([&] { bgemm_threshold(a.view, b.view, std::span<const int32_t>(thr).first(5), {}, o); }, "threshold has 5");
  std::vector<uint8_t> fl(6, 0);
  expect_error([&] { bgemm_threshold(a.view, b.view, thr, std::span<const uint8_t>(fl).first(2), o); }, "flip has 2");
  fl[3] = 2;
  expect_error([&] { bgemm_threshold(a.view, b.view, thr, fl, o); }, "flip[3]=2");
  expect_error([&] { bgemm_threshold(a.view, b.view, thr, {}, o.first(31)); }, "need 32");
  expect_error([&] { bgemm_threshold(a.view, b.view, thr, {}, std::span<uint64_t>(out.get() + 1, 40)); }, "aligned");
}

TEST(Bgemm, FoldBnSignIsExactOverDotRange) {
  std::mt19937_64 rng(17);
  std::vector<std::pair<double, double>> cases{
      {1.0, 0.0},   {1.0, -3.0},  {-1.0, 3.0},   {0.5, -1.5},   {-0.5, 1.5},      {0.0, 1.0},
      {0.0, 0.0},   {0.0, -1e-9}, {-0.0, 0.0},   {3.0, 1e-300}, {1e-300, -1.0},   {-1e-300, 1.0},
      {1.0, -1e12}, {1.0, 1e12},  {-1.0, -1e12}, {-1.0, 1e12},  {0.1, -0.3},      {-0.1, 0.3},
      {1e20, 1.0},  {7.0, -21.0}, {-7.0, 21.0},  {1e-7, 3e-5},  {0.3333333, 1.0}, {-2.5, -1e-12}};
  std::uniform_real_distribution<double> u(-4, 4);
  for (int i = 0; i < 200; ++i) cases.push_back({u(rng) * std::pow(10.0, u(rng)), u(rng) * 100});
  for (const auto& [alpha, beta] : cases) {
    const SignThreshold t = fold_bn_sign(alpha, beta);
    ASSERT_LE(t.flip, 1);
    auto check = [&](int64_t d) {
      const bool want = alpha * static_cast<double>(d) + beta >= 0.0;
      const bool got = (d >= t.threshold) != (t.flip != 0);
      ASSERT_EQ(got, want) << "alpha=" << alpha << " beta=" << beta << " dot=" << d << " threshold=" << t.threshold
                           << " flip=" << int{t.flip};
    };
    for (int64_t d = -3000; d <= 3000; ++d) check(d);
    // Clamping: the encoding must also hold at the ends of the int32 range.
    for (int64_t d : {int64_t{std::numeric_limits<int32_t>::min()}, int64_t{std::numeric_limits<int32_t>::min()} + 1,
                      int64_t{std::numeric_limits<int32_t>::max()} - 1, int64_t{std::numeric_limits<int32_t>::max()}})
      check(d);
  }
  EXPECT_THROW(fold_bn_sign(std::nan(""), 0.0), Error);
  EXPECT_THROW(fold_bn_sign(1.0, INFINITY), Error);
}

TEST(Bgemm, KernelNameFollowsIsaCapAndTableIsListed) {
  std::vector<std::string> seen;
  testing::for_each_isa([&](cpu::IsaLevel level) {
    const std::string name = bgemm_kernel_name();
    seen.push_back(name);
    switch (level) {
      case cpu::IsaLevel::scalar: EXPECT_EQ(name.rfind("bgemm_scalar", 0), 0u) << name; break;
      case cpu::IsaLevel::avx2: EXPECT_EQ(name.rfind("bgemm_avx2", 0), 0u) << name; break;
      case cpu::IsaLevel::avx512: EXPECT_EQ(name.rfind("bgemm_avx512_lut", 0), 0u) << name; break;
      case cpu::IsaLevel::avx512_icl:
        if (cpu::detected_features() & cpu::kAvx512Vpopcnt) {
          EXPECT_EQ(name.rfind("bgemm_avx512vpopcnt", 0), 0u) << name;
        }
        break;
    }
  });
  EXPECT_FALSE(seen.empty());
  bool listed = false;
  for (const auto& choice : kernel_choices())
    if (choice.op == "bgemm") listed = !choice.available.empty() && choice.available.back() == "bgemm_scalar_2x4";
  EXPECT_TRUE(listed);
  const auto names = detail::bgemm_runnable_variants();
  ASSERT_FALSE(names.empty());
  detail::bgemm_force_variant(names.back());
  EXPECT_EQ(std::string(bgemm_kernel_name()), names.back());
  detail::bgemm_force_variant("");
  EXPECT_THROW(detail::bgemm_force_variant("bgemm_nonexistent"), Error);
}

}  // namespace
}  // namespace lowbit::kernels

#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "lowbit/core/error.h"
#include "lowbit/data/idx.h"
#include "test_util.h"

namespace lowbit::data {
namespace {

namespace fs = std::filesystem;

class IdxTest : public lowbit::testing::TempDirTest {
 protected:
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  void write_bytes(const std::string& name, const std::vector<unsigned char>& b) const {
    std::ofstream f(path(name), std::ios::binary);
    f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  }
  void write_gz(const std::string& name, const std::vector<unsigned char>& b) const {
    gzFile f = gzopen(path(name).c_str(), "wb");
    gzwrite(f, b.data(), static_cast<unsigned>(b.size()));
    gzclose(f);
  }
  static std::vector<unsigned char> images(int n, int rows, int cols) {
    std::vector<unsigned char> b{0, 0, 0x08, 3, 0, 0, 0, static_cast<unsigned char>(n), 0, 0, 0,
                                 static_cast<unsigned char>(rows), 0, 0, 0, static_cast<unsigned char>(cols)};
    for (int i = 0; i < n * rows * cols; ++i) b.push_back(static_cast<unsigned char>(i * 7));
    return b;
  }
  static std::vector<unsigned char> labels(const std::vector<unsigned char>& v) {
    std::vector<unsigned char> b{0, 0, 0x08, 1, 0, 0, 0, static_cast<unsigned char>(v.size())};
    for (unsigned char x : v) b.push_back(x);
    return b;
  }
  static void expect_error(const std::function<void()>& fn, const std::string& part) {
    try {
      fn();
      ADD_FAILURE() << "no error; expected one mentioning '" << part << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  }
};

TEST_F(IdxTest, ReadsPlainAndGzipAndRoundTripsTypes) {
  write_bytes("a-images-idx3-ubyte", images(3, 2, 5));
  write_gz("b-images-idx3-ubyte.gz", images(3, 2, 5));
  for (const char* name : {"a-images-idx3-ubyte", "b-images-idx3-ubyte.gz"}) {
    Tensor t = read_idx(path(name));
    EXPECT_EQ(t.shape(), (Shape{3, 2, 5}));
    EXPECT_EQ(t.data<uint8_t>()[29], static_cast<uint8_t>(29 * 7));
  }
  std::vector<int32_t> iv{-5, 0, 1 << 30, -(1 << 30), 7, 123456};
  write_idx(path("i.idx"), Tensor::from<int32_t>({2, 3}, iv));
  Tensor ri = read_idx(path("i.idx"));
  ASSERT_EQ(ri.dtype(), DType::i32);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(ri.data<int32_t>()[i], iv[i]);
  std::vector<float> fv{-1.5f, 0.25f, 3e10f};
  write_idx(path("f.idx"), Tensor::from<float>({3}, fv));
  Tensor rf = read_idx(path("f.idx"));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(rf.data<float>()[i], fv[i]);
  std::vector<int16_t> sv{-32768, 32767, -2};
  write_idx(path("s.idx"), Tensor::from<int16_t>({3}, sv));
  Tensor rs = read_idx(path("s.idx"));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(rs.data<int16_t>()[i], sv[i]);
}

TEST_F(IdxTest, BadFilesGiveErrorsNamingTheFile) {
  expect_error([&] { read_idx(path("missing")); }, "missing: no such file");
  auto good = images(2, 3, 3);
  auto truncated = good;
  truncated.resize(truncated.size() - 1);
  write_bytes("trunc", truncated);
  expect_error([&] { read_idx(path("trunc")); }, "trunc: truncated IDX data");
  write_bytes("short", {0, 0, 8});
  expect_error([&] { read_idx(path("short")); }, "short: truncated IDX header");
  auto magic = good;
  magic[0] = 0x1f;
  magic[1] = 0x00;
  write_bytes("magic", magic);
  expect_error([&] { read_idx(path("magic")); }, "magic: not an IDX file");
  auto type = good;
  type[2] = 0x42;
  write_bytes("type", type);
  expect_error([&] { read_idx(path("type")); }, "unknown IDX element type");
  auto extra = good;
  extra.push_back(1);
  write_bytes("extra", extra);
  expect_error([&] { read_idx(path("extra")); }, "unexpected bytes");
  auto hdr = good;
  hdr.resize(10);
  write_bytes("hdr", hdr);
  expect_error([&] { read_idx(path("hdr")); }, "hdr: truncated IDX header");
  // A gzip stream cut in the middle.
  write_gz("whole.gz", images(50, 28, 28));
  std::ifstream in(path("whole.gz"), std::ios::binary);
  std::vector<unsigned char> gz((std::istreambuf_iterator<char>(in)), {});
  gz.resize(gz.size() / 2);
  write_bytes("cut.gz", gz);
  expect_error([&] { read_idx(path("cut.gz")); }, "cut.gz: ");
}

TEST_F(IdxTest, SplitChecksCountsAndLabels) {
  write_gz("train-images-idx3-ubyte.gz", images(4, 2, 2));
  write_bytes("train-labels-idx1-ubyte", labels({1, 2, 3, 9}));
  LabelledImages s = load_idx_split(dir_.string(), "train");
  EXPECT_EQ(s.images.size(0), 4);
  EXPECT_EQ(s.labels.data<uint8_t>()[3], 9);
  write_bytes("t10k-images-idx3-ubyte", images(4, 2, 2));
  write_bytes("t10k-labels-idx1-ubyte", labels({1, 2, 3}));
  expect_error([&] { load_idx_split(dir_.string(), "t10k"); }, "3 labels for 4 images");
  write_bytes("bad-images-idx3-ubyte", images(2, 2, 2));
  write_bytes("bad-labels-idx1-ubyte", labels({1, 10}));
  expect_error([&] { load_idx_split(dir_.string(), "bad"); }, "label 10 of item 1");
  expect_error([&] { load_idx_split(dir_.string(), "none"); }, "no none-images-idx3-ubyte");
  expect_error([&] { load_idx_split(path("nodir"), "train"); }, "no such directory");
}

// Other IDX datasets name their files with a prefix and call the test split "test" (EMNIST).
TEST_F(IdxTest, SplitFindsPrefixedFilesAndTheTestName) {
  write_gz("emnist-digits-train-images-idx3-ubyte.gz", images(3, 2, 2));
  write_gz("emnist-digits-train-labels-idx1-ubyte.gz", labels({0, 5, 9}));
  write_bytes("emnist-digits-test-images-idx3-ubyte", images(2, 2, 2));
  write_bytes("emnist-digits-test-labels-idx1-ubyte", labels({4, 7}));
  LabelledImages tr = load_idx_split(dir_.string(), "train");
  EXPECT_EQ(tr.images.size(0), 3);
  EXPECT_EQ(tr.labels.data<uint8_t>()[1], 5);
  LabelledImages te = load_idx_split(dir_.string(), "t10k");
  EXPECT_EQ(te.images.size(0), 2);
  EXPECT_EQ(te.labels.data<uint8_t>()[1], 7);
  // The unprefixed MNIST names win over prefixed ones.
  write_bytes("train-images-idx3-ubyte", images(1, 2, 2));
  write_bytes("train-labels-idx1-ubyte", labels({2}));
  EXPECT_EQ(load_idx_split(dir_.string(), "train").images.size(0), 1);
  // Two prefixed datasets in one folder are ambiguous; a prefix without its labels is named.
  write_bytes("emnist-letters-test-images-idx3-ubyte", images(2, 2, 2));
  expect_error([&] { load_idx_split(dir_.string(), "t10k"); }, "several t10k image files");
  fs::remove(path("emnist-digits-test-images-idx3-ubyte"));
  expect_error([&] { load_idx_split(dir_.string(), "t10k"); }, "no emnist-letters-t10k-labels-idx1-ubyte[.gz] file");
}

TEST(IdxBundled, MnistTestSplitLoads) {
  const fs::path dir = fs::path(LOWBIT_SOURCE_DIR) / "data" / "mnist";
  LabelledImages s = load_idx_split(dir.string(), "t10k");
  EXPECT_EQ(s.images.shape(), (Shape{10000, 28, 28}));
  int hist[10] = {};
  for (int64_t i = 0; i < 10000; ++i) hist[s.labels.data<uint8_t>()[i]]++;
  // The published test-set label histogram.
  const int want[10] = {980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009};
  for (int d = 0; d < 10; ++d) EXPECT_EQ(hist[d], want[d]) << "digit " << d;
}

}  // namespace
}  // namespace lowbit::data

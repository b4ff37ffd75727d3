// Model file container: round trips for every element type, every corruption the reader must
// name, truncation and header bit flips (an Error or a valid load, never a crash), atomic writes.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "lowbit/core/error.h"
#include "lowbit/io/model_file.h"

namespace lowbit::io {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() /
                     ("lowbit_io_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::vector<uint8_t> read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

// A file image from a header text and raw data, with the 8-byte length in front.
std::vector<uint8_t> make_image(const std::string& header, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out;
  out.reserve(8 + header.size() + data.size());
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(n >> (8 * i)));
  for (char ch : header) out.push_back(static_cast<uint8_t>(ch));
  for (uint8_t b : data) out.push_back(b);
  return out;
}

// Header text padded so that data starts 64-byte aligned.
std::string padded(std::string h) {
  h.resize(((8 + h.size() + 63) / 64) * 64 - 8, ' ');
  return h;
}

const char* kMeta = R"("__metadata__":{"format":"lowbit","format_version":1})";

std::string expect_error(std::span<const uint8_t> bytes) {
  try {
    parse(bytes, "m.lbm");
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

ModelFile sample_model() {
  ModelFile m;
  m.metadata = R"({"architecture":{"layers":[1,2,3]},"note":"x"})";
  std::vector<float> f{1.5f, -2.0f, 3.25f};
  std::vector<int8_t> i8{-128, 0, 127, 5, 6};
  std::vector<uint8_t> u8{0, 255, 7};
  std::vector<int16_t> i16{-32768, 32767, 1, 2};
  std::vector<int32_t> i32{-5, 1 << 30, 3, 4, 5, 6};
  std::vector<uint64_t> u64{~uint64_t{0}, 1, 0x8000000000000000ull, 42};
  m.add("f", Array::from<float>({3}, f));
  m.add("i8", Array::from<int8_t>({5, 1}, i8));
  m.add("u8", Array::from<uint8_t>({3}, u8));
  m.add("i16", Array::from<int16_t>({2, 2}, i16));
  m.add("i32", Array::from<int32_t>({2, 3}, i32));
  m.add("bits", Array::from<uint64_t>({2, 2}, u64));
  m.add("empty", Array::zeros(ElemType::F32, {0, 4}));
  m.add("scalar", Array::from<int32_t>({}, std::vector<int32_t>{9}));
  return m;
}

TEST(IoModelFile, RoundTripEveryDtype) {
  const fs::path dir = temp_dir("roundtrip");
  const std::string path = (dir / "m.lbm").string();
  const ModelFile m = sample_model();
  save(path, m);
  const ModelFile r = load(path);
  ASSERT_EQ(r.tensors.size(), m.tensors.size());
  for (std::size_t i = 0; i < m.tensors.size(); ++i) {
    const auto& [name, a] = m.tensors[i];
    const Array& b = r.get(name);
    EXPECT_EQ(r.tensors[i].first, name);  // order kept
    EXPECT_EQ(a.type(), b.type()) << name;
    EXPECT_EQ(a.shape(), b.shape()) << name;
    ASSERT_EQ(a.nbytes(), b.nbytes()) << name;
    EXPECT_EQ(0, std::memcmp(a.bytes(), b.bytes(), a.nbytes())) << name;
  }
  EXPECT_NE(r.metadata.find("\"format\":\"lowbit\""), std::string::npos) << r.metadata;
  EXPECT_NE(r.metadata.find("\"format_version\":1"), std::string::npos);
  EXPECT_NE(r.metadata.find("\"layers\":[1,2,3]"), std::string::npos);
  EXPECT_EQ(r.get("bits").values<uint64_t>()[2], 0x8000000000000000ull);
  EXPECT_THROW(r.get("missing"), Error);
  EXPECT_THROW(r.get("f").values<int32_t>(), Error);

  // Layout: the data section and every tensor start 64-byte aligned in the file.
  const std::vector<uint8_t> bytes = read_bytes(path);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t{bytes[i]} << (8 * i);
  EXPECT_EQ((8 + n) % 64, 0u);
  EXPECT_EQ(bytes, serialize(m));
  fs::remove_all(dir);
}

TEST(IoModelFile, SerializeRejectsBadInput) {
  ModelFile m;
  m.metadata = "[1]";
  EXPECT_THROW(serialize(m), Error);
  m.metadata = R"({"format":"other"})";
  EXPECT_THROW(serialize(m), Error);
  m.metadata = "{}";
  EXPECT_THROW(m.add("__metadata__", Array::zeros(ElemType::U8, {1})), Error);
  m.add("a", Array::zeros(ElemType::U8, {1}));
  EXPECT_THROW(m.add("a", Array::zeros(ElemType::U8, {1})), Error);
}

TEST(IoModelFile, CorruptionCasesNameTheProblem) {
  const std::vector<uint8_t> good = serialize(sample_model());
  ASSERT_NO_THROW(parse(good, "m.lbm"));

  auto has = [](const std::string& msg, const std::string& needle) {
    EXPECT_NE(msg.find("m.lbm"), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << "'" << msg << "' lacks '" << needle << "'";
  };
  has(expect_error(std::span(good).first(5)), "shorter than the 8-byte");
  has(expect_error(std::vector<uint8_t>{}), "shorter than the 8-byte");

  std::vector<uint8_t> absurd = good;
  absurd[7] = 0x40;
  has(expect_error(absurd), "absurd");
  std::vector<uint8_t> beyond = good;
  beyond[0] = 0xff;
  beyond[1] = 0xff;
  beyond[2] = 0x0f;
  has(expect_error(beyond), "exceeds");

  std::vector<uint8_t> data(64, 0);
  has(expect_error(make_image(padded("{not json"), {})), "not valid JSON");
  has(expect_error(make_image(padded("[1,2]"), {})), "not a JSON object");
  has(expect_error(make_image(padded(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})"), data)),
      "not a lowbit model file");
  has(expect_error(make_image(padded(R"({"__metadata__":{"format":"safetensors"}})"), {})), "not a lowbit model file");
  has(expect_error(make_image(padded(R"({"__metadata__":{"format":"lowbit","format_version":99}})"), {})), "newer");
  has(expect_error(make_image(padded(R"({"__metadata__":{"format":"lowbit"}})"), {})), "format_version");

  auto one = [&](const std::string& entry, const std::vector<uint8_t>& d) {
    return expect_error(make_image(padded(std::string("{") + kMeta + ",\"t\":" + entry + "}"), d));
  };
  has(one(R"({"dtype":"F16","shape":[2],"data_offsets":[0,4]})", std::vector<uint8_t>(4)), "unknown dtype");
  has(one(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})", std::vector<uint8_t>(8)), "needs 12");
  has(one(R"({"dtype":"F32","shape":[-1],"data_offsets":[0,4]})", std::vector<uint8_t>(4)), "shape dimension");
  has(one(R"({"dtype":"F32","shape":[2.5],"data_offsets":[0,4]})", std::vector<uint8_t>(4)), "shape dimension");
  has(one(R"({"dtype":"F32","shape":"2","data_offsets":[0,4]})", std::vector<uint8_t>(4)), "shape");
  has(one(R"({"dtype":"F32","shape":[2],"data_offsets":[4,0]})", std::vector<uint8_t>(4)), "data_offsets");
  has(one(R"({"dtype":"F32","shape":[2],"data_offsets":[0]})", std::vector<uint8_t>(4)), "data_offsets");
  has(one(R"({"dtype":"F32","shape":[2]})", std::vector<uint8_t>(4)), "data_offsets");
  has(one(R"({"dtype":"U8","shape":[64],"data_offsets":[64,128]})", std::vector<uint8_t>(100)), "truncated");
  has(one(R"({"dtype":"U8","shape":[4],"data_offsets":[1,5]})", std::vector<uint8_t>(5)), "aligned");
  has(one(R"({"dtype":"U8","shape":[4],"data_offsets":[0,4]})", std::vector<uint8_t>(9)), "after the last tensor");
  has(one(R"({"dtype":"U8","shape":[1099511627776,1099511627776],"data_offsets":[0,4]})", std::vector<uint8_t>(4)),
      "larger than the file");
  has(one("7", {}), "not a JSON object");
  has(expect_error(make_image(padded(std::string("{") + kMeta +
                                     R"(,"a":{"dtype":"U8","shape":[128],"data_offsets":[0,128]},)" +
                                     R"("b":{"dtype":"U8","shape":[64],"data_offsets":[64,128]}})"),
                              std::vector<uint8_t>(128))),
      "overlap");
  // Deep nesting is refused before parsing.
  has(expect_error(make_image(padded(std::string(5000, '[') + std::string(5000, ']')), {})), "nests deeper");

  // Truncated data: the last byte missing.
  has(expect_error(std::span(good).first(good.size() - 1)), "truncated");
}

TEST(IoModelFile, TruncationAtEveryLengthNeverCrashes) {
  const std::vector<uint8_t> good = serialize(sample_model());
  for (std::size_t len = 0; len < good.size(); ++len) {
    EXPECT_THROW(parse(std::span(good).first(len), "m.lbm"), Error) << "length " << len;
  }
  EXPECT_NO_THROW(parse(good, "m.lbm"));
}

TEST(IoModelFile, RandomHeaderBitFlipsNeverCrash) {
  const std::vector<uint8_t> good = serialize(sample_model());
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t{good[i]} << (8 * i);
  std::mt19937_64 rng(20240611);
  int errors = 0, loads = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<uint8_t> b = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      const std::size_t pos = rng() % (8 + n);  // the length field and the header text
      b[pos] ^= static_cast<uint8_t>(1u << (rng() % 8));
    }
    try {
      const ModelFile m = parse(b, "m.lbm");
      // A valid load must be self-consistent.
      for (const auto& [name, a] : m.tensors) ASSERT_NE(a.bytes(), nullptr) << name;
      ++loads;
    } catch (const Error&) {
      ++errors;
    }
  }
  EXPECT_GT(errors, 0);
  EXPECT_EQ(errors + loads, 3000);
}

TEST(IoModelFile, FailedWriteLeavesTheOldFileIntact) {
  const fs::path dir = temp_dir("atomic");
  const std::string path = (dir / "m.lbm").string();
  const ModelFile old = sample_model();
  save(path, old);
  const std::vector<uint8_t> before = read_bytes(path);

  ModelFile big;
  big.add("w", Array::zeros(ElemType::U8, {1 << 20}));
  // Make the write itself fail: a file size limit below the new file (the kernel then
  // refuses the write with EFBIG instead of killing the process, as SIGXFSZ is ignored).
  struct rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  void (*old_handler)(int) = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = saved;
  small.rlim_cur = 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  std::string msg;
  try {
    save(path, big);
  } catch (const Error& e) {
    msg = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &saved);
  ::signal(SIGXFSZ, old_handler);
  EXPECT_NE(msg.find("m.lbm"), std::string::npos) << msg;
  EXPECT_NE(msg.find("write failed"), std::string::npos) << msg;
  EXPECT_EQ(read_bytes(path), before);
  EXPECT_NO_THROW(load(path));
  // No temporary file is left behind.
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);

  // A folder that does not exist, and a missing file.
  EXPECT_THROW(save((dir / "no" / "m.lbm").string(), old), Error);
  try {
    load((dir / "absent.lbm").string());
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("absent.lbm"), std::string::npos);
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace lowbit::io

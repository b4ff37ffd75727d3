#include "lowbit/data/idx.h"

#include <zlib.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <vector>

#include "lowbit/core/error.h"

namespace lowbit::data {
namespace {

// Reads the whole file through zlib, which passes uncompressed files through unchanged.
std::vector<unsigned char> read_all(const std::string& path) {
  std::error_code ec;
  LOWBIT_CHECK(std::filesystem::is_regular_file(path, ec), path, ": no such file");
  gzFile f = gzopen(path.c_str(), "rb");
  LOWBIT_CHECK(f != nullptr, path, ": cannot open");
  std::unique_ptr<gzFile_s, int (*)(gzFile)> guard(f, gzclose);
  std::vector<unsigned char> out;
  unsigned char buf[1 << 16];
  for (;;) {
    const int n = gzread(f, buf, sizeof buf);
    if (n < 0) {
      int err = 0;
      const char* msg = gzerror(f, &err);
      fail(path, ": corrupt compressed data (", msg, ")");
    }
    if (n == 0) break;
    out.insert(out.end(), buf, buf + n);
  }
  // zlib reports a gzip stream cut short as a clean end of file; ask it explicitly.
  int err = 0;
  const char* msg = gzerror(f, &err);
  LOWBIT_CHECK(err == Z_OK || err == Z_STREAM_END, path, ": corrupt or truncated compressed data (", msg, ")");
  return out;
}

uint32_t be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

}  // namespace

Tensor read_idx(const std::string& path) {
  std::vector<unsigned char> bytes = read_all(path);
  LOWBIT_CHECK(bytes.size() >= 4, path, ": truncated IDX header (", bytes.size(), " bytes)");
  LOWBIT_CHECK(bytes[0] == 0 && bytes[1] == 0, path, ": not an IDX file (magic number 0x", std::hex,
               (static_cast<unsigned>(bytes[0]) << 24 | static_cast<unsigned>(bytes[1]) << 16 |
                static_cast<unsigned>(bytes[2]) << 8 | bytes[3]),
               std::dec, " does not start with two zero bytes)");
  const unsigned type = bytes[2];
  const unsigned ndim = bytes[3];
  DType dtype;
  int elem = 0;
  switch (type) {
    case 0x08: dtype = DType::u8; elem = 1; break;
    case 0x09: dtype = DType::i8; elem = 1; break;
    case 0x0B: dtype = DType::i16; elem = 2; break;
    case 0x0C: dtype = DType::i32; elem = 4; break;
    case 0x0D: dtype = DType::f32; elem = 4; break;
    case 0x0E: dtype = DType::f32; elem = 8; break;
    default: fail(path, ": unknown IDX element type 0x", std::hex, type, std::dec,
                  " (expected 0x08, 0x09, 0x0B, 0x0C, 0x0D or 0x0E)");
  }
  LOWBIT_CHECK(ndim >= 1, path, ": IDX file with zero dimensions");
  const std::size_t header = 4 + 4 * static_cast<std::size_t>(ndim);
  LOWBIT_CHECK(bytes.size() >= header, path, ": truncated IDX header (", ndim, " dimensions need ", header,
               " bytes, the file has ", bytes.size(), ")");
  Shape shape;
  uint64_t count = 1;
  for (unsigned d = 0; d < ndim; ++d) {
    const uint32_t n = be32(&bytes[4 + 4 * d]);
    shape.push_back(n);
    LOWBIT_CHECK(n == 0 || count <= (uint64_t{1} << 40) / n, path, ": IDX dimensions ", shape_str(shape),
                 " are implausibly large");
    count *= n;
  }
  const uint64_t body = count * elem;
  LOWBIT_CHECK(bytes.size() - header >= body, path, ": truncated IDX data: shape ", shape_str(shape), " needs ",
               body, " bytes after the header, the file has ", bytes.size() - header);
  LOWBIT_CHECK(bytes.size() - header == body, path, ": ", bytes.size() - header - body,
               " unexpected bytes after the IDX data of shape ", shape_str(shape));
  Tensor t = Tensor::zeros(shape, dtype);
  const unsigned char* p = bytes.data() + header;
  switch (type) {
    case 0x08:
    case 0x09: std::memcpy(t.raw(), p, count); break;
    case 0x0B: {
      auto* d = t.data<int16_t>();
      for (uint64_t i = 0; i < count; ++i) d[i] = static_cast<int16_t>((p[2 * i] << 8) | p[2 * i + 1]);
      break;
    }
    case 0x0C: {
      auto* d = t.data<int32_t>();
      for (uint64_t i = 0; i < count; ++i) d[i] = static_cast<int32_t>(be32(p + 4 * i));
      break;
    }
    case 0x0D: {
      auto* d = t.data<float>();
      for (uint64_t i = 0; i < count; ++i) {
        const uint32_t u = be32(p + 4 * i);
        std::memcpy(&d[i], &u, 4);
      }
      break;
    }
    case 0x0E: {
      auto* d = t.data<float>();
      for (uint64_t i = 0; i < count; ++i) {
        const uint64_t u = (uint64_t{be32(p + 8 * i)} << 32) | be32(p + 8 * i + 4);
        double v;
        std::memcpy(&v, &u, 8);
        d[i] = static_cast<float>(v);
      }
      break;
    }
  }
  return t;
}

void write_idx(const std::string& path, const Tensor& t) {
  unsigned type = 0;
  switch (t.dtype()) {
    case DType::u8: type = 0x08; break;
    case DType::i8: type = 0x09; break;
    case DType::i16: type = 0x0B; break;
    case DType::i32: type = 0x0C; break;
    case DType::f32: type = 0x0D; break;
    default: fail("write_idx: ", t.describe(), " cannot be written as IDX (u8, i8, i16, i32 or f32 expected)");
  }
  LOWBIT_CHECK(t.dim() >= 1 && t.dim() <= 255, "write_idx: ", t.describe(), " needs 1 to 255 dimensions");
  LOWBIT_CHECK(t.is_contiguous(), "write_idx: ", t.describe(), " is not contiguous");
  std::vector<unsigned char> out{0, 0, static_cast<unsigned char>(type), static_cast<unsigned char>(t.dim())};
  auto put32 = [&](uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<unsigned char>(v >> s));
  };
  for (int64_t d : t.shape()) {
    LOWBIT_CHECK(d <= std::numeric_limits<uint32_t>::max(), "write_idx: dimension ", d, " too large");
    put32(static_cast<uint32_t>(d));
  }
  const int64_t n = t.numel();
  const auto* raw = static_cast<const unsigned char*>(t.raw());
  const int elem = dtype_size(t.dtype());
  for (int64_t i = 0; i < n; ++i)
    for (int b = elem - 1; b >= 0; --b) out.push_back(raw[i * elem + b]);  // little to big endian
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    LOWBIT_CHECK(f.good(), path, ": cannot write");
    f.write(reinterpret_cast<const char*>(out.data()), static_cast<std::streamsize>(out.size()));
    LOWBIT_CHECK(f.good(), path, ": write failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  LOWBIT_CHECK(!ec, path, ": cannot rename the temporary file (", ec.message(), ")");
}

LabelledImages load_idx_split(const std::string& dir, const std::string& name, int classes) {
  LOWBIT_CHECK(std::filesystem::is_directory(dir), dir, ": no such directory");
  // The split's names: MNIST's (and Fashion-MNIST's, KMNIST's) "train" / "t10k", and "test" as
  // EMNIST calls its test split.
  std::vector<std::string> names{name};
  if (name == "t10k") names.push_back("test");
  // Every accepted file name of one kind of file, without a prefix.
  auto file_names = [&](const std::string& kind, const std::string& idx) {
    std::vector<std::string> out;
    for (const std::string& n : names)
      for (const std::string sep : {"-", "."})
        for (const std::string ext : {"", ".gz"}) out.push_back(n + "-" + kind + sep + idx + "-ubyte" + ext);
    return out;
  };
  auto exact = [&](const std::string& prefix, const std::string& kind, const std::string& idx) -> std::string {
    for (const std::string& f : file_names(kind, idx)) {
      const std::string p = (std::filesystem::path(dir) / (prefix + f)).string();
      if (std::filesystem::is_regular_file(p)) return p;
    }
    return {};
  };
  // Images: NAME-images-idx3-ubyte[.gz], or one file that ends so after a prefix
  // (emnist-digits-train-images-idx3-ubyte.gz); the labels then carry the same prefix.
  std::string prefix, ip = exact("", "images", "idx3");
  if (ip.empty()) {
    std::vector<std::pair<std::string, std::string>> found;  // (prefix, path)
    const std::vector<std::string> tails = file_names("images", "idx3");
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
      if (!e.is_regular_file(ec)) continue;
      const std::string f = e.path().filename().string();
      for (const std::string& t : tails)
        if (f.size() > t.size() + 1 && f.compare(f.size() - t.size() - 1, t.size() + 1, "-" + t) == 0)
          found.emplace_back(f.substr(0, f.size() - t.size()), e.path().string());
    }
    if (found.size() > 1) {
      std::string list;
      for (const auto& [pre, path] : found) {
        if (!list.empty()) list += ", ";
        list += std::filesystem::path(path).filename().string();
      }
      fail(dir, ": several ", name, " image files (", list, "); point --data at a folder holding one dataset");
    }
    if (found.empty())
      fail(dir, ": no ", name, "-images-idx3-ubyte[.gz] file (is --data the folder holding the IDX files?)");
    prefix = found.front().first;
    ip = found.front().second;
  }
  const std::string lp = exact(prefix, "labels", "idx1");
  if (lp.empty())
    fail(dir, ": no ", prefix, name, "-labels-idx1-ubyte[.gz] file beside ", std::filesystem::path(ip).filename().string());
  LabelledImages out{read_idx(ip), read_idx(lp)};
  LOWBIT_CHECK(out.images.dtype() == DType::u8 && out.images.dim() == 3, ip, ": expected u8 images [N, rows, cols], got ",
               out.images.describe());
  LOWBIT_CHECK(out.labels.dtype() == DType::u8 && out.labels.dim() == 1, lp, ": expected u8 labels [N], got ",
               out.labels.describe());
  LOWBIT_CHECK(out.images.size(0) == out.labels.size(0), lp, ": ", out.labels.size(0), " labels for ",
               out.images.size(0), " images in ", ip);
  const uint8_t* l = out.labels.data<uint8_t>();
  for (int64_t i = 0; i < out.labels.size(0); ++i)
    LOWBIT_CHECK(l[i] < classes, lp, ": label ", int{l[i]}, " of item ", i, " is not below ", classes);
  return out;
}

}  // namespace lowbit::data

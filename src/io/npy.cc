// NumPy .npy reading and writing; see io/npy.h.
#include "lowbit/io/npy.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <iterator>

#include "lowbit/core/error.h"

namespace lowbit::io {

const char* npy_type_descr(NpyType t) {
  switch (t) {
    case NpyType::i8: return "|i1";
    case NpyType::u8: return "|u1";
    case NpyType::i16: return "<i2";
    case NpyType::i32: return "<i4";
    case NpyType::i64: return "<i8";
    case NpyType::f32: return "<f4";
  }
  return "?";
}

int npy_type_size(NpyType t) {
  switch (t) {
    case NpyType::i8:
    case NpyType::u8: return 1;
    case NpyType::i16: return 2;
    case NpyType::i32:
    case NpyType::f32: return 4;
    case NpyType::i64: return 8;
  }
  return 1;
}

namespace {

constexpr char kMagic[] = "\x93NUMPY";

// The value text of `key` in the header dictionary (up to the next top-level comma or brace).
std::string dict_value(const std::string& h, const std::string& key, const std::string& source) {
  const std::string k1 = "'" + key + "'", k2 = "\"" + key + "\"";
  std::size_t p = h.find(k1);
  std::size_t klen = k1.size();
  if (p == std::string::npos) {
    p = h.find(k2);
    klen = k2.size();
  }
  LOWBIT_CHECK(p != std::string::npos, source, ": .npy header has no '", key, "' entry");
  p = h.find(':', p + klen);
  LOWBIT_CHECK(p != std::string::npos, source, ": malformed .npy header (no ':' after '", key, "')");
  ++p;
  while (p < h.size() && std::isspace(static_cast<unsigned char>(h[p]))) ++p;
  std::size_t e = p;
  if (e < h.size() && h[e] == '(') {
    e = h.find(')', e);
    LOWBIT_CHECK(e != std::string::npos, source, ": malformed .npy header (unterminated shape)");
    return h.substr(p, e - p + 1);
  }
  while (e < h.size() && h[e] != ',' && h[e] != '}') ++e;
  std::string v = h.substr(p, e - p);
  while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.pop_back();
  return v;
}

}  // namespace

NpyArray parse_npy(const std::vector<uint8_t>& bytes, const std::string& source) {
  LOWBIT_CHECK(bytes.size() >= 10 && std::memcmp(bytes.data(), kMagic, 6) == 0, source,
               ": not a .npy file (bad magic; expected \\x93NUMPY)");
  const int major = bytes[6];
  LOWBIT_CHECK(major >= 1 && major <= 3, source, ": unsupported .npy format version ", major, ".", int(bytes[7]));
  std::size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = bytes[8] | (bytes[9] << 8);
    offset = 10;
  } else {
    LOWBIT_CHECK(bytes.size() >= 12, source, ": truncated .npy header");
    header_len = static_cast<std::size_t>(bytes[8]) | (static_cast<std::size_t>(bytes[9]) << 8) |
                 (static_cast<std::size_t>(bytes[10]) << 16) | (static_cast<std::size_t>(bytes[11]) << 24);
    offset = 12;
  }
  LOWBIT_CHECK(bytes.size() >= offset + header_len, source, ": truncated .npy header (", header_len, " bytes declared)");
  const std::string h(bytes.begin() + static_cast<std::ptrdiff_t>(offset),
                      bytes.begin() + static_cast<std::ptrdiff_t>(offset + header_len));
  LOWBIT_CHECK(h.find('{') != std::string::npos && h.find('}') != std::string::npos, source,
               ": malformed .npy header (no dictionary)");
  NpyArray a;
  std::string descr = dict_value(h, "descr", source);
  LOWBIT_CHECK(descr.size() >= 2 && (descr.front() == '\'' || descr.front() == '"'), source,
               ": .npy dtype ", descr, " is not supported (structured arrays are not)");
  descr = descr.substr(1, descr.size() - 2);
  const struct {
    const char* d;
    NpyType t;
  } known[] = {{"|i1", NpyType::i8}, {"i1", NpyType::i8}, {"<i1", NpyType::i8}, {"|u1", NpyType::u8},
               {"u1", NpyType::u8},  {"<u1", NpyType::u8}, {"<i2", NpyType::i16}, {"<i4", NpyType::i32},
               {"<i8", NpyType::i64}, {"<f4", NpyType::f32}};
  bool found = false;
  for (const auto& k : known)
    if (descr == k.d) {
      a.type = k.t;
      found = true;
    }
  LOWBIT_CHECK(found, source, ": .npy dtype '", descr,
               "' is not supported (expected little-endian int8, uint8, int16, int32, int64 or float32)");
  const std::string fortran = dict_value(h, "fortran_order", source);
  LOWBIT_CHECK(fortran == "False" || fortran == "True", source, ": malformed fortran_order ", fortran);
  LOWBIT_CHECK(fortran == "False", source, ": Fortran-order .npy arrays are not supported (save a C-order array)");
  const std::string shape = dict_value(h, "shape", source);
  LOWBIT_CHECK(shape.size() >= 2 && shape.front() == '(' && shape.back() == ')', source, ": malformed .npy shape ", shape);
  std::size_t p = 1;
  while (p < shape.size() - 1) {
    while (p < shape.size() - 1 && (shape[p] == ' ' || shape[p] == ',')) ++p;
    if (p >= shape.size() - 1) break;
    LOWBIT_CHECK(std::isdigit(static_cast<unsigned char>(shape[p])), source, ": malformed .npy shape ", shape);
    int64_t v = 0;
    while (p < shape.size() - 1 && std::isdigit(static_cast<unsigned char>(shape[p]))) {
      v = v * 10 + (shape[p] - '0');
      LOWBIT_CHECK(v < (int64_t{1} << 40), source, ": .npy dimension too large in ", shape);
      ++p;
    }
    while (p < shape.size() - 1 && shape[p] == 'L') ++p;
    a.shape.push_back(v);
  }
  const std::size_t need = static_cast<std::size_t>(a.numel()) * static_cast<std::size_t>(npy_type_size(a.type));
  const std::size_t have = bytes.size() - offset - header_len;
  LOWBIT_CHECK(have >= need, source, ": truncated .npy data (", have, " bytes, ", need, " needed for shape ",
               shape_str(a.shape), ")");
  a.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(offset + header_len),
                bytes.begin() + static_cast<std::ptrdiff_t>(offset + header_len + need));
  return a;
}

NpyArray read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  LOWBIT_CHECK(in, path, ": cannot open .npy file");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_npy(bytes, path);
}

std::vector<uint8_t> serialize_npy(const NpyArray& a) {
  std::string shape = "(";
  for (std::size_t i = 0; i < a.shape.size(); ++i) shape += std::to_string(a.shape[i]) + ", ";
  if (a.shape.size() > 1) shape.resize(shape.size() - 2);
  else if (a.shape.size() == 1) shape.resize(shape.size() - 1);
  shape += ")";
  std::string h = std::string("{'descr': '") + npy_type_descr(a.type) + "', 'fortran_order': False, 'shape': " + shape + ", }";
  const std::size_t total = 10 + h.size() + 1;
  h.append((64 - total % 64) % 64, ' ');
  h += '\n';
  std::vector<uint8_t> out(kMagic, kMagic + 6);
  out.push_back(1);
  out.push_back(0);
  out.push_back(static_cast<uint8_t>(h.size() & 0xff));
  out.push_back(static_cast<uint8_t>(h.size() >> 8));
  out.insert(out.end(), h.begin(), h.end());
  out.insert(out.end(), a.data.begin(), a.data.end());
  return out;
}

void write_npy(const std::string& path, const NpyArray& a) {
  LOWBIT_CHECK(a.data.size() == static_cast<std::size_t>(a.numel() * npy_type_size(a.type)),
               path, ": array data size does not match its shape");
  const std::vector<uint8_t> bytes = serialize_npy(a);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  LOWBIT_CHECK(out, path, ": cannot create .npy file");
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  LOWBIT_CHECK(out.good(), path, ": write failed");
}

}  // namespace lowbit::io

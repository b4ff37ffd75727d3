// Model file container: serialization, validation and atomic writes (layout in
// include/lowbit/io/model_file.h and docs/formats.md).
#include "lowbit/io/model_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "lowbit/core/aligned.h"

namespace lowbit::io {

static_assert(std::endian::native == std::endian::little,
              "model files are little-endian and are read and written without byte swapping");

namespace {

using json = nlohmann::ordered_json;

constexpr std::size_t kAlign = 64;
// A header is a few kilobytes for any real network; a length beyond this is a corrupt or
// foreign file, and refusing it early avoids allocating gigabytes on garbage.
constexpr uint64_t kMaxHeaderBytes = 64ull << 20;
// Shapes are validated before any product is formed, so no overflow can occur.
constexpr int64_t kMaxDim = int64_t{1} << 40;
constexpr int kMaxRank = 8;
// nlohmann's parser keeps its own stack, but destroying a deeply nested value recurses; a
// corrupted header with thousands of '[' must not be able to exhaust the stack.
constexpr int kMaxNesting = 32;

constexpr ElemType kAllTypes[] = {ElemType::F32, ElemType::I8, ElemType::U8,
                                  ElemType::I16, ElemType::I32, ElemType::U64};

std::size_t align_up(std::size_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

// Deepest nesting of arrays/objects in JSON text, ignoring brackets inside strings.
int nesting_depth(std::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char ch : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (ch == '\\') escaped = true;
      else if (ch == '"') in_string = false;
      continue;
    }
    if (ch == '"') in_string = true;
    else if (ch == '[' || ch == '{') deepest = std::max(deepest, ++depth);
    else if (ch == ']' || ch == '}') --depth;
  }
  return deepest;
}

bool parse_type(const std::string& name, ElemType* out) {
  for (ElemType t : kAllTypes)
    if (elem_type_name(t) == name) {
      *out = t;
      return true;
    }
  return false;
}

// Non-negative integer that fits int64 (JSON numbers may be unsigned, negative or floats).
bool as_index(const json& v, int64_t limit, int64_t* out) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(limit)) return false;
    *out = static_cast<int64_t>(u);
    return true;
  }
  if (v.is_number_integer()) {
    const int64_t i = v.get<int64_t>();
    if (i < 0 || i > limit) return false;
    *out = i;
    return true;
  }
  return false;
}

json metadata_object(const std::string& text) {
  json meta = json::parse(text, nullptr, /*allow_exceptions=*/false);
  LOWBIT_CHECK(!meta.is_discarded() && meta.is_object(),
               "io::serialize: metadata is not a JSON object: ", text.substr(0, 80));
  if (meta.contains("format"))
    LOWBIT_CHECK(meta["format"] == "lowbit", "io::serialize: metadata \"format\" is ", meta["format"].dump(),
                 " (expected \"lowbit\" or absent)");
  if (meta.contains("format_version"))
    LOWBIT_CHECK(meta["format_version"] == kFormatVersion, "io::serialize: metadata \"format_version\" is ",
                 meta["format_version"].dump(), " (this build writes ", kFormatVersion, ")");
  // The format keys come first so that `head -c 200 model.lbm` identifies the file.
  json out = json::object();
  out["format"] = "lowbit";
  out["format_version"] = kFormatVersion;
  for (auto it = meta.begin(); it != meta.end(); ++it)
    if (it.key() != "format" && it.key() != "format_version") out[it.key()] = it.value();
  return out;
}

}  // namespace

std::string_view elem_type_name(ElemType t) {
  switch (t) {
    case ElemType::F32: return "F32";
    case ElemType::I8: return "I8";
    case ElemType::U8: return "U8";
    case ElemType::I16: return "I16";
    case ElemType::I32: return "I32";
    case ElemType::U64: return "U64";
  }
  return "?";
}

int elem_type_size(ElemType t) {
  switch (t) {
    case ElemType::F32: return 4;
    case ElemType::I8: return 1;
    case ElemType::U8: return 1;
    case ElemType::I16: return 2;
    case ElemType::I32: return 4;
    case ElemType::U64: return 8;
  }
  return 0;
}

Array Array::zeros(ElemType type, const Shape& shape) {
  for (int64_t d : shape)
    LOWBIT_CHECK(d >= 0 && d <= kMaxDim, "io::Array: dimension ", d, " of shape ", shape_str(shape),
                 " is out of range");
  Array a;
  a.type_ = type;
  a.shape_ = shape;
  // At least one byte so that even an empty array has storage to point at.
  const std::size_t bytes = std::max<std::size_t>(1, a.nbytes());
  a.data_ = std::shared_ptr<uint8_t>(static_cast<uint8_t*>(aligned_alloc_zeroed(bytes)), AlignedDeleter{});
  return a;
}

void Array::check(ElemType want) const {
  LOWBIT_CHECK(type_ == want, "io::Array: element type is ", elem_type_name(type_), ", accessed as ",
               elem_type_name(want));
}

void ModelFile::add(const std::string& name, Array a) {
  LOWBIT_CHECK(!name.empty() && name != "__metadata__", "ModelFile::add: invalid tensor name '", name, "'");
  LOWBIT_CHECK(!contains(name), "ModelFile::add: tensor '", name, "' added twice");
  tensors.emplace_back(name, std::move(a));
}

bool ModelFile::contains(const std::string& name) const {
  return std::any_of(tensors.begin(), tensors.end(), [&](const auto& t) { return t.first == name; });
}

const Array& ModelFile::get(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.first == name) return t.second;
  fail("model file has no tensor '", name, "'");
}

std::vector<uint8_t> serialize(const ModelFile& model) {
  json header = json::object();
  header["__metadata__"] = metadata_object(model.metadata);
  std::vector<std::size_t> begins;
  std::size_t offset = 0;
  for (const auto& [name, a] : model.tensors) {
    LOWBIT_CHECK(name != "__metadata__" && !name.empty() && !header.contains(name),
                 "io::serialize: invalid or duplicate tensor name '", name, "'");
    offset = align_up(offset);
    begins.push_back(offset);
    json shape = json::array();
    for (int64_t d : a.shape()) shape.push_back(d);
    header[name] = {{"dtype", std::string(elem_type_name(a.type()))},
                    {"shape", shape},
                    {"data_offsets", {offset, offset + a.nbytes()}}};
    offset += a.nbytes();
  }
  std::string text = header.dump();
  // Pad with spaces (valid JSON whitespace) so that the data section starts 64-byte aligned;
  // the aligned offsets above then align every tensor in the file.
  text.resize(align_up(8 + text.size()) - 8, ' ');

  std::vector<uint8_t> out(8 + text.size() + offset, 0);
  const uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  std::memcpy(out.data() + 8, text.data(), text.size());
  uint8_t* data = out.data() + 8 + text.size();
  for (std::size_t i = 0; i < model.tensors.size(); ++i) {
    const Array& a = model.tensors[i].second;
    if (a.nbytes() > 0) std::memcpy(data + begins[i], a.bytes(), a.nbytes());
  }
  return out;
}

ModelFile parse(std::span<const uint8_t> bytes, const std::string& source) {
  const std::string& f = source;
  LOWBIT_CHECK(bytes.size() >= 8, f, ": not a lowbit model file (", bytes.size(),
               " bytes, shorter than the 8-byte header length)");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(bytes[i]) << (8 * i);
  LOWBIT_CHECK(n >= 2 && n <= kMaxHeaderBytes, f, ": header length ", n, " is absurd (expected 2 to ",
               kMaxHeaderBytes, " bytes; not a lowbit model file?)");
  LOWBIT_CHECK(n <= bytes.size() - 8, f, ": header length ", n, " exceeds the ", bytes.size() - 8,
               " bytes after it (file truncated?)");
  const std::string_view text(reinterpret_cast<const char*>(bytes.data() + 8), n);
  LOWBIT_CHECK(nesting_depth(text) <= kMaxNesting, f, ": header nests deeper than ", kMaxNesting,
               " levels (corrupt header)");
  const json header = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  LOWBIT_CHECK(!header.is_discarded(), f, ": header is not valid JSON (corrupt or not a lowbit model file)");
  LOWBIT_CHECK(header.is_object(), f, ": header is not a JSON object (not a lowbit model file)");

  auto meta_it = header.find("__metadata__");
  if (meta_it == header.end() || !meta_it->is_object() || !meta_it->contains("format") ||
      (*meta_it)["format"] != "lowbit")
    fail(f, ": not a lowbit model file (no \"format\": \"lowbit\" in __metadata__)");
  const json& meta = *meta_it;
  int64_t version = 0;
  LOWBIT_CHECK(meta.contains("format_version") && as_index(meta["format_version"], 1 << 30, &version) &&
                   version >= 1,
               f, ": __metadata__ has no valid \"format_version\" (expected a positive integer)");
  LOWBIT_CHECK(version <= kFormatVersion, f, ": format_version ", version, " is newer than this build reads (",
               kFormatVersion, "); upgrade lowbit");

  const std::size_t data_start = 8 + n;
  const std::size_t data_size = bytes.size() - data_start;
  struct Entry {
    std::string name;
    ElemType type;
    Shape shape;
    std::size_t begin, end;
  };
  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const std::string where = f + ": tensor '" + it.key() + "'";
    const json& e = it.value();
    LOWBIT_CHECK(e.is_object(), where, ": entry is not a JSON object");
    Entry en{it.key(), ElemType::U8, {}, 0, 0};
    LOWBIT_CHECK(e.contains("dtype") && e["dtype"].is_string(), where, ": missing \"dtype\"");
    LOWBIT_CHECK(parse_type(e["dtype"].get<std::string>(), &en.type), where, ": unknown dtype ", e["dtype"].dump(),
                 " (expected F32, I8, U8, I16, I32 or U64)");
    LOWBIT_CHECK(e.contains("shape") && e["shape"].is_array() && e["shape"].size() <= kMaxRank, where,
                 ": \"shape\" must be an array of at most ", kMaxRank, " dimensions");
    for (const json& d : e["shape"]) {
      int64_t v = 0;
      LOWBIT_CHECK(as_index(d, kMaxDim, &v), where, ": shape dimension ", d.dump(), " is not an integer in [0, 2^40]");
      en.shape.push_back(v);
    }
    // Rank <= 8 and dimensions <= 2^40, but the product may still overflow: bound it by the
    // file size, a tensor cannot be larger than the data it comes from.
    uint64_t numel = 1;
    for (int64_t d : en.shape) {
      if (d == 0) { numel = 0; break; }
      LOWBIT_CHECK(numel <= bytes.size() / static_cast<uint64_t>(d), where, ": shape ", shape_str(en.shape),
                   " is larger than the file");
      numel *= static_cast<uint64_t>(d);
    }
    const uint64_t nbytes = numel * static_cast<uint64_t>(elem_type_size(en.type));
    const json& off = e.contains("data_offsets") ? e["data_offsets"] : json();
    int64_t b = 0, en_ = 0;
    LOWBIT_CHECK(off.is_array() && off.size() == 2 && as_index(off[0], std::numeric_limits<int64_t>::max(), &b) &&
                     as_index(off[1], std::numeric_limits<int64_t>::max(), &en_) && b <= en_,
                 where, ": \"data_offsets\" must be [begin, end] with 0 <= begin <= end");
    en.begin = static_cast<std::size_t>(b);
    en.end = static_cast<std::size_t>(en_);
    LOWBIT_CHECK(en.end - en.begin == nbytes, where, ": data_offsets [", en.begin, ", ", en.end, "] hold ",
                 en.end - en.begin, " bytes, but ", elem_type_name(en.type), " ", shape_str(en.shape), " needs ",
                 nbytes);
    LOWBIT_CHECK(en.end <= data_size, where, ": data ends at byte ", en.end, " of the data section, which has only ",
                 data_size, " bytes (file truncated?)");
    LOWBIT_CHECK((data_start + en.begin) % kAlign == 0, where, ": data starts at file offset ",
                 data_start + en.begin, ", not 64-byte aligned");
    entries.push_back(std::move(en));
  }

  std::vector<const Entry*> by_offset;
  for (const Entry& e : entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  std::size_t covered = 0;
  const Entry* prev = nullptr;
  for (const Entry* e : by_offset) {
    if (e->begin == e->end) continue;  // empty tensors occupy no bytes and cannot overlap
    LOWBIT_CHECK(e->begin >= covered, f, ": tensors '", prev ? prev->name : "", "' and '", e->name,
                 "' overlap in the data section");
    covered = e->end;
    prev = e;
  }
  LOWBIT_CHECK(covered == data_size, f, ": ", data_size - covered,
               " bytes after the last tensor (expected the file to end with its data)");

  ModelFile model;
  model.metadata = meta.dump();
  for (const Entry& e : entries) {
    Array a = Array::zeros(e.type, e.shape);
    if (a.nbytes() > 0) std::memcpy(a.bytes(), bytes.data() + data_start + e.begin, a.nbytes());
    model.tensors.emplace_back(e.name, std::move(a));
  }
  return model;
}

namespace {

// Writes all of `data` to fd, retrying short writes and interruptions.
bool write_all(int fd, const uint8_t* data, std::size_t size, int* err) {
  while (size > 0) {
    const ssize_t w = ::write(fd, data, std::min<std::size_t>(size, 1 << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      *err = errno;
      return false;
    }
    data += w;
    size -= static_cast<std::size_t>(w);
  }
  return true;
}

}  // namespace

void save(const std::string& path, const ModelFile& model) {
  const std::vector<uint8_t> image = serialize(model);
  // The temporary file lives in the destination folder: rename() is atomic only within one
  // file system, and a reader never sees a partly written model under the final name.
  std::string tmp = path + ".tmp-XXXXXX";
  const int fd = ::mkstemp(tmp.data());
  LOWBIT_CHECK(fd >= 0, path, ": cannot create a temporary file beside it (", std::strerror(errno), ")");
  int err = 0;
  const char* step = nullptr;
  if (::fchmod(fd, 0644) != 0) {
    err = errno;
    step = "chmod";
  } else if (!write_all(fd, image.data(), image.size(), &err)) {
    step = "write";
  } else if (::fsync(fd) != 0) {  // data on disk before the name points at it
    err = errno;
    step = "fsync";
  }
  if (::close(fd) != 0 && step == nullptr) {
    err = errno;
    step = "close";
  }
  if (step == nullptr && std::rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    step = "rename";
  }
  if (step != nullptr) {
    ::unlink(tmp.c_str());
    fail(path, ": cannot save the model (", step, " failed: ", std::strerror(err), "); any previous file is unchanged");
  }
  // Make the rename itself durable. Best effort: some file systems refuse fsync on folders.
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

ModelFile load(const std::string& path) {
  std::error_code ec;
  LOWBIT_CHECK(std::filesystem::is_regular_file(path, ec), path, ": no such model file");
  std::ifstream in(path, std::ios::binary);
  LOWBIT_CHECK(in.good(), path, ": cannot open (", std::strerror(errno), ")");
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  LOWBIT_CHECK(size >= 0, path, ": cannot determine the file size");
  in.seekg(0, std::ios::beg);
  std::vector<uint8_t> bytes(static_cast<std::size_t>(size));
  if (size > 0) in.read(reinterpret_cast<char*>(bytes.data()), size);
  LOWBIT_CHECK(in.good() || (size == 0), path, ": read failed");
  return parse(bytes, path);
}

}  // namespace lowbit::io

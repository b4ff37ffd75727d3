#include "lowbit/data/cifar.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "lowbit/core/error.h"

namespace lowbit::data {
namespace fs = std::filesystem;

namespace {

std::vector<unsigned char> read_bytes(const std::string& path) {
  std::error_code ec;
  LOWBIT_CHECK(fs::is_regular_file(path, ec), path, ": no such file");
  const auto size = fs::file_size(path, ec);
  LOWBIT_CHECK(!ec, path, ": cannot read its size (", ec.message(), ")");
  std::ifstream f(path, std::ios::binary);
  LOWBIT_CHECK(f.good(), path, ": cannot open");
  std::vector<unsigned char> bytes(size);
  f.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  LOWBIT_CHECK(f.gcount() == static_cast<std::streamsize>(size), path, ": read ", f.gcount(), " of ", size, " bytes");
  return bytes;
}

// The number of records in a file of `size` bytes; a size that is not a whole number of records
// is an error naming the record cut short, so that a partial download is obvious.
int64_t record_count(const std::string& path, int64_t size) {
  LOWBIT_CHECK(size > 0, path, ": empty file (expected CIFAR-10 records of ", kCifarRecord, " bytes)");
  const int64_t n = size / kCifarRecord;
  LOWBIT_CHECK(size % kCifarRecord == 0, path, ": truncated record ", n, " (the file has ", size,
               " bytes, not a multiple of the ", kCifarRecord, "-byte CIFAR-10 record; ", n, " complete records)");
  return n;
}

void check_labels(const std::string& path, const std::vector<unsigned char>& bytes, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const unsigned label = bytes[static_cast<std::size_t>(i * kCifarRecord)];
    LOWBIT_CHECK(label < static_cast<unsigned>(kCifarClasses), path, ": label ", label, " of record ", i,
                 " is not below ", kCifarClasses, " (is this a CIFAR-10 binary batch file?)");
  }
}

// Copies the records of `bytes` into rows [first, first + n) of the output tensors.
void copy_records(const std::vector<unsigned char>& bytes, int64_t n, int64_t first, LabelledImages& out) {
  uint8_t* img = out.images.data<uint8_t>() + first * kCifarPixels;
  uint8_t* lab = out.labels.data<uint8_t>() + first;
  for (int64_t i = 0; i < n; ++i) {
    const unsigned char* rec = bytes.data() + i * kCifarRecord;
    lab[i] = rec[0];
    std::memcpy(img + i * kCifarPixels, rec + 1, kCifarPixels);
  }
}

LabelledImages allocate(int64_t n) {
  return {Tensor::zeros({n, kCifarChannels, kCifarSide, kCifarSide}, DType::u8), Tensor::zeros({n}, DType::u8)};
}

}  // namespace

LabelledImages read_cifar10_file(const std::string& path) {
  const std::vector<unsigned char> bytes = read_bytes(path);
  const int64_t n = record_count(path, static_cast<int64_t>(bytes.size()));
  check_labels(path, bytes, n);
  LabelledImages out = allocate(n);
  copy_records(bytes, n, 0, out);
  return out;
}

LabelledImages load_cifar10(const std::string& dir, bool train) {
  std::error_code ec;
  LOWBIT_CHECK(fs::is_directory(dir, ec), dir, ": no such directory");
  fs::path base = dir;
  const fs::path inner = base / "cifar-10-batches-bin";
  const std::string first = train ? "data_batch_1.bin" : "test_batch.bin";
  if (!fs::exists(base / first, ec) && fs::is_directory(inner, ec)) base = inner;

  std::vector<std::string> names;
  if (train)
    for (int i = 1; i <= 5; ++i) names.push_back("data_batch_" + std::to_string(i) + ".bin");
  else
    names.push_back("test_batch.bin");
  for (const std::string& name : names)
    LOWBIT_CHECK(fs::is_regular_file(base / name, ec), base.string(), ": missing ", name,
                 " (expected the CIFAR-10 binary version: data_batch_1.bin .. data_batch_5.bin and test_batch.bin)");

  // Sizes first (a truncated file fails before anything is read), then one file at a time
  // straight into the output, so the peak memory is the set plus one file.
  std::vector<int64_t> counts;
  int64_t total = 0;
  for (const std::string& name : names) {
    const fs::path path = base / name;
    const auto size = fs::file_size(path, ec);
    LOWBIT_CHECK(!ec, path.string(), ": cannot read its size (", ec.message(), ")");
    counts.push_back(record_count(path.string(), static_cast<int64_t>(size)));
    total += counts.back();
  }
  LabelledImages out = allocate(total);
  int64_t at = 0;
  for (std::size_t f = 0; f < names.size(); ++f) {
    const std::string path = (base / names[f]).string();
    const std::vector<unsigned char> bytes = read_bytes(path);
    LOWBIT_CHECK(static_cast<int64_t>(bytes.size()) == counts[f] * kCifarRecord, path, ": changed size while being read");
    check_labels(path, bytes, counts[f]);
    copy_records(bytes, counts[f], at, out);
    at += counts[f];
  }
  return out;
}

void write_cifar10_file(const std::string& path, const Tensor& images, const Tensor& labels) {
  LOWBIT_CHECK(images.dtype() == DType::u8 && images.shape() == (Shape{images.size(0), kCifarChannels, kCifarSide, kCifarSide}) &&
                   images.is_contiguous(),
               "write_cifar10_file: images must be contiguous u8 [N, 3, 32, 32], got ", images.describe());
  LOWBIT_CHECK(labels.dtype() == DType::u8 && labels.dim() == 1 && labels.size(0) == images.size(0) && labels.is_contiguous(),
               "write_cifar10_file: labels must be u8 [", images.size(0), "], got ", labels.describe());
  const int64_t n = images.size(0);
  const uint8_t* img = images.data<uint8_t>();
  const uint8_t* lab = labels.data<uint8_t>();
  std::vector<unsigned char> bytes(static_cast<std::size_t>(n * kCifarRecord));
  for (int64_t i = 0; i < n; ++i) {
    LOWBIT_CHECK(lab[i] < kCifarClasses, "write_cifar10_file: label ", int{lab[i]}, " of record ", i, " is not below ",
                 kCifarClasses);
    bytes[static_cast<std::size_t>(i * kCifarRecord)] = lab[i];
    std::memcpy(bytes.data() + i * kCifarRecord + 1, img + i * kCifarPixels, kCifarPixels);
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    LOWBIT_CHECK(f.good(), path, ": cannot write");
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    LOWBIT_CHECK(f.good(), path, ": write failed");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  LOWBIT_CHECK(!ec, path, ": cannot rename the temporary file (", ec.message(), ")");
}

}  // namespace lowbit::data

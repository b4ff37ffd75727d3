#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "lowbit/core/error.h"
#include "lowbit/data/cifar.h"
#include "test_util.h"

namespace lowbit::data {
namespace {

namespace fs = std::filesystem;

// Each test writes small CIFAR-10-format files into its own temporary folder.
class DataCifar : public lowbit::testing::TempDirTest {
 protected:

  // Record i of file f: label (f + i) % 10, pixel p = (f·31 + i·7 + p) mod 256.
  static std::vector<unsigned char> records(int f, int n) {
    std::vector<unsigned char> b;
    for (int i = 0; i < n; ++i) {
      b.push_back(static_cast<unsigned char>((f + i) % 10));
      for (int p = 0; p < 3072; ++p) b.push_back(static_cast<unsigned char>(f * 31 + i * 7 + p));
    }
    return b;
  }
  static void write(const fs::path& path, const std::vector<unsigned char>& b) {
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  }
  // Batches 1-5 with 2, 3, 1, 2, 4 records and a test batch of 3 records, in `d`.
  static void write_set(const fs::path& d) {
    fs::create_directories(d);
    const int counts[5] = {2, 3, 1, 2, 4};
    for (int f = 1; f <= 5; ++f) write(d / ("data_batch_" + std::to_string(f) + ".bin"), records(f, counts[f - 1]));
    write(d / "test_batch.bin", records(0, 3));
  }
  static void expect_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
    try {
      fn();
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      for (const std::string& part : parts)
        EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << "'" << part << "' not in: " << e.what();
    }
  }
};

TEST_F(DataCifar, LoadsTrainInBatchOrderAndTest) {
  write_set(dir_);
  const LabelledImages train = load_cifar10(dir_.string(), true);
  ASSERT_EQ(train.images.shape(), (Shape{12, 3, 32, 32}));
  ASSERT_EQ(train.labels.shape(), (Shape{12}));
  // Row 5 is the first record of batch 3 (after 2 + 3 records).
  const uint8_t* img = train.images.data<uint8_t>();
  EXPECT_EQ(train.labels.data<uint8_t>()[5], 3);
  EXPECT_EQ(img[5 * 3072 + 0], static_cast<uint8_t>(3 * 31));
  // The green plane starts at byte 1024 of a record: channel 1, row 0, column 0.
  EXPECT_EQ(img[5 * 3072 + 1024], static_cast<uint8_t>(3 * 31 + 1024));
  // Last record: batch 5, record 3.
  EXPECT_EQ(train.labels.data<uint8_t>()[11], (5 + 3) % 10);
  EXPECT_EQ(img[11 * 3072 + 3071], static_cast<uint8_t>(5 * 31 + 3 * 7 + 3071));

  const LabelledImages test = load_cifar10(dir_.string(), false);
  ASSERT_EQ(test.images.shape(), (Shape{3, 3, 32, 32}));
  EXPECT_EQ(test.labels.data<uint8_t>()[2], 2);
  EXPECT_EQ(test.images.data<uint8_t>()[2 * 3072 + 100], static_cast<uint8_t>(2 * 7 + 100));
}

TEST_F(DataCifar, AcceptsTheArchiveFolderAndRoundTrips) {
  write_set(dir_ / "cifar-10-batches-bin");
  const LabelledImages test = load_cifar10(dir_.string(), false);
  EXPECT_EQ(test.images.size(0), 3);
  EXPECT_EQ(load_cifar10(dir_.string(), true).images.size(0), 12);
  write_cifar10_file((dir_ / "copy.bin").string(), test.images, test.labels);
  const LabelledImages back = read_cifar10_file((dir_ / "copy.bin").string());
  EXPECT_EQ(fs::file_size(dir_ / "copy.bin"), 3u * 3073u);
  for (int64_t i = 0; i < test.images.numel(); ++i)
    ASSERT_EQ(back.images.data<uint8_t>()[i], test.images.data<uint8_t>()[i]);
  for (int64_t i = 0; i < 3; ++i) EXPECT_EQ(back.labels.data<uint8_t>()[i], test.labels.data<uint8_t>()[i]);
}

TEST_F(DataCifar, NamesTheMissingFile) {
  write_set(dir_);
  fs::remove(dir_ / "data_batch_4.bin");
  expect_error([&] { load_cifar10(dir_.string(), true); }, {"missing data_batch_4.bin"});
  EXPECT_NO_THROW(load_cifar10(dir_.string(), false));
  fs::remove(dir_ / "test_batch.bin");
  expect_error([&] { load_cifar10(dir_.string(), false); }, {"missing test_batch.bin"});
  expect_error([&] { load_cifar10((dir_ / "nowhere").string(), true); }, {"nowhere", "no such directory"});
}

TEST_F(DataCifar, NamesTheTruncatedRecord) {
  write_set(dir_);
  std::vector<unsigned char> b = records(2, 3);
  b.resize(b.size() - 1000);  // record 2 (0-based) cut short
  write(dir_ / "data_batch_2.bin", b);
  expect_error([&] { load_cifar10(dir_.string(), true); }, {"data_batch_2.bin", "truncated record 2"});
  // A 10 000-record file missing its last byte: the message names record 9999.
  write(dir_ / "big.bin", {});
  fs::resize_file(dir_ / "big.bin", 10000 * 3073 - 1);  // sparse: no 30 MB write
  expect_error([&] { read_cifar10_file((dir_ / "big.bin").string()); }, {"big.bin", "truncated record 9999"});
  write(dir_ / "empty.bin", {});
  expect_error([&] { read_cifar10_file((dir_ / "empty.bin").string()); }, {"empty.bin", "empty"});
}

TEST_F(DataCifar, NamesTheBadLabel) {
  write_set(dir_);
  std::vector<unsigned char> b = records(0, 3);
  b[2 * 3073] = 10;
  write(dir_ / "test_batch.bin", b);
  expect_error([&] { load_cifar10(dir_.string(), false); }, {"test_batch.bin", "label 10 of record 2"});
  b[2 * 3073] = 255;
  write(dir_ / "data_batch_5.bin", b);
  expect_error([&] { load_cifar10(dir_.string(), true); }, {"data_batch_5.bin", "label 255 of record 2"});
}

TEST_F(DataCifar, WriterChecksItsInputs) {
  Tensor images = Tensor::zeros({2, 3, 32, 32}, DType::u8);
  Tensor labels = Tensor::zeros({2}, DType::u8);
  labels.data<uint8_t>()[1] = 12;
  expect_error([&] { write_cifar10_file((dir_ / "x.bin").string(), images, labels); }, {"label 12 of record 1"});
  expect_error([&] { write_cifar10_file((dir_ / "x.bin").string(), Tensor::zeros({2, 3, 32}, DType::u8), labels); },
               {"[N, 3, 32, 32]"});
  EXPECT_FALSE(fs::exists(dir_ / "x.bin"));
}

}  // namespace
}  // namespace lowbit::data

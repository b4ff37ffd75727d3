// CIFAR-10, binary version ("cifar-10-batches-bin").
//
// The binary distribution holds six files: data_batch_1.bin .. data_batch_5.bin (10 000
// training images each) and test_batch.bin (10 000 test images). A file is a plain sequence of
// 3073-byte records: one label byte (0-9), then 3072 pixel bytes, the red plane, then the green
// plane, then the blue plane, each 32 x 32 in row-major order. That is already the [3, 32, 32]
// channel-first layout, so a record is copied as it is.
//
// The reader checks what a damaged or wrong download looks like: a missing file (named), a size
// that is not a whole number of records (the file and the index of the record cut short), and
// a label of 10 or more (the file and the record index).
#pragma once

#include <string>

#include "lowbit/core/tensor.h"
#include "lowbit/data/idx.h"

namespace lowbit::data {

inline constexpr int64_t kCifarChannels = 3;
inline constexpr int64_t kCifarSide = 32;
inline constexpr int64_t kCifarPixels = kCifarChannels * kCifarSide * kCifarSide;  // 3072
inline constexpr int64_t kCifarRecord = 1 + kCifarPixels;                          // 3073
inline constexpr int kCifarClasses = 10;

// One batch file -> u8 images [N, 3, 32, 32] and u8 labels [N].
LabelledImages read_cifar10_file(const std::string& path);

// The training set (data_batch_1..5.bin, in that order, 50 000 images) or the test set
// (test_batch.bin, 10 000 images) from `dir`. `dir` may be the folder holding the files or the
// folder that contains "cifar-10-batches-bin" (the unpacked archive's layout).
LabelledImages load_cifar10(const std::string& dir, bool train);

// Writes `images` (u8 [N, 3, 32, 32]) and `labels` (u8 [N], each below 10) as one CIFAR-10
// batch file, atomically (a temporary file, then a rename). For tests and for tools that cut
// subsets.
void write_cifar10_file(const std::string& path, const Tensor& images, const Tensor& labels);

}  // namespace lowbit::data

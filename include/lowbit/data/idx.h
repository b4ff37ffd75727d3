// IDX files (the format of MNIST and of many other datasets), plain or gzip-compressed.
//
// An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
// dimensions), one big-endian uint32 per dimension, then the elements in row-major order,
// big-endian. Type codes: 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64 (read as f32).
// The reader checks every part: a missing file, a wrong magic number, a truncated header or
// body, bytes past the end, or a corrupt gzip stream is an Error naming the file.
#pragma once

#include <string>

#include "lowbit/core/tensor.h"

namespace lowbit::data {

// Reads `path`; gzip compression is detected from the content, not the name.
Tensor read_idx(const std::string& path);

// Writes a u8, i8, i16, i32 or f32 tensor as an uncompressed IDX file (atomically: a temporary
// file in the same folder, then a rename).
void write_idx(const std::string& path, const Tensor& t);

struct LabelledImages {
  Tensor images;  // u8 [N, rows, cols]
  Tensor labels;  // u8 [N]
};

// MNIST-style split `name` ("train" or "t10k") from `dir`: NAME-images-idx3-ubyte and
// NAME-labels-idx1-ubyte, each optionally ending in .gz (the name with '.' before "idx" is
// also accepted; "t10k" also matches "test"). Without such files, a single images file whose
// name ends in "-NAME-images-idx3-ubyte[.gz]" is taken with the labels file of the same prefix
// (EMNIST: emnist-digits-train-images-idx3-ubyte.gz). Checks that the counts agree and that
// every label is below `classes`.
LabelledImages load_idx_split(const std::string& dir, const std::string& name, int classes = 10);

}  // namespace lowbit::data

// Integer-only inference of exported BNN/QNN feed-forward networks (MLPs and ConvNets).
//
// A Network is an input description followed by a chain of layers. Each layer is a linear
// operation (dense or 2-D convolution) producing an int32 accumulator per output channel,
// an optional 2x2-style max-pool of those accumulators, and an epilogue that turns the
// accumulators into the next layer's input:
//
//   Sign    -> packed ±1 bits      out = (acc >= threshold[c]) XOR flip[c]      (1 = +1)
//   Kbit    -> unsigned codes      code = #{ j : (acc >= threshold[c][j]) XOR flip[c] }
//   Affine  -> float logits        logit = scale[c] · acc + bias[c]   (last layer only)
//
// What a layer reads is what the previous one wrote: the input stage gives 8-bit codes (the
// raw pixels), a Sign epilogue gives bits, a Kbit epilogue gives codes. The accumulator is
// always an exact integer:
//
//   bits input   acc = Σ_valid w·a           w, a in {−1, +1}
//   codes input  acc = Σ_valid w·(2·x − z2)  w an int8 code, x in 0..255, z2 = input_zero2
//
// where the sum runs over the taps inside the image (a convolution's padding adds nothing,
// exactly as zero padding does in the training graph when x = z2/2 stands for the real value
// 0). The doubled form keeps a half-integer zero exact: pixels normalised as 2p/255 − 1 have
// zero at p = 127.5, z2 = 255; for p/255 and for k-bit activation codes z2 = 0. Max-pooling
// the accumulators before the epilogue is exact with respect to the training order
// linear -> max-pool -> batch norm, provided the map from acc to the pre-activation is
// increasing (positive input and weight scales), which holds for every network built by the
// fold helpers in runtime/fold.h.
//
// Spatial activations are NHWC. Bits are packed along channels (one packed row of C bits per
// pixel, layout of kernels/bitpack.h); a dense layer reads a spatial input flattened in
// (h, w, c) order. No float arithmetic runs before the last layer's Affine epilogue.
//
// The exporter builds a Network with add_dense / add_conv2d and saves it; docs/formats.md
// describes the file. predict / logits take u8 images [N, features] for any N: batches are
// cut into tiles so memory stays bounded, and the kernels use lowbit::num_threads() threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "lowbit/core/tensor.h"

namespace lowbit::io {
struct ModelFile;
}

namespace lowbit::runtime {

enum class InputLayout : uint8_t { hwc, chw };

// What the runtime is fed: u8 images with height·width·channels values each, in `layout`
// order. The training graph saw x = pixel · scale + offset; the runtime never uses scale and
// offset (the exporter folds them into the first layer), they are recorded for readers.
struct InputSpec {
  int64_t height = 1;
  int64_t width = 1;
  int64_t channels = 1;
  InputLayout layout = InputLayout::hwc;
  double scale = 1.0;
  double offset = 0.0;
  int64_t features() const { return height * width * channels; }
};

struct SignEpilogue {
  std::vector<int32_t> threshold;  // [C]
  std::vector<uint8_t> flip;       // [C], 0 or 1; empty means all 0
};
struct KbitEpilogue {
  int bits = 2;                    // 1..8; codes are 0 .. 2^bits − 1
  std::vector<int32_t> threshold;  // [C, 2^bits − 1], row-major; each row non-decreasing
  std::vector<uint8_t> flip;       // [C], 0 or 1; empty means all 0
};
struct AffineEpilogue {
  std::vector<float> scale;  // [C]
  std::vector<float> bias;   // [C]
};
using Epilogue = std::variant<SignEpilogue, KbitEpilogue, AffineEpilogue>;

// Weights are given as int8 values: ±1 when the layer reads bits (the runtime packs them,
// 1 = +1), signed integer codes when it reads codes (k-bit weights: 2j − (2^k − 1), binary:
// ±1). Their real value is code · (a positive per-layer step) in the training graph.
struct DenseSpec {
  int64_t out_features = 0;
  std::vector<int8_t> weight;  // [out_features, in_features], row-major
  Epilogue epilogue;
  int input_zero2 = 0;  // codes input only: 0..510 (see above)
};

struct MaxPool {
  int64_t kernel = 2;
  int64_t stride = 2;
};

struct Conv2dSpec {
  int64_t out_channels = 0;
  int64_t kernel_h = 3, kernel_w = 3;
  int64_t stride = 1;
  int64_t pad = 1;  // same on every side; padding taps contribute 0 to acc
  std::vector<int8_t> weight;  // [out_channels, kernel_h, kernel_w, in_channels], row-major
  std::optional<MaxPool> pool;  // floor mode: a partial window at the edge is dropped
  Epilogue epilogue;            // Sign or Kbit (a convolution cannot produce logits)
  int input_zero2 = 0;
};

class Layer;  // one stage; defined in src/runtime

class Network {
 public:
  explicit Network(const InputSpec& input);
  Network(Network&&) noexcept;
  Network& operator=(Network&&) noexcept;
  ~Network();

  // Append a stage. Validates the sizes against the current activation shape and the
  // epilogue (threshold counts, flips 0/1, thresholds non-decreasing, accumulator range within
  // int32) and throws lowbit::Error naming the layer. Nothing may follow an Affine layer.
  void add_dense(const DenseSpec& spec);
  void add_conv2d(const Conv2dSpec& spec);

  const InputSpec& input() const { return input_; }
  int64_t num_layers() const { return static_cast<int64_t>(layers_.size()); }
  // Output width of the last layer: the number of classes once an Affine layer is added.
  int64_t num_classes() const;
  // True when the last layer has an Affine epilogue (required by predict and logits).
  bool complete() const;
  // One line per layer, e.g. "dense bits 4096->10 affine".
  std::vector<std::string> describe() const;

  // images: u8 [N, ...] with input().features() values per image (any leading N >= 0).
  Tensor logits(const Tensor& images) const;               // f32 [N, classes]
  std::vector<int32_t> predict(const Tensor& images) const;  // argmax (first of equal maxima)
  void logits(const uint8_t* images, int64_t n, float* out) const;

  // Images per internal tile (default 256): bounds the scratch memory.
  void set_tile(int64_t images) { tile_ = images < 1 ? 1 : images; }

  // Bytes of the weights and per-channel parameters as stored, and of the same network with
  // every weight and per-channel parameter in float32 (for size comparisons).
  int64_t weight_bytes() const;
  int64_t float_bytes() const;

  // Model file form (docs/formats.md). `extra_metadata` is a JSON object text whose keys are
  // added to __metadata__ (e.g. {"dataset": "mnist", "training": {...}}).
  io::ModelFile to_model_file(const std::string& extra_metadata = "{}") const;
  static Network from_model_file(const io::ModelFile& file, const std::string& source);
  void save(const std::string& path, const std::string& extra_metadata = "{}") const;
  static Network load(const std::string& path);

 private:
  InputSpec input_;
  std::vector<std::unique_ptr<Layer>> layers_;
  int64_t tile_ = 256;
  void append(std::unique_ptr<Layer> layer);
};

// The "dataset" key of a model file's metadata ("" when absent): used by `lowbit eval` to
// choose a reader.
std::string metadata_string(const io::ModelFile& file, const std::string& key);

}  // namespace lowbit::runtime

// Operation counter of the feed-forward networks (kind "feedforward": the exported MLPs and
// ConvNets of runtime/network.h, metadata in docs/formats.md "Network metadata").
//
// One inference is one image through every layer and the argmax of the logits. Every layer is
// counted as the runtime computes it: a GEMM over im2col rows of all K = kh·kw·c_in taps of
// the kernel (padding taps included, as in an fp32 im2col GEMM; the runtime removes their
// contribution with a per-position correction) for each output position, then max-pooling,
// then the epilogue.
//
//   bits input (packed ±1 weights and activations): per output value, ceil(K/64) 64-bit words,
//     each one xnor, one popcount and one int32 add (accumulating the word counts, and forming
//     K − 2·mismatches). Counting per 64-bit word, not per bit-MAC, is what the kernels do.
//   codes input (8-bit pixels or k-bit activation codes, int8 weight codes): K int8 multiplies
//     and K int32 adds per output value.
//   correction: one int32 add per output value where the runtime adds its per-position or
//     zero-point term (codes input, except the fused sign layer without padding or pooling,
//     where it is folded into the threshold; bits input with padding).
//   max pool k×k: k² − 1 int32 comparisons per pooled value.
//   epilogue: sign = one int32 comparison per value (the flip only chooses the comparison's
//     direction); kbit with b bits = b int32 comparisons (binary search over 2^b − 1 sorted
//     thresholds); affine = one fp32 multiply and one fp32 add per logit.
//   argmax: classes − 1 fp32 comparisons.
//
// fp32 reference: the same layers with fp32 weights and activations: K fp32 multiplies and adds
// per output value, k² − 1 fp32 comparisons per pooled value, batch norm (or the last layer's
// scale and bias) as one fp32 multiply and one fp32 add per value, the activation as one fp32
// comparison per value (not after the last layer), and the same argmax. The input scaling
// x = pixel·scale + offset is folded into the first layer in both and not counted.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "lowbit/core/error.h"
#include "lowbit/energy/energy.h"
#include "lowbit/io/model_file.h"
#include "lowbit/runtime/network.h"

namespace lowbit::energy {

namespace {

using json = nlohmann::json;

int64_t geti(const json& o, const char* key, const std::string& where) {
  LOWBIT_CHECK(o.is_object() && o.contains(key) && o[key].is_number_integer(), where, ": missing integer \"", key,
               "\"");
  return o[key].get<int64_t>();
}

void count_feedforward(const io::ModelFile& file, OpTally& m, OpTally& f) {
  // Validates the whole file as the runtime would load it (sizes, tensors, epilogues).
  (void)runtime::Network::from_model_file(file, "feedforward model");
  const json meta = json::parse(file.metadata);
  const json& model = meta["model"];
  const json& in = model["input"];
  int64_t h = in["height"].get<int64_t>(), w = in["width"].get<int64_t>(), c = in["channels"].get<int64_t>();
  const json& layers = model["layers"];
  int64_t classes = 0;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const json& e = layers[i];
    const std::string where = "layers." + std::to_string(i);
    const bool dense = e["type"].get<std::string>() == "dense";
    const bool bits_in = e["input"].get<std::string>() == "bits";
    int64_t kh = h, kw = w, stride = 1, pad = 0, cout = 0, pool_k = 0, pool_s = 1;
    if (dense) {
      cout = geti(e, "out_features", where);
    } else {
      cout = geti(e, "out_channels", where);
      kh = e["kernel"][0].get<int64_t>();
      kw = e["kernel"][1].get<int64_t>();
      stride = geti(e, "stride", where);
      pad = geti(e, "pad", where);
      if (e.contains("pool") && !e["pool"].is_null()) {
        pool_k = geti(e["pool"], "kernel", where + " pool");
        pool_s = geti(e["pool"], "stride", where + " pool");
      }
    }
    const int64_t k = kh * kw * c;
    const int64_t oh = (h + 2 * pad - kh) / stride + 1, ow = (w + 2 * pad - kw) / stride + 1;
    const int64_t ph = pool_k ? (oh - pool_k) / pool_s + 1 : oh, pw = pool_k ? (ow - pool_k) / pool_s + 1 : ow;
    const uint64_t outs = static_cast<uint64_t>(oh * ow * cout);     // accumulators
    const uint64_t pooled = static_cast<uint64_t>(ph * pw * cout);  // values after pooling
    const json& epi = e["epilogue"];
    const std::string et = epi["type"].get<std::string>();

    // The model.
    if (bits_in) {
      const uint64_t words = static_cast<uint64_t>((k + 63) / 64);
      m.add(OpKind::bitwise, Arith::integer, 64, outs * words, where);
      m.add(OpKind::popcount, Arith::integer, 64, outs * words, where);
      m.add(OpKind::add, Arith::integer, 32, outs * words, where);
      if (pad > 0) m.add(OpKind::add, Arith::integer, 32, outs, where);
    } else {
      m.mac(Arith::integer, 8, 32, outs * static_cast<uint64_t>(k), where);
      const bool fused = et == "sign" && pad == 0 && pool_k == 0;
      if (!fused) m.add(OpKind::add, Arith::integer, 32, outs, where);
    }
    if (pool_k) m.add(OpKind::compare, Arith::integer, 32, pooled * static_cast<uint64_t>(pool_k * pool_k - 1), where);
    if (et == "sign") {
      m.add(OpKind::compare, Arith::integer, 32, pooled, where);
    } else if (et == "kbit") {
      m.add(OpKind::compare, Arith::integer, 32, pooled * static_cast<uint64_t>(geti(epi, "bits", where)), where);
    } else {
      m.add(OpKind::multiply, Arith::floating, 32, pooled, where);
      m.add(OpKind::add, Arith::floating, 32, pooled, where);
    }

    // The fp32 reference.
    f.mac(Arith::floating, 32, 32, outs * static_cast<uint64_t>(k), where);
    if (pool_k) f.add(OpKind::compare, Arith::floating, 32, pooled * static_cast<uint64_t>(pool_k * pool_k - 1), where);
    f.add(OpKind::multiply, Arith::floating, 32, pooled, where);
    f.add(OpKind::add, Arith::floating, 32, pooled, where);
    if (et != "affine") f.add(OpKind::compare, Arith::floating, 32, pooled, where);

    h = ph;
    w = pw;
    c = cout;
    classes = cout;
  }
  if (classes > 1) {
    m.add(OpKind::compare, Arith::floating, 32, static_cast<uint64_t>(classes - 1), "argmax");
    f.add(OpKind::compare, Arith::floating, 32, static_cast<uint64_t>(classes - 1), "argmax");
  }
}

const bool registered = [] {
  register_inference_unit("feedforward", "one image (every layer and the argmax of the logits)");
  return register_counter("feedforward", count_feedforward);
}();

}  // namespace

}  // namespace lowbit::energy

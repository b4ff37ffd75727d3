// conv2d (im2col + sgemm) and max_pool2d over NCHW tensors.
#include <algorithm>
#include <limits>

#include "autograd/internal.h"
#include "lowbit/autograd/ops.h"
#include "lowbit/kernels/sgemm.h"

namespace lowbit::autograd {
using detail::checked_value;

namespace {

struct ConvGeom {
  int64_t n, c, h, w, o, kh, kw, oh, ow, stride, pad;
  int64_t ckk() const { return c * kh * kw; }
  int64_t p() const { return oh * ow; }
};

// col[(ci·kh + i)·kw + j, oh·OW + ow] = x[ci, oh·s − pad + i, ow·s − pad + j] (0 outside).
// Rows are independent, so large images split across threads by row.
void im2col(const ConvGeom& g, const float* x, float* col) {
  parallel_for(0, g.ckk(), std::max<int64_t>(1, detail::kElementGrain / std::max<int64_t>(1, g.p())),
               [&](int64_t r0, int64_t r1) {
                 for (int64_t r = r0; r < r1; ++r) {
                   const int64_t ci = r / (g.kh * g.kw), i = (r / g.kw) % g.kh, j = r % g.kw;
                   const float* xc = x + ci * g.h * g.w;
                   float* dst = col + r * g.p();
                   for (int64_t y = 0; y < g.oh; ++y) {
                     const int64_t iy = y * g.stride - g.pad + i;
                     float* d = dst + y * g.ow;
                     if (iy < 0 || iy >= g.h) {
                       std::fill(d, d + g.ow, 0.0f);
                       continue;
                     }
                     const float* xr = xc + iy * g.w;
                     for (int64_t xo = 0; xo < g.ow; ++xo) {
                       const int64_t ix = xo * g.stride - g.pad + j;
                       d[xo] = (ix >= 0 && ix < g.w) ? xr[ix] : 0.0f;
                     }
                   }
                 }
               });
}

// The adjoint of im2col: dx[...] += dcol[...]. Split by input channel so that no two threads
// write the same element (every row of one channel lands in that channel's plane).
void col2im_add(const ConvGeom& g, const float* col, float* dx) {
  parallel_for(0, g.c, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t ci = c0; ci < c1; ++ci)
      for (int64_t i = 0; i < g.kh; ++i)
        for (int64_t j = 0; j < g.kw; ++j) {
          const float* src = col + ((ci * g.kh + i) * g.kw + j) * g.p();
          float* xc = dx + ci * g.h * g.w;
          for (int64_t y = 0; y < g.oh; ++y) {
            const int64_t iy = y * g.stride - g.pad + i;
            if (iy < 0 || iy >= g.h) continue;
            for (int64_t xo = 0; xo < g.ow; ++xo) {
              const int64_t ix = xo * g.stride - g.pad + j;
              if (ix >= 0 && ix < g.w) xc[iy * g.w + ix] += src[y * g.ow + xo];
            }
          }
        }
  });
}

}  // namespace

Var conv2d(const Var& x, const Var& w, const Var& b, int stride, int padding) {
  const Tensor& xv = checked_value(x, "conv2d", "x");
  const Tensor& wv = checked_value(w, "conv2d", "w");
  LOWBIT_CHECK(stride >= 1 && padding >= 0, "conv2d: stride = ", stride, " must be >= 1 and padding = ", padding,
               " >= 0");
  LOWBIT_CHECK(xv.dim() == 4 && wv.dim() == 4 && xv.size(1) == wv.size(1), "conv2d: input ", xv.describe(),
               " does not match weight ", wv.describe(), " (expected x[N, C, H, W] and w[O, C, kh, kw])");
  ConvGeom g{xv.size(0), xv.size(1), xv.size(2), xv.size(3), wv.size(0), wv.size(2), wv.size(3), 0, 0, stride, padding};
  LOWBIT_CHECK(g.h + 2 * g.pad >= g.kh && g.w + 2 * g.pad >= g.kw, "conv2d: kernel ", g.kh, "x", g.kw,
               " is larger than the padded input ", g.h + 2 * g.pad, "x", g.w + 2 * g.pad);
  g.oh = (g.h + 2 * g.pad - g.kh) / g.stride + 1;
  g.ow = (g.w + 2 * g.pad - g.kw) / g.stride + 1;
  if (b.defined())
    LOWBIT_CHECK(b.value().dim() == 1 && b.value().size(0) == g.o, "conv2d: bias ", b.value().describe(),
                 " does not match ", g.o, " output channels");
  Tensor out = Tensor::zeros({g.n, g.o, g.oh, g.ow}, DType::f32);
  Tensor col = Tensor::zeros({g.ckk(), g.p()}, DType::f32);  // reused for every image
  const float* px = xv.data<float>();
  float* po = out.data<float>();
  for (int64_t img = 0; img < g.n; ++img) {
    float* oi = po + img * g.o * g.p();
    if (b.defined())
      for (int64_t oc = 0; oc < g.o; ++oc) std::fill(oi + oc * g.p(), oi + (oc + 1) * g.p(), b.data()[oc]);
    im2col(g, px + img * g.c * g.h * g.w, col.data<float>());
    // out_img[O, P] = W[O, CKK] · col[CKK, P] (+ the bias already there)
    kernels::sgemm(false, false, g.o, g.p(), g.ckk(), 1.0f, wv.data<float>(), g.ckk(), col.data<float>(), g.p(),
                   b.defined() ? 1.0f : 0.0f, oi, g.p());
  }
  return make_result("conv2d", out, {x, w, b}, [g, xv, wv](Node& self) {
    const float* go = self.grad.data<float>();
    Node* nx = self.parents[0].get();
    Node* nw = self.parents[1].get();
    Node* nb = self.parents[2].get();
    const bool want_x = nx && nx->requires_grad, want_w = nw && nw->requires_grad;
    if (nb && nb->requires_grad) {
      float* gb = nb->grad_buffer();
      for (int64_t img = 0; img < g.n; ++img)
        for (int64_t oc = 0; oc < g.o; ++oc) {
          const float* s = go + (img * g.o + oc) * g.p();
          double acc = 0.0;
          for (int64_t q = 0; q < g.p(); ++q) acc += s[q];
          gb[oc] += static_cast<float>(acc);
        }
    }
    if (!want_x && !want_w) return;
    // Columns are recomputed rather than kept from the forward: a whole batch of them is
    // C·k²·OH·OW floats per image, far more than the activations themselves.
    Tensor col = Tensor::zeros({g.ckk(), g.p()}, DType::f32);
    Tensor dcol = want_x ? Tensor::zeros({g.ckk(), g.p()}, DType::f32) : Tensor();
    float* gw = want_w ? nw->grad_buffer() : nullptr;
    float* gx = want_x ? nx->grad_buffer() : nullptr;
    for (int64_t img = 0; img < g.n; ++img) {
      const float* gi = go + img * g.o * g.p();
      if (want_w) {
        im2col(g, xv.data<float>() + img * g.c * g.h * g.w, col.data<float>());
        // dW[O, CKK] += G[O, P] · colᵀ
        kernels::sgemm(false, true, g.o, g.ckk(), g.p(), 1.0f, gi, g.p(), col.data<float>(), g.p(), 1.0f, gw, g.ckk());
      }
      if (want_x) {
        // dcol[CKK, P] = Wᵀ · G, scattered back onto the image.
        kernels::sgemm(true, false, g.ckk(), g.p(), g.o, 1.0f, wv.data<float>(), g.ckk(), gi, g.p(), 0.0f,
                       dcol.data<float>(), g.p());
        col2im_add(g, dcol.data<float>(), gx + img * g.c * g.h * g.w);
      }
    }
  });
}

Var max_pool2d(const Var& x, int k, int stride) {
  const Tensor& xv = checked_value(x, "max_pool2d", "x");
  LOWBIT_CHECK(k >= 1 && stride >= 1, "max_pool2d: size = ", k, " and stride = ", stride, " must be >= 1");
  LOWBIT_CHECK(xv.dim() == 4, "max_pool2d: expected x[N, C, H, W], got ", xv.describe());
  const int64_t n = xv.size(0), c = xv.size(1), h = xv.size(2), w = xv.size(3);
  LOWBIT_CHECK(h >= k && w >= k, "max_pool2d: window ", k, "x", k, " is larger than the input ", h, "x", w);
  const int64_t oh = (h - k) / stride + 1, ow = (w - k) / stride + 1;
  Tensor out = Tensor::zeros({n, c, oh, ow}, DType::f32);
  // Index of each window's maximum within its input plane, for the backward pass.
  auto arg = std::make_shared<std::vector<int32_t>>(static_cast<std::size_t>(n * c * oh * ow));
  const float* px = xv.data<float>();
  float* po = out.data<float>();
  parallel_for(0, n * c, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t plane = p0; plane < p1; ++plane) {
      const float* xp = px + plane * h * w;
      for (int64_t y = 0; y < oh; ++y)
        for (int64_t xo = 0; xo < ow; ++xo) {
          float best = -std::numeric_limits<float>::infinity();
          int32_t bi = static_cast<int32_t>(y * stride * w + xo * stride);
          for (int64_t i = 0; i < k; ++i)
            for (int64_t j = 0; j < k; ++j) {
              const int64_t idx = (y * stride + i) * w + xo * stride + j;
              if (xp[idx] > best) {
                best = xp[idx];
                bi = static_cast<int32_t>(idx);
              }
            }
          const int64_t o = (plane * oh + y) * ow + xo;
          po[o] = best;
          (*arg)[static_cast<std::size_t>(o)] = bi;
        }
    }
  });
  return make_result("max_pool2d", out, {x}, [arg, h, w, oh, ow, n, c](Node& self) {
    float* g = self.parents[0]->grad_buffer();
    const float* go = self.grad.data<float>();
    parallel_for(0, n * c, 1, [&](int64_t p0, int64_t p1) {
      for (int64_t plane = p0; plane < p1; ++plane)
        for (int64_t q = 0; q < oh * ow; ++q) {
          const int64_t o = plane * oh * ow + q;
          g[plane * h * w + (*arg)[static_cast<std::size_t>(o)]] += go[o];
        }
    });
  });
}

}  // namespace lowbit::autograd

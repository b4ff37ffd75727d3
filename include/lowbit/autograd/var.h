// A define-by-run reverse-mode tape over f32 tensors.
//
// Every op returns a Var: a shared handle to a Node holding the op's value, its gradient (filled
// by backward), the parents it was computed from and a closure that pushes the node's gradient
// into the parents' gradients. The graph is the set of nodes reachable from a result; there is
// no global tape, so a graph lives exactly as long as someone holds its output.
//
//   Var w(param_value, param_grad);           // a leaf whose gradient accumulates into param_grad
//   Var y = linear(x, w, Var());              // records an op node
//   backward(loss);                           // topological order, gradients accumulate
//
// Gradients always accumulate (+=): a node used twice receives the sum. A leaf's gradient tensor
// is never cleared by backward; zeroing it between steps is the caller's job (the optimizer
// contract of nn/parameter.h). While a NoGradGuard is alive on a thread, ops on that thread
// record nothing (evaluation), and their results do not require gradients.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "lowbit/core/tensor.h"

namespace lowbit::autograd {

struct Node;
using NodePtr = std::shared_ptr<Node>;

struct Node {
  Tensor value;  // f32, contiguous
  Tensor grad;   // undefined until a gradient arrives (or the caller's tensor, for leaves)
  bool requires_grad = false;
  std::vector<NodePtr> parents;
  // Reads this node's grad and accumulates into the parents' grads.
  std::function<void(Node& self)> backward;
  const char* op = "leaf";
  // Optional storage for `grad` supplied by whoever created the node (a layer reusing one
  // weight-sized buffer across steps instead of allocating it every backward pass).
  Tensor grad_storage;
  // For a leaf whose `grad` is a parameter's gradient tensor: the parameter's flag that says the
  // tensor still holds an earlier step's values (nn::Optimizer::discard_grads). The first
  // contribution of this backward pass then replaces them instead of adding to them, and
  // clears the flag, which every leaf of the same parameter shares.
  bool* grad_stale = nullptr;
  // Set by an op whose backward is the identity for this input (a parent): consumers of this
  // node then add their gradients straight into the parent's buffer, this node's `grad` is
  // that same buffer (so it also holds the parent's other contributions), and its backward
  // does nothing.
  Node* grad_alias = nullptr;

  // The gradient buffer, created on first use. Without `fresh` it holds zeros then. With
  // `fresh`, *fresh tells whether it was just created; if so its contents are unspecified and
  // the caller must overwrite every element (which lets GEMMs run with beta = 0 and skips a
  // clearing pass).
  float* grad_buffer(bool* fresh = nullptr);
};

class Var {
 public:
  Var() = default;
  // A leaf. With requires_grad, backward fills a gradient tensor allocated on first use.
  explicit Var(Tensor value, bool requires_grad = false);
  // A leaf that requires a gradient and accumulates it into `grad` (same shape as value): this
  // is how a layer exposes an nn::Parameter to the tape without copying.
  Var(Tensor value, Tensor grad);
  // The same, for a gradient tensor whose contents may be stale (see Node::grad_stale).
  Var(Tensor value, Tensor grad, bool* grad_stale);
  explicit Var(NodePtr node) : node_(std::move(node)) {}

  bool defined() const { return node_ != nullptr; }
  const Tensor& value() const;
  // The gradient (undefined when none arrived).
  const Tensor& grad() const;
  const Shape& shape() const { return value().shape(); }
  int64_t size(int64_t d) const { return value().size(d); }
  int64_t numel() const { return value().numel(); }
  const float* data() const { return value().data<float>(); }
  bool requires_grad() const { return node_ && node_->requires_grad; }
  const char* op() const { return node_ ? node_->op : "undefined"; }
  const NodePtr& node() const { return node_; }

 private:
  NodePtr node_;
};

// Runs the backward pass from `root`. A root with one element gets gradient 1; otherwise pass
// the gradient of some scalar with respect to root (same shape). After the pass the graph
// between root and the leaves is released (closures and parent links of op nodes are dropped,
// which frees the tensors they saved), so a second backward from the same root only adds to
// the root's own gradient.
void backward(const Var& root);
void backward(const Var& root, const Tensor& root_grad);

// Gradient recording switch for the current thread.
bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// Builds an op node: the result requires a gradient when recording is on and any defined
// parent requires one; only then are the parents and the closure kept. Used by ops.
Var make_result(const char* op, Tensor value, std::vector<Var> parents, std::function<void(Node&)> backward_fn);

}  // namespace lowbit::autograd

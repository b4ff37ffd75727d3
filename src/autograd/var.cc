// The tape: leaves, op nodes, backward in reverse topological order, no-grad mode.
#include "lowbit/autograd/var.h"

#include <algorithm>
#include <unordered_set>

#include "autograd/internal.h"
#include "lowbit/core/error.h"

namespace lowbit::autograd {
namespace {
thread_local bool t_grad_enabled = true;
}  // namespace

float* Node::grad_buffer(bool* fresh) {
  if (grad_alias != nullptr) {
    float* g = grad_alias->grad_buffer(fresh);
    if (!grad.defined()) grad = grad_alias->grad;  // marks this node as reached
    return g;
  }
  const bool create = !grad.defined();
  if (create) {
    if (grad_storage.defined()) {
      grad = grad_storage;
      if (!fresh) std::fill(grad.data<float>(), grad.data<float>() + grad.numel(), 0.0f);
    } else {
      grad = Tensor::zeros(value.shape(), DType::f32);
    }
  }
  bool replace = create;
  if (!create && grad_stale != nullptr && *grad_stale) {
    *grad_stale = false;
    replace = true;
    if (!fresh) std::fill(grad.data<float>(), grad.data<float>() + grad.numel(), 0.0f);
  }
  if (fresh) *fresh = replace;
  return grad.data<float>();
}

Var::Var(Tensor value, bool requires_grad) : node_(std::make_shared<Node>()) {
  LOWBIT_CHECK(value.defined() && value.dtype() == DType::f32 && value.is_contiguous(),
               "Var: expected a contiguous f32 tensor, got ",
               value.defined() ? value.describe() : std::string("an empty tensor"));
  node_->value = std::move(value);
  node_->requires_grad = requires_grad;
}

Var::Var(Tensor value, Tensor grad) : Var(std::move(value), true) {
  LOWBIT_CHECK(grad.defined() && grad.dtype() == DType::f32 && grad.is_contiguous() &&
                   grad.shape() == node_->value.shape(),
               "Var: gradient tensor ", grad.defined() ? grad.describe() : std::string("(empty)"),
               " does not match the value ", node_->value.describe());
  node_->grad = std::move(grad);
}

Var::Var(Tensor value, Tensor grad, bool* grad_stale) : Var(std::move(value), std::move(grad)) {
  node_->grad_stale = grad_stale;
}

const Tensor& Var::value() const {
  LOWBIT_CHECK(node_ != nullptr, "Var::value: the Var is undefined");
  return node_->value;
}

const Tensor& Var::grad() const {
  LOWBIT_CHECK(node_ != nullptr, "Var::grad: the Var is undefined");
  return node_->grad;
}

bool grad_enabled() { return t_grad_enabled; }
NoGradGuard::NoGradGuard() : previous_(t_grad_enabled) { t_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { t_grad_enabled = previous_; }

Var make_result(const char* op, Tensor value, std::vector<Var> parents, std::function<void(Node&)> backward_fn) {
  auto node = std::make_shared<Node>();
  node->value = std::move(value);
  node->op = op;
  bool needs = false;
  if (t_grad_enabled)
    for (const Var& p : parents) needs |= p.requires_grad();
  if (needs) {
    node->requires_grad = true;
    node->backward = std::move(backward_fn);
    node->parents.reserve(parents.size());
    // Undefined optional arguments (a missing bias) keep their slot as nullptr so that the
    // closure can index parents by argument position.
    for (const Var& p : parents) node->parents.push_back(p.node());
  }
  return Var(std::move(node));
}

void backward(const Var& root) {
  LOWBIT_CHECK(root.defined(), "backward: the root Var is undefined");
  LOWBIT_CHECK(root.numel() == 1, "backward: root ", root.value().describe(),
               " is not a scalar; pass its gradient explicitly");
  Tensor g = Tensor::zeros(root.shape(), DType::f32);
  g.data<float>()[0] = 1.0f;
  backward(root, g);
}

void backward(const Var& root, const Tensor& root_grad) {
  LOWBIT_CHECK(root.defined(), "backward: the root Var is undefined");
  LOWBIT_CHECK(root.requires_grad(), "backward: the root (op '", root.op(),
               "') does not require a gradient (no input requires one, or it was computed under NoGradGuard)");
  LOWBIT_CHECK(root_grad.defined() && root_grad.dtype() == DType::f32 && root_grad.shape() == root.shape(),
               "backward: root gradient ", root_grad.defined() ? root_grad.describe() : std::string("(empty)"),
               " does not match the root ", root.value().describe());
  // Iterative post-order DFS: a node is emitted after all its parents, so the reverse of the
  // order visits every node after all of its consumers.
  std::vector<Node*> order;
  std::unordered_set<Node*> seen;
  std::vector<std::pair<Node*, std::size_t>> stack{{root.node().get(), 0}};
  seen.insert(root.node().get());
  while (!stack.empty()) {
    auto& [n, next] = stack.back();
    if (next < n->parents.size()) {
      Node* p = n->parents[next++].get();
      if (p != nullptr && p->requires_grad && seen.insert(p).second) stack.push_back({p, 0});
    } else {
      order.push_back(n);
      stack.pop_back();
    }
  }
  Node& r = *root.node();
  detail::add_to_grad(r, detail::cspan(root_grad));
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* n = *it;
    if (n->parents.empty() || !n->backward) continue;  // a leaf
    if (n->grad.defined()) n->backward(*n);
  }
  // Release the graph: closures hold saved tensors, and parent links keep the whole history.
  for (Node* n : order) {
    n->parents.clear();
    n->backward = nullptr;
  }
}

namespace detail {

const Tensor& checked_value(const Var& v, const char* op, const char* arg) {
  LOWBIT_CHECK(v.defined(), op, ": argument '", arg, "' is undefined");
  return v.value();
}

void accumulate_into(Node& parent, const std::function<void(std::span<float>)>& write) {
  bool fresh = false;
  float* g = parent.grad_buffer(&fresh);
  const auto n = static_cast<std::size_t>(parent.value.numel());
  if (fresh) {
    write({g, n});
    return;
  }
  Tensor tmp = Tensor::zeros(parent.value.shape(), DType::f32);
  float* t = tmp.data<float>();
  write({t, n});
  parallel_elements(static_cast<int64_t>(n), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) g[i] += t[i];
  });
}

void add_to_grad(Node& parent, std::span<const float> src) {
  bool fresh = false;
  float* g = parent.grad_buffer(&fresh);
  const float* s = src.data();
  parallel_elements(static_cast<int64_t>(src.size()), [&](int64_t b, int64_t e) {
    if (fresh)
      for (int64_t i = b; i < e; ++i) g[i] = s[i];
    else
      for (int64_t i = b; i < e; ++i) g[i] += s[i];
  });
}

}  // namespace detail
}  // namespace lowbit::autograd

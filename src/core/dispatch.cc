#include "lowbit/core/dispatch.h"

#include <mutex>

namespace lowbit {
namespace {
std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}
std::vector<const KernelTableBase*>& registry() {
  static std::vector<const KernelTableBase*> r;
  return r;
}
}  // namespace

void register_kernel_table(const KernelTableBase* table) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  registry().push_back(table);
}

std::vector<KernelChoice> kernel_choices() {
  std::vector<const KernelTableBase*> tables;
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    tables = registry();
  }
  std::vector<KernelChoice> out;
  for (const auto* t : tables) out.push_back(t->choice());
  return out;
}

}  // namespace lowbit

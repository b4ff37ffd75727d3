#pragma once
#include <string>

namespace lowbit {
std::string version();          // lowbit's version, e.g. "0.1.0"
std::string onednn_version();   // e.g. "2.6.3"
std::string compiler_version(); // compiler that built the library
}  // namespace lowbit

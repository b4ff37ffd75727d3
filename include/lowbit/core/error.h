// lowbit's single error type and the checks that raise it.
//
// Every failure that a caller can cause (a bad shape, an unsupported dtype, a short buffer,
// a malformed file) throws lowbit::Error with a message that names the bad value and what
// was expected. The command-line program prints the message as one line on stderr.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace lowbit {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
template <typename... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

// Throws lowbit::Error whose message is the concatenation of the arguments.
template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Error(detail::cat(args...));
}

}  // namespace lowbit

// LOWBIT_CHECK(cond, "message parts", value, ...): throws lowbit::Error when cond is false.
#define LOWBIT_CHECK(cond, ...)                 \
  do {                                          \
    if (!(cond)) ::lowbit::fail(__VA_ARGS__);   \
  } while (0)

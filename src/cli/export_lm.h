// `lowbit export RUN --out MODEL` for a language-model run: writes the float lstm_lm file.
#pragma once

#include <string>

namespace lowbit::cli {

void export_language_model(const std::string& run, const std::string& out, bool as_json);

}  // namespace lowbit::cli

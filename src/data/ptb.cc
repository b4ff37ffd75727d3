#include "lowbit/data/ptb.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>

#include "lowbit/core/error.h"

namespace lowbit::data {

int32_t Vocabulary::add(std::string_view word) {
  if (auto it = ids_.find(word); it != ids_.end()) return it->second;
  LOWBIT_CHECK(words_.size() < static_cast<std::size_t>(std::numeric_limits<int32_t>::max()),
               "Vocabulary: more than 2^31 - 1 words");
  const auto id = static_cast<int32_t>(words_.size());
  words_.emplace_back(word);
  ids_.emplace(words_.back(), id);
  return id;
}

int32_t Vocabulary::id(std::string_view word) const {
  auto it = ids_.find(word);
  LOWBIT_CHECK(it != ids_.end(), "word '", word, "' is not in the vocabulary (", words_.size(), " words)");
  return it->second;
}

bool Vocabulary::contains(std::string_view word) const { return ids_.find(word) != ids_.end(); }

const std::string& Vocabulary::word(int32_t id) const {
  LOWBIT_CHECK(id >= 0 && static_cast<std::size_t>(id) < words_.size(), "word id ", id,
               " is out of range for a vocabulary of ", words_.size(), " words");
  return words_[static_cast<std::size_t>(id)];
}

namespace {

std::string read_text(const std::string& path) {
  std::error_code ec;
  LOWBIT_CHECK(std::filesystem::is_regular_file(path, ec), path, ": no such file");
  std::ifstream f(path, std::ios::binary);
  LOWBIT_CHECK(f.good(), path, ": cannot open");
  const std::uintmax_t size = std::filesystem::file_size(path, ec);
  LOWBIT_CHECK(!ec, path, ": cannot get the file size (", ec.message(), ")");
  std::string s(static_cast<std::size_t>(size), '\0');
  f.read(s.data(), static_cast<std::streamsize>(size));
  LOWBIT_CHECK(f.gcount() == static_cast<std::streamsize>(size), path, ": read failed");
  return s;
}

// A byte that may appear in a PTB file. Spaces and tabs separate words, '\n' ends a line and
// '\r' is allowed only right before '\n' (checked by the caller).
bool printable(unsigned char c) { return c >= 0x21 && c <= 0x7E; }

}  // namespace

Tensor read_ptb_file(const std::string& path, Vocabulary& vocab, bool grow) {
  const std::string text = read_text(path);
  LOWBIT_CHECK(!text.empty(), path, ": empty file (a PTB file holds one sentence per line)");
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 5);
  int64_t words = 0;
  int64_t line = 1;
  std::size_t line_start = 0;
  std::size_t i = 0;
  const std::size_t n = text.size();
  auto end_line = [&] {
    ids.push_back(grow ? vocab.add(Vocabulary::kEos) : vocab.id(Vocabulary::kEos));
  };
  while (i < n) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == ' ' || c == '\t') {
      ++i;
    } else if (c == '\n') {
      end_line();
      ++line;
      line_start = ++i;
    } else if (c == '\r') {
      LOWBIT_CHECK(i + 1 < n && text[i + 1] == '\n', path, ":", line, ": carriage return at column ",
                   i - line_start + 1, " is not part of a CRLF line end");
      ++i;  // the '\n' ends the line on the next turn
    } else if (printable(c)) {
      const std::size_t begin = i;
      while (i < n && printable(static_cast<unsigned char>(text[i]))) ++i;
      const std::string_view w(text.data() + begin, i - begin);
      LOWBIT_CHECK(w != Vocabulary::kEos, path, ":", line, ": the word '", w,
                   "' is reserved for the end of a line and may not appear in the text");
      if (grow) {
        ids.push_back(vocab.add(w));
      } else {
        LOWBIT_CHECK(vocab.contains(w), path, ":", line, ": word '", w, "' is not in the training vocabulary");
        ids.push_back(vocab.id(w));
      }
      ++words;
    } else if (c == 0) {
      fail(path, ":", line, ": NUL byte at column ", i - line_start + 1, " (a PTB file is plain ASCII text)");
    } else if (c >= 0x80) {
      fail(path, ":", line, ": byte 0x", std::hex, static_cast<unsigned>(c), std::dec, " at column ",
           i - line_start + 1, " is not ASCII (a PTB file is plain ASCII text)");
    } else {
      fail(path, ":", line, ": control byte 0x", std::hex, static_cast<unsigned>(c), std::dec, " at column ",
           i - line_start + 1, " (a PTB file is plain ASCII text)");
    }
  }
  // A last line without its newline is still a sentence.
  if (line_start < n) end_line();
  LOWBIT_CHECK(words > 0, path, ": no words in ", line - 1 + (line_start < n ? 1 : 0), " lines");
  LOWBIT_CHECK(ids.size() <= static_cast<std::size_t>(std::numeric_limits<int32_t>::max()), path,
               ": too many tokens (", ids.size(), ")");
  return Tensor::from<int32_t>({static_cast<int64_t>(ids.size())}, ids);
}

PtbCorpus load_ptb(const std::string& dir) {
  LOWBIT_CHECK(std::filesystem::is_directory(dir), dir, ": no such directory (expected the PTB folder holding ",
               "ptb.train.txt, ptb.valid.txt and ptb.test.txt)");
  auto file = [&](const char* name) {
    const std::string p = (std::filesystem::path(dir) / name).string();
    LOWBIT_CHECK(std::filesystem::is_regular_file(p), p, ": no such file (the PTB folder must hold ptb.train.txt, ",
                 "ptb.valid.txt and ptb.test.txt)");
    return p;
  };
  // Check all three names before reading any, so that a wrong folder fails fast.
  const std::string train = file("ptb.train.txt"), valid = file("ptb.valid.txt"), test = file("ptb.test.txt");
  PtbCorpus c;
  c.train = read_ptb_file(train, c.vocab, /*grow=*/true);
  c.valid = read_ptb_file(valid, c.vocab, /*grow=*/false);
  c.test = read_ptb_file(test, c.vocab, /*grow=*/false);
  return c;
}

std::string ptb_dir_from(const std::string& flag_value) {
  if (!flag_value.empty()) return flag_value;
  if (const char* env = std::getenv("LOWBIT_PTB_DIR"); env != nullptr && *env != '\0') return env;
  fail("no Penn Treebank folder given. PTB has no open licence, so lowbit does not ship it: get "
       "simple-examples.tgz from Tomas Mikolov's RNNLM page and unpack it (the files are "
       "simple-examples/data/ptb.{train,valid,test}.txt), then pass that data/ folder on the command line "
       "or set LOWBIT_PTB_DIR to it");
}

BpttBatches::BpttBatches(const Tensor& tokens, int64_t batch, int64_t bptt) : batch_(batch), bptt_(bptt) {
  LOWBIT_CHECK(tokens.dtype() == DType::i32 && tokens.dim() == 1, "BpttBatches: expected i32 tokens [N], got ",
               tokens.describe());
  LOWBIT_CHECK(batch >= 1, "BpttBatches: batch must be >= 1, got ", batch);
  LOWBIT_CHECK(bptt >= 1, "BpttBatches: bptt must be >= 1, got ", bptt);
  const int64_t n = tokens.numel();
  steps_ = n / batch;
  dropped_ = n - steps_ * batch;
  LOWBIT_CHECK(steps_ >= 2, "BpttBatches: ", n, " tokens in ", batch, " streams give ", steps_,
               " tokens per stream; at least 2 are needed for one input-target pair");
  // Strided reads cope with a non-contiguous input (e.g. a slice); the copy is time-major so
  // that each window is a contiguous block of rows.
  const int32_t* src = tokens.data<int32_t>();
  const int64_t stride = tokens.strides()[0];
  streams_ = Tensor::zeros({steps_, batch}, DType::i32);
  int32_t* dst = streams_.data<int32_t>();
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < steps_; ++t) dst[t * batch + b] = src[(b * steps_ + t) * stride];
}

BpttBatches::Window BpttBatches::window(int64_t k) const {
  LOWBIT_CHECK(k >= 0 && k < num_windows(), "BpttBatches: window ", k, " out of range [0, ", num_windows(), ")");
  const int64_t begin = k * bptt_;
  const int64_t len = std::min(bptt_, steps_ - 1 - begin);
  return {streams_.slice_rows(begin, begin + len), streams_.slice_rows(begin + 1, begin + 1 + len)};
}

}  // namespace lowbit::data

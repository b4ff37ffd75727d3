#include "lowbit/data/babi.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "lowbit/core/error.h"

namespace lowbit::data {
namespace {

namespace fs = std::filesystem;

bool is_word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// Parses a non-negative decimal integer that fills `s` exactly; false on anything else,
// including values too large for int (no bAbI story comes near).
bool parse_int(const std::string& s, int* out) {
  if (s.empty() || s.size() > 9) return false;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t pos = s.find(sep, start);
    out.push_back(s.substr(start, pos == std::string::npos ? std::string::npos : pos - start));
    if (pos == std::string::npos) return out;
    start = pos + 1;
  }
}

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(' ');
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(' ');
  return s.substr(b, e - b + 1);
}

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

const char* split_name(BabiSplit split) { return split == BabiSplit::train ? "train" : "test"; }

// The file in `dir` whose name is "qa<task>_<anything>_<split>.txt"; "" when there is none.
std::string match_in(const std::string& dir, int task, BabiSplit split) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return "";
  const std::string prefix = "qa" + std::to_string(task) + "_";
  const std::string suffix = std::string("_") + split_name(split) + ".txt";
  std::vector<std::string> found;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    // The prefix includes the '_' after the number, so task 1 never matches "qa10_...".
    if (name.size() > prefix.size() + suffix.size() && name.compare(0, prefix.size(), prefix) == 0 &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      found.push_back(entry.path().string());
  }
  std::sort(found.begin(), found.end());
  LOWBIT_CHECK(found.size() <= 1, dir, ": ", found.size(), " files match ", prefix, "*", suffix, " (", found[0],
               ", ", found[1], ", ...); expected one");
  return found.empty() ? "" : found[0];
}

}  // namespace

std::string BabiExample::answer_token() const {
  std::string s;
  for (size_t i = 0; i < answer.size(); ++i) {
    if (i) s += ',';
    s += answer[i];
  }
  return s;
}

BabiSentence babi_tokenize(const std::string& text) {
  BabiSentence out;
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == ' ' || c == '\t') {
      ++i;
      continue;
    }
    const bool word = is_word_char(c);
    size_t j = i;
    while (j < text.size() && text[j] != ' ' && text[j] != '\t' && is_word_char(text[j]) == word) ++j;
    std::string tok = lower(text.substr(i, j - i));
    // The sentence's own full stop and question mark carry no information for the model.
    if (tok != "." && tok != "?") out.push_back(std::move(tok));
    i = j;
  }
  return out;
}

std::vector<BabiExample> parse_babi(std::istream& in, const std::string& name, int memory_limit) {
  LOWBIT_CHECK(memory_limit >= 1, name, ": memory limit ", memory_limit, " must be at least 1");
  std::vector<BabiExample> out;
  std::shared_ptr<std::vector<BabiSentence>> story;
  // For each line ID of the current story: its position among the story's statements, or -1
  // for a question. Index 0 is unused (IDs start at 1).
  std::vector<int64_t> statement_of_id;
  int prev_id = 0;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    for (size_t c = 0; c < line.size(); ++c) {
      const unsigned char b = static_cast<unsigned char>(line[c]);
      LOWBIT_CHECK(b == '\t' || (b >= 0x20 && b < 0x7f), name, ":", lineno, ": byte 0x", std::hex,
                   static_cast<unsigned>(b), std::dec, " at column ", c + 1,
                   " is not printable ASCII (bAbI files are plain ASCII text)");
    }
    const size_t sp = line.find(' ');
    int id = 0;
    LOWBIT_CHECK(sp != std::string::npos && parse_int(line.substr(0, sp), &id) && id >= 1, name, ":", lineno,
                 ": malformed line (expected \"ID text\" with an integer ID of 1 or more): \"", line, "\"");
    if (id == 1) {
      story = std::make_shared<std::vector<BabiSentence>>();
      statement_of_id.assign(1, -1);
    } else {
      LOWBIT_CHECK(story != nullptr && id == prev_id + 1, name, ":", lineno, ": line ID ", id,
                   " neither starts a new story (1) nor follows the previous ID ", prev_id);
    }
    prev_id = id;
    const std::string rest = line.substr(sp + 1);
    const size_t tab = rest.find('\t');
    if (tab == std::string::npos) {
      LOWBIT_CHECK(rest.find('?') == std::string::npos, name, ":", lineno,
                   ": question without an answer (expected \"ID question?<TAB>answer<TAB>supporting IDs\")");
      BabiSentence tokens = babi_tokenize(rest);
      LOWBIT_CHECK(!tokens.empty(), name, ":", lineno, ": statement with no words");
      statement_of_id.push_back(static_cast<int64_t>(story->size()));
      story->push_back(std::move(tokens));
      continue;
    }

    // A question.
    statement_of_id.push_back(-1);
    const std::vector<std::string> fields = split(rest, '\t');
    LOWBIT_CHECK(fields.size() <= 3, name, ":", lineno, ": ", fields.size(),
                 " tab-separated fields after the ID (expected question, answer, supporting IDs)");
    LOWBIT_CHECK(!story->empty(), name, ":", lineno, ": question before any statement of its story");
    BabiExample ex;
    ex.question = babi_tokenize(fields[0]);
    LOWBIT_CHECK(!ex.question.empty(), name, ":", lineno, ": question with no words");
    for (const std::string& a : split(fields[1], ',')) {
      const std::string w = lower(trim(a));
      LOWBIT_CHECK(!w.empty() && w.find(' ') == std::string::npos, name, ":", lineno, ": malformed answer \"",
                   fields[1], "\" (expected a word or comma-separated words)");
      ex.answer.push_back(w);
    }
    const int64_t n = static_cast<int64_t>(story->size());
    ex.story = story;
    ex.memory_end = n;
    ex.memory_begin = std::max<int64_t>(0, n - memory_limit);
    if (fields.size() == 3) {
      for (const std::string& s : split(fields[2], ' ')) {
        if (s.empty()) continue;  // tolerate doubled or trailing blanks
        int sid = 0;
        LOWBIT_CHECK(parse_int(s, &sid), name, ":", lineno, ": supporting fact \"", s, "\" is not an integer");
        LOWBIT_CHECK(sid >= 1 && sid < id, name, ":", lineno, ": supporting fact ", sid,
                     " is not an earlier line of this story (lines 1..", id - 1, ")");
        const int64_t pos = statement_of_id[static_cast<size_t>(sid)];
        LOWBIT_CHECK(pos >= 0, name, ":", lineno, ": supporting fact ", sid, " is a question, not a statement");
        if (pos < ex.memory_begin)
          ex.support_dropped = true;
        else
          ex.supporting.push_back(static_cast<int>(pos - ex.memory_begin));
      }
    }
    ex.line = lineno;
    out.push_back(std::move(ex));
  }
  LOWBIT_CHECK(!in.bad(), name, ": read error");
  return out;
}

std::vector<BabiExample> read_babi_file(const std::string& path, int memory_limit) {
  std::error_code ec;
  LOWBIT_CHECK(fs::is_regular_file(path, ec), path, ": no such file");
  std::ifstream f(path, std::ios::binary);
  LOWBIT_CHECK(f.is_open(), path, ": cannot open");
  return parse_babi(f, path, memory_limit);
}

std::string find_babi_file(const std::string& dir, int task, BabiSplit split, const std::string& fallback_dir) {
  LOWBIT_CHECK(task >= 1 && task <= kBabiTasks, "bAbI task ", task, " does not exist (tasks are 1..", kBabiTasks, ")");
  std::string path = match_in(dir, task, split);
  if (path.empty() && !fallback_dir.empty()) path = match_in(fallback_dir, task, split);
  LOWBIT_CHECK(!path.empty(), "no bAbI file qa", task, "_*_", split_name(split), ".txt in ", dir,
               fallback_dir.empty() ? "" : " or ", fallback_dir);
  return path;
}

std::vector<BabiExample> load_babi_task(const std::string& dir, int task, BabiSplit split, int memory_limit,
                                        const std::string& fallback_dir) {
  std::vector<BabiExample> ex = read_babi_file(find_babi_file(dir, task, split, fallback_dir), memory_limit);
  for (BabiExample& e : ex) e.task = task;
  return ex;
}

std::vector<BabiExample> load_babi_joint(const std::string& dir, BabiSplit split, int memory_limit,
                                         const std::string& fallback_dir) {
  std::vector<BabiExample> all;
  for (int t = 1; t <= kBabiTasks; ++t) {
    std::vector<BabiExample> ex = load_babi_task(dir, t, split, memory_limit, fallback_dir);
    all.insert(all.end(), std::make_move_iterator(ex.begin()), std::make_move_iterator(ex.end()));
  }
  return all;
}

BabiTrainValid split_babi_validation(const std::vector<BabiExample>& examples, double fraction) {
  LOWBIT_CHECK(fraction >= 0.0 && fraction <= 1.0, "validation fraction ", fraction, " is not in [0, 1]");
  std::map<int, int64_t> count;
  for (const BabiExample& e : examples) ++count[e.task];
  std::map<int, int64_t> held;  // first index (within its task) that goes to validation
  for (const auto& [task, n] : count) held[task] = n - std::llround(static_cast<double>(n) * fraction);
  std::map<int, int64_t> seen;
  BabiTrainValid out;
  for (const BabiExample& e : examples) {
    if (seen[e.task]++ < held[e.task])
      out.train.push_back(e);
    else
      out.valid.push_back(e);
  }
  return out;
}

BabiVocabulary::BabiVocabulary() : words_{kNullWord, kUnknownWord} {
  ids_[kNullWord] = kNull;
  ids_[kUnknownWord] = kUnknown;
}

BabiVocabulary BabiVocabulary::build(std::span<const BabiExample> examples) {
  std::set<std::string> words;
  // Questions of a story share its statements; read each story once, all of it (a story's later
  // statements are training text too, whether or not a question sees them).
  std::set<const std::vector<BabiSentence>*> stories;
  for (const BabiExample& e : examples) {
    if (stories.insert(e.story.get()).second)
      for (const BabiSentence& s : *e.story) words.insert(s.begin(), s.end());
    for (const std::string& w : e.question) words.insert(w);
    words.insert(e.answer_token());
  }
  BabiVocabulary v;
  for (const std::string& w : words) {
    if (v.ids_.count(w)) continue;  // a data word spelled like a reserved one keeps the reserved id
    v.ids_[w] = static_cast<int32_t>(v.words_.size());
    v.words_.push_back(w);
  }
  return v;
}

int32_t BabiVocabulary::id(const std::string& word) const {
  const auto it = ids_.find(word);
  return it == ids_.end() ? kUnknown : it->second;
}

const std::string& BabiVocabulary::word(int32_t id) const {
  LOWBIT_CHECK(id >= 0 && id < size(), "vocabulary id ", id, " out of range [0, ", size(), ")");
  return words_[static_cast<size_t>(id)];
}

int64_t babi_max_sentence_length(std::span<const BabiExample> examples) {
  size_t m = 0;
  for (const BabiExample& e : examples) {
    m = std::max(m, e.question.size());
    for (const BabiSentence& s : e.memory()) m = std::max(m, s.size());
  }
  return static_cast<int64_t>(m);
}

BabiBatch make_babi_batch(std::span<const BabiExample> examples, const BabiVocabulary& vocab, int64_t memory_size,
                          int64_t sentence_len) {
  LOWBIT_CHECK(!examples.empty(), "make_babi_batch: no examples");
  LOWBIT_CHECK(memory_size >= 1, "make_babi_batch: memory size ", memory_size, " must be at least 1");
  LOWBIT_CHECK(sentence_len >= 0, "make_babi_batch: sentence length ", sentence_len, " is negative");
  if (sentence_len == 0) sentence_len = std::max<int64_t>(1, babi_max_sentence_length(examples));
  const int64_t B = static_cast<int64_t>(examples.size());
  BabiBatch b;
  b.memory = Tensor::zeros({B, memory_size, sentence_len}, DType::i32);
  b.memory_lengths = Tensor::zeros({B, memory_size}, DType::i32);
  b.story_sizes = Tensor::zeros({B}, DType::i32);
  b.query = Tensor::zeros({B, sentence_len}, DType::i32);
  b.query_lengths = Tensor::zeros({B}, DType::i32);
  b.answer = Tensor::zeros({B}, DType::i32);
  int32_t* mem = b.memory.data<int32_t>();
  int32_t* mlen = b.memory_lengths.data<int32_t>();
  int32_t* ssz = b.story_sizes.data<int32_t>();
  int32_t* q = b.query.data<int32_t>();
  int32_t* qlen = b.query_lengths.data<int32_t>();
  int32_t* ans = b.answer.data<int32_t>();

  auto encode = [&](const BabiSentence& s, int32_t* dst, int64_t i, const char* what) {
    LOWBIT_CHECK(static_cast<int64_t>(s.size()) <= sentence_len, "make_babi_batch: example ", i, " (task ",
                 examples[static_cast<size_t>(i)].task, ", line ", examples[static_cast<size_t>(i)].line, "): ", what,
                 " has ", s.size(), " words, more than the sentence length ", sentence_len);
    for (size_t w = 0; w < s.size(); ++w) {
      dst[w] = vocab.id(s[w]);
      if (dst[w] == BabiVocabulary::kUnknown) ++b.unknown_words;
    }
  };
  for (int64_t i = 0; i < B; ++i) {
    const BabiExample& e = examples[static_cast<size_t>(i)];
    const std::span<const BabiSentence> m = e.memory();
    LOWBIT_CHECK(static_cast<int64_t>(m.size()) <= memory_size, "make_babi_batch: example ", i, " (task ", e.task,
                 ", line ", e.line, ") has ", m.size(), " memory sentences, more than the memory size ", memory_size);
    for (size_t s = 0; s < m.size(); ++s) {
      encode(m[s], mem + (i * memory_size + static_cast<int64_t>(s)) * sentence_len, i, "a memory sentence");
      mlen[i * memory_size + static_cast<int64_t>(s)] = static_cast<int32_t>(m[s].size());
    }
    ssz[i] = static_cast<int32_t>(m.size());
    encode(e.question, q + i * sentence_len, i, "the question");
    qlen[i] = static_cast<int32_t>(e.question.size());
    ans[i] = vocab.id(e.answer_token());
    if (ans[i] == BabiVocabulary::kUnknown) ++b.unknown_answers;
  }
  return b;
}

}  // namespace lowbit::data

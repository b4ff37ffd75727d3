// bAbI question answering tasks (Weston et al., v1.2): task files, a vocabulary, padded batches.
//
// A task file is plain ASCII, one sentence a line, "ID text". ID counts from 1 within a story;
// a line with ID 1 starts a new story, every other line must continue the numbering (ID = previous
// ID + 1). A question line is "ID question?<TAB>answer<TAB>supporting IDs": the answer is one word
// or a comma-separated list (tasks 8 "lists/sets" and 19 "path finding": "n,w"), the supporting IDs
// are space-separated IDs of earlier statement lines of the same story (the field may be absent).
// A trailing '\r' is ignored, so files with CRLF line ends read the same.
//
// Every question becomes one example. Its memory is the story's statements before it (questions
// are never memories), oldest first, cut to the latest `memory_limit` (50, as in MemN2N/Q-MANN).
// Supporting IDs become positions in that memory; a supporting statement that the cut dropped is
// left out of `supporting` and flagged in `support_dropped`: that is a property of the data and
// the memory size, not an error.
//
// Tokens follow the MemN2N/Q-MANN preprocessing: lower-cased; split into runs of word characters
// [A-Za-z0-9_] and runs of other non-blank characters; the tokens "." and "?" are dropped (other
// punctuation, e.g. "," or "'", stays as a token of its own). Answers are lower-cased and split
// on ','.
//
// The parser rejects, with an Error naming file and line: a line without a leading integer ID
// (an empty line included), an ID that neither restarts at 1 nor continues the story, a question
// before any statement of its story, a question line without its tab-separated answer (a line
// with '?' and no tab), an empty answer, a supporting ID that is not an integer, is not an earlier
// line of the story or names a question line, a line with no words, and any byte outside printable
// ASCII and tab (the column is named).
#pragma once

#include <cstdint>
#include <istream>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "lowbit/core/tensor.h"

namespace lowbit::data {

using BabiSentence = std::vector<std::string>;

inline constexpr int kBabiTasks = 20;
inline constexpr int kBabiMemoryLimit = 50;

struct BabiExample {
  // The statements of the story up to this question. Shared by all questions of a story, so a
  // 10k-question file does not copy each story once per question.
  std::shared_ptr<const std::vector<BabiSentence>> story;
  int64_t memory_begin = 0;  // memory = story[memory_begin, memory_end)
  int64_t memory_end = 0;
  BabiSentence question;
  std::vector<std::string> answer;  // one word, or several for list/path answers
  std::vector<int> supporting;      // positions in memory() (0 = oldest kept statement)
  bool support_dropped = false;     // a supporting statement lies before the memory window
  int task = 0;                     // 1..20 when loaded by task number, otherwise 0
  int line = 0;                     // line number of the question in its file (from 1)

  std::span<const BabiSentence> memory() const {
    return std::span<const BabiSentence>(*story).subspan(static_cast<size_t>(memory_begin),
                                                         static_cast<size_t>(memory_end - memory_begin));
  }
  // The answer as one vocabulary entry: the words joined by ',' ("n,w"), as MemN2N does, so that
  // every answer is a single class of the output softmax.
  std::string answer_token() const;
};

// Splits a sentence into tokens by the rules above.
BabiSentence babi_tokenize(const std::string& text);

// Parses a whole task file from `in`; `name` is used in error messages.
std::vector<BabiExample> parse_babi(std::istream& in, const std::string& name, int memory_limit = kBabiMemoryLimit);
std::vector<BabiExample> read_babi_file(const std::string& path, int memory_limit = kBabiMemoryLimit);

enum class BabiSplit { train, test };

// The file "qaN_<name>_{train,test}.txt" of task N (1..20) in `dir`. When `dir` lacks it and
// `fallback_dir` is not empty, looks there: the 10k set used here lacks task 3's training file,
// which then comes from the 1k set. An Error names the folders and the pattern when there is no
// such file, or when several files match.
std::string find_babi_file(const std::string& dir, int task, BabiSplit split, const std::string& fallback_dir = "");

std::vector<BabiExample> load_babi_task(const std::string& dir, int task, BabiSplit split,
                                        int memory_limit = kBabiMemoryLimit, const std::string& fallback_dir = "");
// Tasks 1..20 in order, for joint training.
std::vector<BabiExample> load_babi_joint(const std::string& dir, BabiSplit split, int memory_limit = kBabiMemoryLimit,
                                         const std::string& fallback_dir = "");

// Holds out a validation set the way the Q-MANN code does: the last `fraction` of each task's
// training examples in file order (no shuffling, so it is the same on every run), rounded to the
// nearest example; examples of a task keep their order. Examples are grouped by `task`, so a
// joint set holds out 10 % of every task. The cut is by question, so the first validation
// question may share its story with the last training question, as in the reference code.
struct BabiTrainValid {
  std::vector<BabiExample> train;
  std::vector<BabiExample> valid;
};
BabiTrainValid split_babi_validation(const std::vector<BabiExample>& examples, double fraction = 0.1);

// Word <-> id map. Id 0 is the NULL padding word, id 1 stands for every word that is not in the
// vocabulary (words of test files never seen in training); the words of the training examples
// follow in sorted order, so the ids do not depend on the order of the files.
class BabiVocabulary {
 public:
  static constexpr int32_t kNull = 0;
  static constexpr int32_t kUnknown = 1;
  static constexpr const char* kNullWord = "<null>";
  static constexpr const char* kUnknownWord = "<unk>";

  BabiVocabulary();
  // All words of the examples' stories (also statements older than the memory window) and
  // questions, and every answer_token().
  static BabiVocabulary build(std::span<const BabiExample> examples);

  int64_t size() const { return static_cast<int64_t>(words_.size()); }
  bool contains(const std::string& word) const { return ids_.count(word) != 0; }
  // kUnknown for a word outside the vocabulary.
  int32_t id(const std::string& word) const;
  const std::string& word(int32_t id) const;

 private:
  std::vector<std::string> words_;
  std::unordered_map<std::string, int32_t> ids_;
};

// Padded int32 tensors for a batch of B examples. Memory slots hold the example's memory oldest
// first from slot 0; unused slots and word positions are NULL (0), and their length is 0.
struct BabiBatch {
  Tensor memory;          // i32 [B, memory_size, sentence_len]
  Tensor memory_lengths;  // i32 [B, memory_size]: words per memory sentence
  Tensor story_sizes;     // i32 [B]: memory sentences in use
  Tensor query;           // i32 [B, sentence_len]
  Tensor query_lengths;   // i32 [B]
  Tensor answer;          // i32 [B]: id of answer_token()
  int64_t unknown_words = 0;    // memory and query words mapped to kUnknown
  int64_t unknown_answers = 0;  // answers mapped to kUnknown (can never be predicted right)
};

// Longest memory sentence or question among the examples, in tokens.
int64_t babi_max_sentence_length(std::span<const BabiExample> examples);

// `sentence_len` 0 means the longest sentence of these examples; a model with a fixed input
// width passes its own, and a longer sentence is an Error naming it. Each memory must fit in
// `memory_size` slots (parse with memory_limit <= memory_size).
BabiBatch make_babi_batch(std::span<const BabiExample> examples, const BabiVocabulary& vocab,
                          int64_t memory_size = kBabiMemoryLimit, int64_t sentence_len = 0);

}  // namespace lowbit::data

// Penn Treebank, Mikolov's language-modelling version: ptb.{train,valid,test}.txt.
//
// Each file is plain ASCII text, one sentence per line, words separated by spaces (Mikolov's
// files also start every line with a space). As in the standard LM setup (Mikolov's RNNLM,
// Zaremba et al.), the end of every line becomes the word "<eos>", so the 9,999 words of the
// training file plus "<eos>" make the usual 10k vocabulary. The vocabulary comes from the
// training file only; a word of valid or test that it lacks is an error, since the published
// files map every rare word to "<unk>" and a miss means a wrong or edited file.
//
// What the reader accepts, and why:
//  - Separators are spaces and tabs; runs of them and leading/trailing ones are ignored.
//  - A line is ended by "\n" or by "\r\n" (CRLF is tolerated: a checkout on Windows or a copy
//    through a text-mode tool must read the same). A lone "\r" elsewhere is rejected.
//  - A last line without "\n" still ends a sentence and gets its "<eos>", so cutting off
//    the final newline does not change the token stream.
//  - A blank line is an empty sentence: it yields one "<eos>", as in the reference readers.
//  - NUL, other control bytes and bytes >= 0x80 are errors naming the file, line and column:
//    the published files are ASCII, and such bytes mean a binary or re-encoded file.
//  - An empty file, or one with no words at all, is an error. So is the literal word "<eos>"
//    in the text, which would be indistinguishable from a line end.
// Every error is a lowbit::Error whose message starts with "FILE:LINE:" where a line applies.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lowbit/core/tensor.h"

namespace lowbit::data {

// Word <-> id. Ids are 0, 1, 2, ... in order of first appearance in the training file, with
// "<eos>" taking its id where the first line ends. First appearance (rather than frequency
// order) keeps the mapping defined by the text alone, with no tie-breaking rule among words of
// equal count; it is also the order of Zaremba et al.'s reference reader. Ids index embedding
// and softmax rows only, so the choice does not change what a model can learn.
class Vocabulary {
 public:
  static constexpr std::string_view kEos = "<eos>";

  // The id of `word`, adding it with the next id if it is new.
  int32_t add(std::string_view word);
  // The id of `word`; throws an Error naming the word when it is not in the vocabulary.
  int32_t id(std::string_view word) const;
  bool contains(std::string_view word) const;
  // The word with id `id` (0 <= id < size()); throws otherwise.
  const std::string& word(int32_t id) const;
  int64_t size() const { return static_cast<int64_t>(words_.size()); }

 private:
  // Transparent hashing lets lookups take a string_view without building a std::string.
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, int32_t, Hash, std::equal_to<>> ids_;
  std::vector<std::string> words_;
};

struct PtbCorpus {
  Vocabulary vocab;  // from the training file
  Tensor train;      // i32 [N] token ids, "<eos>" after every line
  Tensor valid;
  Tensor test;
};

// Reads ptb.train.txt, ptb.valid.txt and ptb.test.txt from `dir`.
PtbCorpus load_ptb(const std::string& dir);

// Tokenizes one PTB-format file into ids. With `grow` set, new words are added to `vocab`
// (the training file); otherwise a word missing from `vocab` is an error. Exposed so that
// other text in the same format (a sample, a held-out file) can be read with a corpus'
// vocabulary.
Tensor read_ptb_file(const std::string& path, Vocabulary& vocab, bool grow);

// The PTB folder to use: `flag_value` if non-empty, else the LOWBIT_PTB_DIR environment
// variable if set and non-empty, else an Error saying where to get the data and how to point
// lowbit at it (PTB has no open licence, so it is never bundled).
std::string ptb_dir_from(const std::string& flag_value);

// Windows for truncated back-propagation through time.
//
// The token stream of N ids is cut into `batch` parallel streams of L = N / batch tokens each
// (the N mod batch leftover tokens at the end are dropped): stream b is tokens
// [b·L, (b+1)·L). Stored time-major as [L, batch], so column b is stream b. Window k covers
// steps [k·bptt, k·bptt + T) with T = min(bptt, L − 1 − k·bptt): input is those rows, target
// the rows one step later, so target[t][b] is the token that follows input[t][b] in stream b.
// The windows cover steps 0 .. L − 2 once each; the last one is shorter when bptt does not
// divide L − 1. Nothing is random: the same stream always gives the same windows. Carry the
// LSTM state from window k to k + 1 (column b continues stream b).
class BpttBatches {
 public:
  struct Window {
    Tensor input;   // i32 [T, batch]
    Tensor target;  // i32 [T, batch]
  };

  // tokens: i32 [N]. Needs batch >= 1, bptt >= 1 and L >= 2 (at least one input-target pair).
  BpttBatches(const Tensor& tokens, int64_t batch, int64_t bptt);

  int64_t batch() const { return batch_; }
  int64_t bptt() const { return bptt_; }
  // Tokens per stream (L).
  int64_t steps() const { return steps_; }
  // Tokens dropped from the end of the stream (N mod batch).
  int64_t dropped() const { return dropped_; }
  int64_t num_windows() const { return (steps_ - 1 + bptt_ - 1) / bptt_; }
  // Window k, 0 <= k < num_windows(). Both tensors share storage with this object's streams.
  Window window(int64_t k) const;
  // The streams, i32 [L, batch].
  const Tensor& streams() const { return streams_; }

 private:
  int64_t batch_, bptt_, steps_, dropped_;
  Tensor streams_;
};

}  // namespace lowbit::data

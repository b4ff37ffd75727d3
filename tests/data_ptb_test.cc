#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "lowbit/core/error.h"
#include "lowbit/data/ptb.h"
#include "test_util.h"

namespace lowbit::data {
namespace {

namespace fs = std::filesystem;

std::vector<int32_t> values(const Tensor& t) {
  std::vector<int32_t> v;
  const int32_t* p = t.data<int32_t>();
  for (int64_t i = 0; i < t.numel(); ++i) v.push_back(p[i]);
  return v;
}

void expect_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    for (const std::string& part : parts)
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << "'" << part << "' not in: " << e.what();
  }
}

// Sets or clears an environment variable for one scope and restores the old value after it.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) ::setenv(name, value, 1);
    else ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_) ::setenv(name_, old_->c_str(), 1);
    else ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// Each test writes small PTB-format files into its own temporary folder.
class DataPtb : public lowbit::testing::TempDirTest {
 protected:

  void write(const std::string& name, const std::string& text) {
    std::ofstream f(dir_ / name, std::ios::binary);
    f.write(text.data(), static_cast<std::streamsize>(text.size()));
  }
  // A well-formed toy corpus in Mikolov's layout (every line starts with a space).
  void write_toy() {
    write("ptb.train.txt", " the cat sat \n the dog <unk> sat\n");
    write("ptb.valid.txt", " the dog \n");
    write("ptb.test.txt", " cat <unk>\n");
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

};

TEST_F(DataPtb, VocabularyMapsBothWays) {
  Vocabulary v;
  EXPECT_EQ(v.add("a"), 0);
  EXPECT_EQ(v.add("b"), 1);
  EXPECT_EQ(v.add("a"), 0);  // known words keep their id
  EXPECT_EQ(v.size(), 2);
  EXPECT_EQ(v.id("b"), 1);
  EXPECT_EQ(v.word(1), "b");
  EXPECT_TRUE(v.contains("a"));
  EXPECT_FALSE(v.contains("xyz"));
  expect_error([&] { v.id("xyz"); }, {"'xyz'", "not in the vocabulary"});
  expect_error([&] { v.word(2); }, {"word id 2", "2 words"});
  expect_error([&] { v.word(-1); }, {"word id -1"});
}

TEST_F(DataPtb, LoadsToyCorpusWithEosAfterEveryLine) {
  write_toy();
  const PtbCorpus c = load_ptb(dir_.string());
  // First appearance: the=0 cat=1 sat=2 <eos>=3 dog=4 <unk>=5.
  ASSERT_EQ(c.vocab.size(), 6);
  EXPECT_EQ(c.vocab.id("<eos>"), 3);
  EXPECT_EQ(c.vocab.word(5), "<unk>");
  EXPECT_EQ(c.train.describe(), "i32[9]");
  EXPECT_EQ(values(c.train), (std::vector<int32_t>{0, 1, 2, 3, 0, 4, 5, 2, 3}));
  EXPECT_EQ(values(c.valid), (std::vector<int32_t>{0, 4, 3}));
  EXPECT_EQ(values(c.test), (std::vector<int32_t>{1, 5, 3}));
}

TEST_F(DataPtb, LastLineWithoutNewlineStillEndsASentence) {
  write("a.txt", " x y\n z\n");
  write("b.txt", " x y\n z");
  Vocabulary va, vb;
  EXPECT_EQ(values(read_ptb_file(path("a.txt"), va, true)), values(read_ptb_file(path("b.txt"), vb, true)));
  EXPECT_EQ(vb.size(), 4);
}

TEST_F(DataPtb, CrlfLineEndsReadAsLf) {
  write("lf.txt", " x y\n z\n");
  write("crlf.txt", " x y\r\n z\r\n");
  Vocabulary va, vb;
  EXPECT_EQ(values(read_ptb_file(path("lf.txt"), va, true)), values(read_ptb_file(path("crlf.txt"), vb, true)));
}

TEST_F(DataPtb, BlankLinesAndTabsAndRunsOfSpaces) {
  write("t.txt", "a\t b   c\n\n  \nd\n");
  Vocabulary v;
  // a=0 b=1 c=2 <eos>=3 d=4; each blank line is an empty sentence.
  EXPECT_EQ(values(read_ptb_file(path("t.txt"), v, true)), (std::vector<int32_t>{0, 1, 2, 3, 3, 3, 4, 3}));
}

TEST_F(DataPtb, MissingFolderOrFileIsNamed) {
  expect_error([&] { load_ptb(path("nowhere")); }, {"nowhere", "no such directory"});
  expect_error([&] { load_ptb(dir_.string()); }, {"ptb.train.txt", "no such file"});
  write_toy();
  for (const char* name : {"ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"}) {
    SCOPED_TRACE(name);
    fs::rename(dir_ / name, dir_ / "aside");
    expect_error([&] { load_ptb(dir_.string()); }, {name, "no such file"});
    fs::rename(dir_ / "aside", dir_ / name);
  }
}

TEST_F(DataPtb, EmptyOrWordlessFile) {
  write_toy();
  write("ptb.valid.txt", "");
  expect_error([&] { load_ptb(dir_.string()); }, {"ptb.valid.txt", "empty file"});
  write("ptb.valid.txt", " \n\n \n");
  expect_error([&] { load_ptb(dir_.string()); }, {"ptb.valid.txt", "no words in 3 lines"});
}

TEST_F(DataPtb, BadBytesNameFileLineAndColumn) {
  write_toy();
  write("ptb.train.txt", " the cat\n the d\xc3\xb6g\n");
  expect_error([&] { load_ptb(dir_.string()); }, {"ptb.train.txt:2:", "byte 0xc3 at column 7", "not ASCII"});
  write("ptb.train.txt", std::string(" the cat\n\n th\0e\n", 16));
  expect_error([&] { load_ptb(dir_.string()); }, {"ptb.train.txt:3:", "NUL byte at column 4"});
  write("ptb.train.txt", " the\x07 cat\n");
  expect_error([&] { load_ptb(dir_.string()); }, {"ptb.train.txt:1:", "control byte 0x7 at column 5"});
  write("ptb.train.txt", " the\r cat\n");
  expect_error([&] { load_ptb(dir_.string()); }, {"ptb.train.txt:1:", "carriage return at column 5", "CRLF"});
  write("ptb.train.txt", " the cat\r");
  expect_error([&] { load_ptb(dir_.string()); }, {"ptb.train.txt:1:", "carriage return"});
}

TEST_F(DataPtb, UnknownWordInValidOrTest) {
  write_toy();
  write("ptb.train.txt", " the cat sat <unk>\n the dog\n");
  write("ptb.valid.txt", " the dog\n the xyz sat\n");
  expect_error([&] { load_ptb(dir_.string()); },
               {path("ptb.valid.txt") + ":2: word 'xyz' is not in the training vocabulary"});
  write("ptb.valid.txt", " the dog\n");
  write("ptb.test.txt", " cat\n\n\n sat Cat\n");
  expect_error([&] { load_ptb(dir_.string()); },
               {path("ptb.test.txt") + ":4: word 'Cat' is not in the training vocabulary"});
}

TEST_F(DataPtb, LiteralEosIsRejected) {
  write_toy();
  write("ptb.train.txt", " the cat <eos> sat\n");
  expect_error([&] { load_ptb(dir_.string()); }, {"ptb.train.txt:1:", "'<eos>' is reserved"});
}

TEST_F(DataPtb, DirFromFlagThenEnvironmentThenHelp) {
  {
    ScopedEnv env("LOWBIT_PTB_DIR", "/from/env");
    EXPECT_EQ(ptb_dir_from("/from/flag"), "/from/flag");
    EXPECT_EQ(ptb_dir_from(""), "/from/env");
  }
  {
    ScopedEnv env("LOWBIT_PTB_DIR", "");
    expect_error([] { ptb_dir_from(""); }, {"simple-examples.tgz", "data/", "LOWBIT_PTB_DIR"});
  }
  ScopedEnv env("LOWBIT_PTB_DIR", nullptr);
  expect_error([] { ptb_dir_from(""); }, {"simple-examples.tgz", "LOWBIT_PTB_DIR", "command line"});
}

TEST_F(DataPtb, BpttWindowsAreShiftedByOne) {
  // 23 tokens 100..122 in 2 streams: 11 steps each, 1 token dropped.
  std::vector<int32_t> toks;
  for (int32_t i = 0; i < 23; ++i) toks.push_back(100 + i);
  const Tensor t = Tensor::from<int32_t>({23}, toks);
  const BpttBatches bb(t, 2, 4);
  EXPECT_EQ(bb.steps(), 11);
  EXPECT_EQ(bb.dropped(), 1);
  ASSERT_EQ(bb.num_windows(), 3);  // steps 0-3, 4-7, 8-9 (10 inputs with a next token)
  const std::vector<int64_t> lens{4, 4, 2};
  int64_t step = 0;
  for (int64_t k = 0; k < bb.num_windows(); ++k) {
    SCOPED_TRACE(k);
    const BpttBatches::Window w = bb.window(k);
    ASSERT_EQ(w.input.shape(), (Shape{lens[k], 2}));
    ASSERT_EQ(w.target.shape(), (Shape{lens[k], 2}));
    const int32_t* in = w.input.data<int32_t>();
    const int32_t* tg = w.target.data<int32_t>();
    for (int64_t s = 0; s < lens[k]; ++s, ++step)
      for (int64_t b = 0; b < 2; ++b) {
        EXPECT_EQ(in[s * 2 + b], 100 + b * 11 + step);
        EXPECT_EQ(tg[s * 2 + b], in[s * 2 + b] + 1);
      }
  }
  EXPECT_EQ(step, 10);
  expect_error([&] { bb.window(3); }, {"window 3 out of range"});
  // The same input gives the same windows.
  const BpttBatches again(t, 2, 4);
  EXPECT_EQ(values(again.window(2).input), values(bb.window(2).input));
  EXPECT_EQ(values(again.window(2).target), values(bb.window(2).target));
}

TEST_F(DataPtb, BpttExactFitAndOneStream) {
  std::vector<int32_t> toks{0, 1, 2, 3, 4, 5, 6, 7, 8};
  const Tensor t = Tensor::from<int32_t>({9}, toks);
  const BpttBatches one(t, 1, 4);  // 8 pairs in 2 full windows
  EXPECT_EQ(one.num_windows(), 2);
  EXPECT_EQ(values(one.window(1).input), (std::vector<int32_t>{4, 5, 6, 7}));
  EXPECT_EQ(values(one.window(1).target), (std::vector<int32_t>{5, 6, 7, 8}));
  const BpttBatches big(t, 3, 100);  // bptt beyond the stream: one short window
  EXPECT_EQ(big.num_windows(), 1);
  EXPECT_EQ(big.window(0).input.shape(), (Shape{2, 3}));
  EXPECT_EQ(values(big.window(0).input), (std::vector<int32_t>{0, 3, 6, 1, 4, 7}));
  EXPECT_EQ(values(big.window(0).target), (std::vector<int32_t>{1, 4, 7, 2, 5, 8}));
}

TEST_F(DataPtb, BpttRejectsBadArguments) {
  std::vector<int32_t> toks{0, 1, 2, 3, 4};
  const Tensor t = Tensor::from<int32_t>({5}, toks);
  expect_error([&] { BpttBatches(t, 0, 4); }, {"batch must be >= 1, got 0"});
  expect_error([&] { BpttBatches(t, 1, 0); }, {"bptt must be >= 1, got 0"});
  expect_error([&] { BpttBatches(t, 3, 4); }, {"5 tokens in 3 streams", "1 tokens per stream"});
  expect_error([&] { BpttBatches(Tensor::zeros({5}, DType::f32), 1, 4); }, {"expected i32 tokens [N]", "f32[5]"});
  expect_error([&] { BpttBatches(t.reshape({5, 1}), 1, 4); }, {"i32[5, 1]"});
}

// The real data, when this machine has it: LOWBIT_PTB_DIR, else a shared data folder next to the
// source tree. PTB is never committed, so its absence is a skip, not a failure.
TEST(DataPtbReal, PublishedCounts) {
  std::string dir;
  if (const char* env = std::getenv("LOWBIT_PTB_DIR"); env != nullptr && *env != '\0') dir = env;
  else dir = (fs::path(LOWBIT_SOURCE_DIR) / ".." / "shared" / "data" / "ptb").lexically_normal().string();
  if (!fs::is_regular_file(fs::path(dir) / "ptb.train.txt"))
    GTEST_SKIP() << "PTB not found at " << dir << " (set LOWBIT_PTB_DIR to run this test)";
  const PtbCorpus c = load_ptb(dir);
  // Mikolov's 10k vocabulary: 9,999 words of the training file plus <eos>.
  EXPECT_EQ(c.vocab.size(), 10000);
  EXPECT_TRUE(c.vocab.contains("<unk>"));
  EXPECT_TRUE(c.vocab.contains("N"));
  // Words plus one <eos> per line: train 887,521 + 42,068, valid 70,390 + 3,370,
  // test 78,669 + 3,761.
  EXPECT_EQ(c.train.numel(), 929589);
  EXPECT_EQ(c.valid.numel(), 73760);
  EXPECT_EQ(c.test.numel(), 82430);
  const int32_t eos = c.vocab.id("<eos>");
  auto count_eos = [&](const Tensor& t) {
    int64_t n = 0;
    const int32_t* p = t.data<int32_t>();
    for (int64_t i = 0; i < t.numel(); ++i) n += p[i] == eos;
    return n;
  };
  EXPECT_EQ(count_eos(c.train), 42068);
  EXPECT_EQ(count_eos(c.valid), 3370);
  EXPECT_EQ(count_eos(c.test), 3761);
  EXPECT_EQ(c.train.data<int32_t>()[c.train.numel() - 1], eos);
  // Zaremba et al.'s small setup: batch 20, 35 steps.
  const BpttBatches bb(c.train, 20, 35);
  EXPECT_EQ(bb.steps(), 46479);
  EXPECT_EQ(bb.dropped(), 9);
  EXPECT_EQ(bb.num_windows(), 1328);
  EXPECT_EQ(bb.window(1327).input.size(0), 46478 - 1327 * 35);
}

}  // namespace
}  // namespace lowbit::data

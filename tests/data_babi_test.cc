#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "lowbit/core/error.h"
#include "lowbit/data/babi.h"
#include "test_util.h"

namespace lowbit::data {
namespace {

namespace fs = std::filesystem;

std::vector<BabiExample> parse(const std::string& text, int memory_limit = kBabiMemoryLimit) {
  std::istringstream in(text);
  return parse_babi(in, "t.txt", memory_limit);
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

void expect_parse_error(const std::string& text, const std::vector<std::string>& parts) {
  SCOPED_TRACE(text);
  expect_error([&] { parse(text); }, parts);
}

const char* kStory =
    "1 Mary moved to the bathroom.\n"
    "2 John went to the hallway.\n"
    "3 Where is Mary? \tbathroom\t1\n"
    "4 Daniel went back to the hallway.\n"
    "5 Where is Daniel?\thallway\t4\n"
    "1 Sandra got the apple there.\n"
    "2 What is Sandra carrying?\tapple\t1\n";

TEST(DataBabi, TokenizesLikeTheReference) {
  EXPECT_EQ(babi_tokenize("Mary moved to the bathroom."), (BabiSentence{"mary", "moved", "to", "the", "bathroom"}));
  EXPECT_EQ(babi_tokenize("Where is Mary? "), (BabiSentence{"where", "is", "mary"}));
  // Other punctuation stays as a token of its own, as in the reference split on non-word runs.
  EXPECT_EQ(babi_tokenize("Yes, it's 2."), (BabiSentence{"yes", ",", "it", "'", "s", "2"}));
}

TEST(DataBabi, ParsesStoriesQuestionsAndSupport) {
  const std::vector<BabiExample> ex = parse(kStory);
  ASSERT_EQ(ex.size(), 3u);
  // Questions are never memories; each question sees the statements before it.
  ASSERT_EQ(ex[0].memory().size(), 2u);
  EXPECT_EQ(ex[0].memory()[1], (BabiSentence{"john", "went", "to", "the", "hallway"}));
  EXPECT_EQ(ex[0].question, (BabiSentence{"where", "is", "mary"}));
  EXPECT_EQ(ex[0].answer, (std::vector<std::string>{"bathroom"}));
  EXPECT_EQ(ex[0].supporting, (std::vector<int>{0}));
  EXPECT_EQ(ex[0].line, 3);
  ASSERT_EQ(ex[1].memory().size(), 3u);
  EXPECT_EQ(ex[1].supporting, (std::vector<int>{2}));  // line 4 is the third statement
  EXPECT_EQ(ex[0].story, ex[1].story);                  // shared, not copied
  ASSERT_EQ(ex[2].memory().size(), 1u);                 // ID 1 started a new story
  EXPECT_EQ(ex[2].memory()[0][0], "sandra");
  EXPECT_FALSE(ex[2].support_dropped);
}

TEST(DataBabi, ListAnswersAreWordListsAndOneToken) {
  const std::vector<BabiExample> ex =
      parse("1 The kitchen is north of the office.\n2 How do you go from the office to the kitchen?\tN,w\t1\n"
            "3 What is north of the office?\tkitchen\t1\n");
  EXPECT_EQ(ex[0].answer, (std::vector<std::string>{"n", "w"}));
  EXPECT_EQ(ex[0].answer_token(), "n,w");
  // A question line's ID counts, so supporting ID 1 of line 3 still names the statement.
  EXPECT_EQ(ex[1].supporting, (std::vector<int>{0}));
}

TEST(DataBabi, MemoryKeepsTheLatest50AndRemapsSupport) {
  std::string text;
  for (int i = 1; i <= 60; ++i) text += std::to_string(i) + " Sentence number w" + std::to_string(i) + ".\n";
  text += "61 Where?\tx\t5 55 60\n";  // statement 5 falls out of a 50-sentence memory
  text += "62 Where?\tx\t11 60\n";    // statement 11 is the oldest one kept
  const std::vector<BabiExample> ex = parse(text);
  ASSERT_EQ(ex.size(), 2u);
  ASSERT_EQ(ex[0].memory().size(), 50u);
  EXPECT_EQ(ex[0].memory()[0][2], "w11");
  EXPECT_EQ(ex[0].memory()[49][2], "w60");
  EXPECT_TRUE(ex[0].support_dropped);
  EXPECT_EQ(ex[0].supporting, (std::vector<int>{44, 49}));
  EXPECT_FALSE(ex[1].support_dropped);
  EXPECT_EQ(ex[1].supporting, (std::vector<int>{0, 49}));
  // A smaller limit applies the same rule.
  const std::vector<BabiExample> small = parse(text, 3);
  EXPECT_EQ(small[0].memory().size(), 3u);
  EXPECT_EQ(small[0].supporting, (std::vector<int>{2}));  // 55 fell out too
}

TEST(DataBabi, RejectsMalformedFilesNamingFileAndLine) {
  expect_parse_error("1 Mary went home.\nx Where is Mary?\thome\t1\n", {"t.txt:2:", "malformed line"});
  expect_parse_error("Mary went home.\n", {"t.txt:1:", "malformed line"});
  expect_parse_error("1 Mary went home.\n\n", {"t.txt:2:", "malformed line"});
  expect_parse_error("1 Where is Mary?\thome\t\n", {"t.txt:1:", "question before any statement"});
  expect_parse_error("1 Mary went home.\n2 Where is Mary?\thome\t1\n3 Where is Mary?\thome\t2\n",
                     {"t.txt:3:", "supporting fact 2 is a question"});
  expect_parse_error("1 Mary went home.\n2 Where is Mary?\thome\t2\n", {"t.txt:2:", "supporting fact 2", "lines 1..1"});
  expect_parse_error("1 Mary went home.\n2 Where is Mary?\thome\t0\n", {"t.txt:2:", "supporting fact 0"});
  expect_parse_error("1 Mary went home.\n2 Where is Mary?\thome\tone\n", {"t.txt:2:", "\"one\" is not an integer"});
  expect_parse_error("1 Mary went home.\n2 Where is Mary? home 1\n", {"t.txt:2:", "question without an answer"});
  expect_parse_error("1 Mary went home.\n2 Where is Mary?\t\t1\n", {"t.txt:2:", "malformed answer"});
  expect_parse_error("1 Mary went home.\n2 Mary w\xc3\xa9nt home.\n", {"t.txt:2:", "0xc3", "column 9", "ASCII"});
  expect_parse_error("1 Mary went home.\n3 John went home.\n", {"t.txt:2:", "line ID 3", "previous ID 1"});
  expect_parse_error("2 Mary went home.\n", {"t.txt:1:", "line ID 2"});
}

TEST(DataBabi, AcceptsCrlfLineEnds) {
  const std::vector<BabiExample> ex = parse("1 Mary went home.\r\n2 Where is Mary?\thome\t1\r\n");
  ASSERT_EQ(ex.size(), 1u);
  EXPECT_EQ(ex[0].answer, (std::vector<std::string>{"home"}));
  EXPECT_EQ(ex[0].supporting, (std::vector<int>{0}));
}

TEST(DataBabi, VocabularyAndBatchesCountUnknownWords) {
  const std::vector<BabiExample> train = parse(kStory);
  const BabiVocabulary vocab = BabiVocabulary::build(train);
  EXPECT_EQ(vocab.word(BabiVocabulary::kNull), "<null>");
  EXPECT_EQ(vocab.word(BabiVocabulary::kUnknown), "<unk>");
  EXPECT_TRUE(vocab.contains("sandra"));
  EXPECT_FALSE(vocab.contains("."));
  EXPECT_EQ(vocab.id("bathroom"), vocab.id(vocab.word(vocab.id("bathroom"))));
  EXPECT_EQ(vocab.id("zebra"), BabiVocabulary::kUnknown);
  // Sorted, so ids do not depend on the order of the examples.
  std::vector<BabiExample> reversed(train.rbegin(), train.rend());
  const BabiVocabulary v2 = BabiVocabulary::build(reversed);
  ASSERT_EQ(v2.size(), vocab.size());
  for (int32_t i = 0; i < vocab.size(); ++i) EXPECT_EQ(v2.word(i), vocab.word(i));

  // A test story with unseen words ("zebra", "kitchen") and an unseen answer.
  const std::vector<BabiExample> test =
      parse("1 The zebra went to the kitchen.\n2 Mary went to the hallway.\n3 Where is the zebra?\tkitchen\t1\n");
  const BabiBatch b = make_babi_batch(std::span<const BabiExample>(test), vocab, 4, 7);
  EXPECT_EQ(b.memory.shape(), (Shape{1, 4, 7}));
  EXPECT_EQ(b.query.shape(), (Shape{1, 7}));
  EXPECT_EQ(b.answer.shape(), (Shape{1}));
  EXPECT_EQ(b.unknown_words, 3);  // zebra, kitchen in memory; zebra in the question
  EXPECT_EQ(b.unknown_answers, 1);
  EXPECT_EQ(b.answer.data<int32_t>()[0], BabiVocabulary::kUnknown);
  const int32_t* m = b.memory.data<int32_t>();
  EXPECT_EQ(m[0], vocab.id("the"));
  EXPECT_EQ(m[1], BabiVocabulary::kUnknown);
  EXPECT_EQ(m[6], BabiVocabulary::kNull);      // padding word
  EXPECT_EQ(m[7], vocab.id("mary"));           // second sentence, second slot
  for (int i = 14; i < 28; ++i) EXPECT_EQ(m[i], BabiVocabulary::kNull);  // unused slots
  EXPECT_EQ(b.story_sizes.data<int32_t>()[0], 2);
  EXPECT_EQ(b.memory_lengths.data<int32_t>()[0], 6);
  EXPECT_EQ(b.memory_lengths.data<int32_t>()[1], 5);
  EXPECT_EQ(b.memory_lengths.data<int32_t>()[2], 0);
  EXPECT_EQ(b.query_lengths.data<int32_t>()[0], 4);

  // Default width = longest sentence in the batch; a fixed width too small is an error.
  const BabiBatch d = make_babi_batch(std::span<const BabiExample>(train), vocab);
  EXPECT_EQ(d.memory.shape(), (Shape{3, kBabiMemoryLimit, 6}));
  EXPECT_EQ(d.unknown_words, 0);
  EXPECT_EQ(d.answer.data<int32_t>()[2], vocab.id("apple"));
  expect_error([&] { make_babi_batch(std::span<const BabiExample>(train), vocab, 50, 3); },
               {"line 3", "5 words", "sentence length 3"});
  expect_error([&] { make_babi_batch(std::span<const BabiExample>(train), vocab, 2, 0); },
               {"line 5", "3 memory sentences", "memory size 2"});
}

TEST(DataBabi, ValidationIsTheLast10PercentOfEachTask) {
  std::string text;
  for (int q = 0; q < 20; ++q) text += "1 Mary went home.\n2 Where is Mary?\thome\t1\n";
  std::vector<BabiExample> a = parse(text), b = parse(text);
  for (BabiExample& e : a) e.task = 1;
  for (BabiExample& e : b) e.task = 2;
  std::vector<BabiExample> joint = a;
  joint.insert(joint.end(), b.begin(), b.end());
  const BabiTrainValid s = split_babi_validation(joint);
  ASSERT_EQ(s.train.size(), 36u);
  ASSERT_EQ(s.valid.size(), 4u);
  EXPECT_EQ(s.train[17].task, 1);
  EXPECT_EQ(s.train[17].line, 36);
  EXPECT_EQ(s.train[18].task, 2);
  EXPECT_EQ(s.valid[0].task, 1);
  EXPECT_EQ(s.valid[0].line, 38);
  EXPECT_EQ(s.valid[3].task, 2);
  EXPECT_EQ(s.valid[3].line, 40);
}

class DataBabiFiles : public lowbit::testing::TempDirTest {
 protected:
  void write(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
  }
};

TEST_F(DataBabiFiles, FindsTaskFilesByNumberWithFallback) {
  write(dir_ / "k" / "qa1_single_train.txt", kStory);
  write(dir_ / "k" / "qa10_ten_train.txt", "1 A b.\n2 C?\tb\t1\n");
  write(dir_ / "one" / "qa3_three_train.txt", "1 A b.\n2 C?\tb\t1\n");
  const std::string k = (dir_ / "k").string(), one = (dir_ / "one").string();
  EXPECT_EQ(fs::path(find_babi_file(k, 1, BabiSplit::train)).filename(), "qa1_single_train.txt");
  EXPECT_EQ(fs::path(find_babi_file(k, 3, BabiSplit::train, one)).filename(), "qa3_three_train.txt");
  const std::vector<BabiExample> ex = load_babi_task(k, 10, BabiSplit::train);
  ASSERT_EQ(ex.size(), 1u);
  EXPECT_EQ(ex[0].task, 10);
  expect_error([&] { find_babi_file(k, 1, BabiSplit::test); }, {"qa1_*_test.txt", k});
  expect_error([&] { find_babi_file(k, 21, BabiSplit::test); }, {"task 21"});
  write(dir_ / "k" / "qa1_other_train.txt", kStory);
  expect_error([&] { find_babi_file(k, 1, BabiSplit::train); }, {"2 files match qa1_*_train.txt"});
  // Errors inside a file name the file.
  write(dir_ / "bad" / "qa2_two_test.txt", "1 A b.\n2 C?\n");
  expect_error([&] { load_babi_task((dir_ / "bad").string(), 2, BabiSplit::test); },
               {"qa2_two_test.txt:2:", "question without an answer"});
}

// The 1k English set, when the shared data folder sits next to the repository.
TEST(DataBabiReal, EveryEnglishTaskFileParses) {
  const fs::path dir = fs::path(LOWBIT_SOURCE_DIR) / ".." / "shared" / "data" / "babi" / "en";
  if (!fs::is_directory(dir)) GTEST_SKIP() << "bAbI en/ folder not found at " << dir.string();
  const auto t0 = std::chrono::steady_clock::now();
  for (int task = 1; task <= kBabiTasks; ++task)
    for (BabiSplit split : {BabiSplit::train, BabiSplit::test}) {
      const std::vector<BabiExample> ex = load_babi_task(dir.string(), task, split);
      EXPECT_EQ(ex.size(), 1000u) << "task " << task;
    }
  const std::vector<BabiExample> t1 = load_babi_task(dir.string(), 1, BabiSplit::train);
  std::vector<const void*> stories;
  for (const BabiExample& e : t1)
    if (stories.empty() || stories.back() != e.story.get()) stories.push_back(e.story.get());
  EXPECT_EQ(stories.size(), 200u);

  const std::vector<BabiExample> train = load_babi_joint(dir.string(), BabiSplit::train);
  const std::vector<BabiExample> test = load_babi_joint(dir.string(), BabiSplit::test);
  ASSERT_EQ(train.size(), 20000u);
  const BabiVocabulary vocab = BabiVocabulary::build(train);
  std::printf("bAbI en joint vocabulary: %lld entries (incl. <null>, <unk>)\n", static_cast<long long>(vocab.size()));
  EXPECT_GT(vocab.size(), 100);
  EXPECT_LT(vocab.size(), 250);
  const int64_t width = babi_max_sentence_length(train);
  std::printf("bAbI en longest training sentence: %lld words\n", static_cast<long long>(width));
  const BabiBatch b = make_babi_batch(std::span<const BabiExample>(test), vocab, kBabiMemoryLimit, width);
  EXPECT_EQ(b.memory.shape(), (Shape{20000, kBabiMemoryLimit, width}));
  std::printf("bAbI en test words unknown to training: %lld, answers: %lld\n", static_cast<long long>(b.unknown_words),
              static_cast<long long>(b.unknown_answers));
  int64_t dropped = 0;
  for (const BabiExample& e : train) dropped += e.support_dropped;
  std::printf("bAbI en training questions with a support fact outside 50 memories: %lld\n",
              static_cast<long long>(dropped));
  const BabiTrainValid s = split_babi_validation(train);
  EXPECT_EQ(s.train.size(), 18000u);
  EXPECT_EQ(s.valid.size(), 2000u);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(secs, 10.0);
}

}  // namespace
}  // namespace lowbit::data

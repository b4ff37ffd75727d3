// Generated bAbI-style task files for MemN2N tests: task-1-like stories ("X went to the Y.",
// "Where is X?"), so tests need no downloaded data.
#pragma once

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace lowbit::testing {

// Writes qa<task>_generated_{train,test}.txt with `train_q` and `test_q` questions into `dir`.
inline void write_generated_babi(const std::filesystem::path& dir, int task, int train_q, int test_q,
                                 unsigned seed) {
  const char* people[] = {"Mary", "John", "Sandra", "Daniel"};
  const char* places[] = {"kitchen", "garden", "office", "hallway", "bathroom", "bedroom"};
  const char* verbs[] = {"went to", "moved to", "journeyed to", "travelled to"};
  std::mt19937 rng(seed);
  auto write = [&](const std::string& split, int questions) {
    std::ofstream f(dir / ("qa" + std::to_string(task) + "_generated_" + split + ".txt"));
    int asked = 0;
    while (asked < questions) {
      int where[4] = {-1, -1, -1, -1};
      int line = 0;
      for (int q = 0; q < 5 && asked < questions; ++q) {
        for (int s = 0; s < 2; ++s) {
          const int p = static_cast<int>(rng() % 4), l = static_cast<int>(rng() % 6);
          where[p] = l;
          f << ++line << ' ' << people[p] << ' ' << verbs[rng() % 4] << " the " << places[l] << ".\n";
        }
        int p = static_cast<int>(rng() % 4);
        while (where[p] < 0) p = static_cast<int>(rng() % 4);
        f << ++line << " Where is " << people[p] << "? \t" << places[where[p]] << "\t1\n";
        ++asked;
      }
    }
  };
  write("train", train_q);
  write("test", test_q);
}

}  // namespace lowbit::testing

// A small persistent thread pool. parallel_for hands out equal contiguous chunks; workers
// spin briefly before sleeping so that back-to-back small calls (batch-1 recurrent steps)
// do not pay a wake-up each time.
#include "lowbit/core/threading.h"

#include <sched.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "lowbit/core/error.h"

namespace lowbit {
namespace {

thread_local bool t_inside_parallel = false;

int default_threads() {
  if (const char* env = std::getenv("LOWBIT_NUM_THREADS"); env != nullptr && *env != '\0') {
    char* end = nullptr;
    const long n = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && n >= 1 && n <= 1024) return static_cast<int>(n);
    fail("LOWBIT_NUM_THREADS='", env, "' is not a thread count between 1 and 1024");
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

class Pool {
 public:
  explicit Pool(int threads) { resize(threads); }
  ~Pool() { stop_workers(); }

  int threads() const { return threads_; }

  void resize(int threads) {
    std::lock_guard<std::mutex> call(call_mutex_);
    stop_workers();
    job_id_.store(0);
    threads_ = threads;
    stopping_ = false;
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
  }

  void run(int64_t begin, int64_t end, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    const int64_t n = end - begin;
    const int64_t max_chunks = (n + grain - 1) / grain;
    const int64_t chunks = std::min<int64_t>(threads_, max_chunks);
    if (chunks <= 1 || t_inside_parallel) {
      fn(begin, end);
      return;
    }
    std::lock_guard<std::mutex> call(call_mutex_);
    Job job{&fn, begin, n, chunks};
    job.remaining.store(chunks);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &job;
      job_id_.fetch_add(1);
    }
    cv_.notify_all();
    work(job);
    {
      // No worker may join once the job is withdrawn; then wait for those that joined.
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = nullptr;
    }
    while (job.remaining.load(std::memory_order_acquire) != 0 || job.active.load(std::memory_order_acquire) != 0)
      __builtin_ia32_pause();
    if (job.error) std::rethrow_exception(job.error);
  }

 private:
  struct Job {
    Job(const std::function<void(int64_t, int64_t)>* f, int64_t b, int64_t count, int64_t c)
        : fn(f), begin(b), n(count), chunks(c) {}
    const std::function<void(int64_t, int64_t)>* fn;
    int64_t begin, n, chunks;
    std::atomic<int64_t> next{0};
    std::atomic<int64_t> remaining{0};
    std::atomic<int> active{0};
    std::mutex error_mutex;
    std::exception_ptr error;
  };

  static void work(Job& job) {
    t_inside_parallel = true;
    for (;;) {
      const int64_t c = job.next.fetch_add(1);
      if (c >= job.chunks) break;
      const int64_t lo = job.begin + job.n * c / job.chunks, hi = job.begin + job.n * (c + 1) / job.chunks;
      try {
        (*job.fn)(lo, hi);
      } catch (...) {
        std::lock_guard<std::mutex> lock(job.error_mutex);
        if (!job.error) job.error = std::current_exception();
      }
      job.remaining.fetch_sub(1, std::memory_order_release);
    }
    t_inside_parallel = false;
  }

  void worker_loop() {
    uint64_t seen = job_id_.load();
    for (;;) {
      // Spin a little for the next job, then sleep.
      for (int i = 0; i < 20000 && job_id_.load(std::memory_order_acquire) == seen && !stopping_; ++i)
        __builtin_ia32_pause();
      Job* job = nullptr;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return stopping_ || job_id_.load() != seen; });
        if (stopping_) return;
        seen = job_id_.load();
        job = job_;
        if (job != nullptr) job->active.fetch_add(1);
      }
      if (job != nullptr) {
        work(*job);
        job->active.fetch_sub(1, std::memory_order_release);
      }
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  int threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex call_mutex_, mutex_;
  std::condition_variable cv_;
  std::atomic<uint64_t> job_id_{0};
  std::atomic<bool> stopping_{false};
  Job* job_ = nullptr;
};

Pool& pool() {
  static Pool p(default_threads());
  return p;
}

}  // namespace

int num_threads() { return pool().threads(); }

void set_num_threads(int n) {
  LOWBIT_CHECK(n >= 1 && n <= 1024, "thread count ", n, " is out of range (expected 1..1024)");
  if (n != pool().threads()) pool().resize(n);
}

void parallel_for(int64_t begin, int64_t end, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (end <= begin) return;
  pool().run(begin, end, std::max<int64_t>(grain, 1), fn);
}

}  // namespace lowbit

// Threading: one process-wide pool of worker threads.
//
// The thread count defaults to LOWBIT_NUM_THREADS if set, else the number of CPUs the
// process may run on. parallel_for splits [begin, end) into chunks of at least `grain` and
// runs fn(chunk_begin, chunk_end) on the calling thread and the workers; it returns when all
// chunks are done and rethrows the first exception a chunk threw. Nested calls run serially.
#pragma once

#include <cstdint>
#include <functional>

namespace lowbit {

int num_threads();
// n >= 1; throws lowbit::Error otherwise.
void set_num_threads(int n);
void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn);

}  // namespace lowbit

// AllocatorTrimmer: gives the C allocator's free pages back to the system
// every few seconds (glibc malloc_trim), so the resident size follows the
// memory in use.
//
// Why: requests of every size (1 to max_batch_size rows) allocated and freed
// on many gRPC threads leave glibc's per-thread arenas with free holes it
// keeps; under a steady load the resident size then rises for minutes while
// the memory in use stays flat (measured by bench/soak.sh: in use 18.8 →
// 18.5 → 19.1 MB, arenas 34.6 → 39.2 MB, resident +5 % over a minute). An
// operator cannot tell that from a leak. malloc_trim(0) walks the arenas and
// madvise()s their free pages away; it holds each arena's lock for that walk
// (well under a millisecond here), once per period.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace selu {

// Keeps glibc's mmap threshold at its initial 128 KiB, unless the operator set
// it (MALLOC_MMAP_THRESHOLD_ or GLIBC_TUNABLES glibc.malloc.mmap_threshold).
// Returns whether it set it. Call before any thread exists.
//
// Why: glibc raises the threshold to the size of every mmap()ed block freed
// (up to 32 MiB), so after the first model load frees its file buffer
// (digits_snn: 620 KB) every later reload puts its file and weight buffers in
// the heap arenas, and freeing them leaves holes the requests' small blocks
// then pin. Measured with bench/soak.sh (a reload every 15 s, 150 s): the
// arenas' free bytes rose 5 → 19 MB and RSS kept creeping after the warm-up;
// with the threshold kept, 4–6 → 13–14 MB and RSS flat after ~30 s (two
// runs). Blocks below 128 KiB (a request of 512 rows of 64 features) come
// from the arenas either way; larger ones are mapped and unmapped each time,
// as on a fresh process.
bool KeepMmapThreshold();

class AllocatorTrimmer {
 public:
  // Trims every `period` until destroyed; period must be positive.
  explicit AllocatorTrimmer(std::chrono::milliseconds period);
  ~AllocatorTrimmer();
  AllocatorTrimmer(const AllocatorTrimmer&) = delete;
  AllocatorTrimmer& operator=(const AllocatorTrimmer&) = delete;

 private:
  void Loop();

  const std::chrono::milliseconds period_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace selu

#include "server/allocator_trim.h"

#include <malloc.h>

#include <cstdlib>
#include <cstring>

namespace selu {

bool KeepMmapThreshold() {
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") != nullptr) return false;
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables != nullptr && std::strstr(tunables, "glibc.malloc.mmap_threshold") != nullptr)
    return false;
  return mallopt(M_MMAP_THRESHOLD, 128 << 10) == 1;
}

AllocatorTrimmer::AllocatorTrimmer(std::chrono::milliseconds period)
    : period_(period), thread_([this] { Loop(); }) {}

AllocatorTrimmer::~AllocatorTrimmer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void AllocatorTrimmer::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!wake_.wait_for(lock, period_, [this] { return stop_; })) {
    lock.unlock();
    malloc_trim(0);
    lock.lock();
  }
}

}  // namespace selu

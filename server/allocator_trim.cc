#include "server/allocator_trim.h"

#include <malloc.h>

namespace selu {

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

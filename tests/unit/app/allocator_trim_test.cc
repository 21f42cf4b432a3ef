// KeepMmapThreshold: after it, a large block freed does not pull the next
// large block of the same size into the heap arenas (glibc's dynamic
// threshold would), and an operator's own setting is left alone.
#include "server/allocator_trim.h"

#include <gtest/gtest.h>
#include <malloc.h>

#include <cstdlib>
#include <cstring>

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitizerAllocator = true;  // its malloc ignores mallopt()
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitizerAllocator = true;
#else
constexpr bool kSanitizerAllocator = false;
#endif
#else
constexpr bool kSanitizerAllocator = false;
#endif

// Blocks glibc serves with mmap() right now.
size_t MappedBlocks() { return mallinfo2().hblks; }

TEST(KeepMmapThresholdTest, LeavesAnOperatorsSettingAlone) {
  ASSERT_EQ(setenv("MALLOC_MMAP_THRESHOLD_", "65536", 1), 0);
  EXPECT_FALSE(selu::KeepMmapThreshold());
  ASSERT_EQ(unsetenv("MALLOC_MMAP_THRESHOLD_"), 0);
  ASSERT_EQ(setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=65536", 1), 0);
  EXPECT_FALSE(selu::KeepMmapThreshold());
  ASSERT_EQ(unsetenv("GLIBC_TUNABLES"), 0);
}

TEST(KeepMmapThresholdTest, ALargeBlockFreedKeepsTheNextOneMapped) {
  if (kSanitizerAllocator) GTEST_SKIP() << "the sanitizer's allocator ignores mallopt()";
  ASSERT_EQ(unsetenv("MALLOC_MMAP_THRESHOLD_"), 0);
  ASSERT_EQ(unsetenv("GLIBC_TUNABLES"), 0);
  ASSERT_TRUE(selu::KeepMmapThreshold());
  constexpr size_t kBytes = 620 << 10;  // digits_snn's model file
  for (int round = 0; round < 3; ++round) {
    const size_t before = MappedBlocks();
    void* block = std::malloc(kBytes);
    ASSERT_NE(block, nullptr);
    std::memset(block, 1, kBytes);
    // Without the fixed threshold the second round's block comes from the
    // heap: freeing the first raised the threshold above its size.
    EXPECT_EQ(MappedBlocks(), before + 1) << "round " << round;
    std::free(block);
    EXPECT_EQ(MappedBlocks(), before) << "round " << round;
  }
}

}  // namespace

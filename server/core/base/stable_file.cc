#include "server/core/base/stable_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace selu::core {

StatusOr<std::string> ReadStableFile(const std::string& path, int64_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NotFoundError("cannot open '" + path + "': " + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat before {};
  if (::fstat(fd, &before) != 0) {
    return FailedPreconditionError("cannot stat '" + path + "': " + std::strerror(errno));
  }
  if (!S_ISREG(before.st_mode)) return FailedPreconditionError("'" + path + "' is not a file");
  if (before.st_size > max_bytes) {
    return ResourceExhaustedError("'" + path + "' is " + std::to_string(before.st_size) +
                                  " bytes, over the limit of " + std::to_string(max_bytes));
  }
  std::string bytes(static_cast<size_t>(before.st_size), '\0');
  size_t done = 0;
  char probe = 0;
  while (true) {
    // One byte past the size seen at open tells a file that grew.
    char* dst = done < bytes.size() ? bytes.data() + done : &probe;
    const size_t want = done < bytes.size() ? bytes.size() - done : 1;
    const ssize_t n = ::read(fd, dst, want);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return FailedPreconditionError("cannot read '" + path + "': " + std::strerror(errno));
    if (n == 0) break;
    done += static_cast<size_t>(n);
    if (done > bytes.size()) break;
  }
  struct stat after {};
  const bool stable = ::fstat(fd, &after) == 0 && done == bytes.size() &&
                      after.st_size == before.st_size && after.st_ino == before.st_ino &&
                      after.st_mtim.tv_sec == before.st_mtim.tv_sec &&
                      after.st_mtim.tv_nsec == before.st_mtim.tv_nsec;
  if (!stable) {
    return FailedPreconditionError("'" + path +
                                   "' changed while being read (write model files elsewhere and "
                                   "rename them into place)");
  }
  return bytes;
}

}  // namespace selu::core

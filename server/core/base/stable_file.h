// Reading a file that another process may be replacing (model and config
// files under a watched repository).
//
// Thread safety: a stateless function, safe from any thread.
#pragma once

#include <cstdint>
#include <string>

#include "server/core/base/status.h"

namespace selu::core {

// Reads a whole file through one descriptor. FAILED_PRECONDITION if it
// changes (size, mtime or inode) while being read, RESOURCE_EXHAUSTED above
// `max_bytes`, NOT_FOUND if it cannot be opened.
StatusOr<std::string> ReadStableFile(const std::string& path, int64_t max_bytes);

}  // namespace selu::core

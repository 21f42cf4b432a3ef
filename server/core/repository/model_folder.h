// A model folder of a repository as it is on disk, read without loading
// anything: its configuration (config.pbtxt, or a load request's
// replacement) and its version folders, with what tells that they changed.
// Also the rules for names: model names are plain folder names, versions
// positive integers, and nothing may resolve outside the repository.
//
// Thread safety: stateless functions, safe from any thread.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/model_config.pb.h"
#include "server/core/base/stable_file.h"
#include "server/core/base/status.h"
#include "server/core/model/model_config.h"

namespace selu::core {

// A positive decimal integer without sign or leading zeros, or nothing.
std::optional<int64_t> ParseModelVersion(std::string_view text);

// OK for a plain folder name (no '/', '\\', NUL, not "." or "..", not
// hidden); INVALID_ARGUMENT saying why not otherwise.
Status CheckModelName(std::string_view name);

// The model folders under `root` (valid names, folders or symlinks to
// folders), sorted.
std::vector<std::string> ModelFolderNames(const std::string& root);

// What tells that a file changed: inode, size and modification time.
struct FileStamp {
  uint64_t inode = 0;
  int64_t size = -1;
  int64_t mtime_ns = 0;
  bool operator==(const FileStamp&) const = default;
  static FileStamp Of(const struct stat& st);
  std::string Key() const;  // for fingerprints
};

// Deterministic bytes of a config, to tell whether it changed.
std::string ConfigKey(const inference::ModelConfig& config);

struct DiskVersion {
  int64_t version = 0;
  std::string file;  // <root>/<model>/<version>/<model file>
  FileStamp stamp;
  // Of <version>/reference_stats.json (the monitor's reference; size -1 when
  // there is none): a new or changed reference reloads the version too.
  FileStamp reference_stamp;
  Status problem;  // the file resolves outside the repository, or is missing
  // The version folder has no model file (or not a regular one): Reconcile
  // ignores such a folder unless its version serves, which then keeps serving.
  bool missing = false;
};

// A model folder as found on disk.
struct ModelFolder {
  Status folder_status;  // not OK: the folder resolves outside the repository
  Status config_status;  // not OK: no usable configuration (folder or config.pbtxt)
  inference::ModelConfig config;
  bool have_config = false;
  ModelConfigSettings settings;
  std::vector<std::string> warnings;  // unused Triton fields, ...
  std::vector<DiskVersion> versions;  // newest first
  // Stamps of the outputs' label files (output[].label_filename): a new or
  // changed label file reloads every version, as a changed config does.
  std::string label_stamps;
  std::string fingerprint;  // changes when any of the above may have
};

// Reads <root>/<name>. `canonical_root` is the root after symlinks;
// `override_config` (may be null) replaces config.pbtxt. The config file is
// stamped before it is read, so a file replaced in between is read again at
// the next scan rather than missed.
ModelFolder ReadModelFolder(const std::string& root, const std::string& canonical_root,
                            const std::string& name, const inference::ModelConfig* override_config);

}  // namespace selu::core

#include "server/core/repository/model_folder.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "server/core/base/client_text.h"
#include "server/core/monitor/reference_stats.h"

namespace selu::core {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kMaxConfigBytes = 1 << 20;

// `path` after symlinks, if it stays inside `canonical_root`.
Status CheckInside(const std::string& canonical_root, const fs::path& path) {
  std::error_code ec;
  const fs::path resolved = fs::canonical(path, ec);
  if (ec) return NotFoundError("cannot resolve '" + path.string() + "': " + ec.message());
  const fs::path relative = resolved.lexically_relative(canonical_root);
  if (relative.empty() || *relative.begin() == "..") {
    return FailedPreconditionError("'" + path.string() + "' resolves to '" + resolved.string() +
                                   "', outside the model repository '" + canonical_root + "'");
  }
  return OkStatus();
}

}  // namespace

// A positive decimal integer without sign or leading zeros, or nothing.
std::optional<int64_t> ParseModelVersion(std::string_view text) {
  if (text.empty() || text.size() > 18 || text[0] == '0') return std::nullopt;
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value <= 0) return std::nullopt;
  return value;
}

// Model names come from rpcs and folder names: one plain path component.
Status CheckModelName(std::string_view name) {
  if (name.empty()) return InvalidArgumentError("model name is empty");
  const bool plain = name.size() <= 255 && name != "." && name != ".." && name[0] != '.' &&
                     name.find_first_of(std::string_view("/\\\0", 3)) == std::string_view::npos;
  if (!plain) {
    return InvalidArgumentError("model name '" + QuoteClientText(name) +
                                "' is not a plain folder name of the model repository");
  }
  return OkStatus();
}

std::vector<std::string> ModelFolderNames(const std::string& root) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    std::string name = entry.path().filename().string();
    if (CheckModelName(name).ok() && entry.is_directory(ec)) names.push_back(std::move(name));
  }
  std::sort(names.begin(), names.end());
  return names;
}

FileStamp FileStamp::Of(const struct stat& st) {
  return FileStamp{static_cast<uint64_t>(st.st_ino), static_cast<int64_t>(st.st_size),
                   int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec};
}

std::string FileStamp::Key() const {
  return std::to_string(inode) + ":" + std::to_string(size) + ":" + std::to_string(mtime_ns);
}

// Deterministic bytes of a config, to tell whether it changed.
std::string ConfigKey(const inference::ModelConfig& config) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    config.SerializeToCodedStream(&coded);
  }
  return out;
}

namespace {

// config.pbtxt of `dir`, if there is one: its config, or why it is unusable.
// Stamped before it is read, so a file replaced in between is read again at
// the next scan rather than missed.
Status ReadConfigFile(const std::string& canonical_root, const fs::path& path, ModelFolder* f,
                      FileStamp* stamp) {
  SELU_RETURN_IF_ERROR(CheckInside(canonical_root, path));
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) *stamp = FileStamp::Of(st);
  auto text = ReadStableFile(path.string(), kMaxConfigBytes);
  if (!text.ok()) return text.status();
  auto parsed = ParseModelConfigText(*text, path.string(), &f->warnings);
  if (!parsed.ok()) return parsed.status();
  f->config = std::move(parsed).value();
  f->have_config = true;
  return OkStatus();
}

}  // namespace

ModelFolder ReadModelFolder(const std::string& root, const std::string& canonical_root,
                            const std::string& name,
                            const inference::ModelConfig* override_config) {
  const fs::path dir = fs::path(root) / name;
  const fs::path config_path = dir / "config.pbtxt";
  std::error_code ec;
  ModelFolder f;
  FileStamp config_stamp;
  // The configuration: the rpc's override, config.pbtxt, or none.
  f.folder_status = CheckInside(canonical_root, dir);
  f.config_status = f.folder_status;
  if (f.config_status.ok() && override_config != nullptr) {
    f.config = *override_config;
    f.have_config = true;
  } else if (f.config_status.ok()) {
    // A config.pbtxt that cannot be checked for (say, a folder without read
    // permission) is an error, not an absent file.
    const bool exists = fs::exists(config_path, ec);
    if (ec) {
      f.config_status =
          FailedPreconditionError("cannot read '" + config_path.string() + "': " + ec.message());
    } else if (exists) {
      f.config_status = ReadConfigFile(canonical_root, config_path, &f, &config_stamp);
    }
  }
  if (f.config_status.ok()) {
    auto settings = ReadModelConfigSettings(f.config, name, &f.warnings);
    if (settings.ok()) {
      f.settings = std::move(settings).value();
    } else {
      f.config_status = settings.status().WithPrefix(
          override_config != nullptr ? "the load request's 'config'" : config_path.string());
    }
  }

  if (f.config_status.ok()) {
    for (const inference::ModelOutput& output : f.config.output()) {
      if (output.label_filename().empty()) continue;
      struct stat st {};
      FileStamp stamp;
      if (::stat((dir / output.label_filename()).c_str(), &st) == 0) stamp = FileStamp::Of(st);
      f.label_stamps += "|" + output.name() + "@" + stamp.Key();
    }
  }

  // The versions on disk, newest first. A folder that cannot be listed is an
  // error (what serves stays), not a folder without versions.
  fs::directory_iterator it(dir, ec);
  if (ec && f.folder_status.ok()) {
    f.folder_status = FailedPreconditionError("cannot read the model folder '" + dir.string() +
                                              "': " + ec.message());
    f.config_status = f.folder_status;
  }
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const fs::directory_entry& v = *it;
    std::error_code entry_ec;
    const auto version = ParseModelVersion(v.path().filename().string());
    if (!version || !v.is_directory(entry_ec)) continue;
    const fs::path file = v.path() / f.settings.model_filename;
    struct stat st {};
    DiskVersion d{*version, file.string(), {}, {}, OkStatus()};
    const bool found = ::stat(file.c_str(), &st) == 0;
    if (!found || !S_ISREG(st.st_mode)) {
      // Listed with the problem, so that a serving version whose file was
      // deleted keeps serving (Reconcile drops such folders otherwise).
      d.missing = true;
      d.problem = NotFoundError("cannot read '" + file.string() +
                                "': " + (found ? "not a regular file" : std::strerror(errno)));
      f.versions.push_back(std::move(d));
      continue;
    }
    d.stamp = FileStamp::Of(st);
    d.problem = CheckInside(canonical_root, file);
    struct stat ref {};
    if (::stat((v.path() / kReferenceStatsFile).c_str(), &ref) == 0) {
      d.reference_stamp = FileStamp::Of(ref);
    }
    f.versions.push_back(std::move(d));
  }
  std::sort(f.versions.begin(), f.versions.end(),
            [](const DiskVersion& a, const DiskVersion& b) { return a.version > b.version; });

  f.fingerprint = f.config_status.ok() ? "ok" : f.config_status.message();
  if (override_config != nullptr) f.fingerprint += ConfigKey(*override_config);
  f.fingerprint += "|" + config_stamp.Key() + f.label_stamps;
  for (const DiskVersion& d : f.versions) {
    f.fingerprint +=
        "|" + std::to_string(d.version) + "@" + d.stamp.Key() + "+" + d.reference_stamp.Key();
  }
  return f;
}

}  // namespace selu::core

#include "server/calibrate_command.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <string_view>

#include "server/core/base/stable_file.h"
#include "server/core/engine/mlp_engine.h"
#include "server/core/model/onnx_model_loader.h"
#include "server/core/monitor/calibration.h"
#include "server/core/monitor/reference_stats.h"
#include "server/core/serving/servable_model.h"

namespace selu {
namespace {

namespace fs = std::filesystem;
using core::Status;
using core::StatusOr;

constexpr int64_t kDefaultBatchRows = 256;

struct CalibrateOptions {
  std::string model;
  std::string data;
  std::string output;  // empty: reference_stats.json beside the model
  int64_t batch_rows = kDefaultBatchRows;
};

// Writes all of `text`; 0 or the errno of the failure.
int WriteAll(int fd, std::string_view text) {
  for (size_t done = 0; done < text.size();) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    done += static_cast<size_t>(n);
  }
  return 0;
}

// Replaces `path` by `text` in one rename: a reader sees the old file or the
// new one, never a part.
Status WriteFileAtomically(const std::string& path, std::string_view text) {
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::string tmp = (dir / ("." + target.filename().string() + ".tmp-XXXXXX")).string();
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) {
    return core::FailedPreconditionError("cannot create a file in '" + dir.string() +
                                         "': " + std::strerror(errno));
  }
  // mkstemp makes the file 0600; the server may run as another user.
  const mode_t mask = ::umask(0);
  ::umask(mask);
  int err = ::fchmod(fd, 0666 & ~mask) == 0 ? 0 : errno;
  if (err == 0) err = WriteAll(fd, text);
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err == 0 && ::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err != 0) {
    ::unlink(tmp.c_str());
    return core::FailedPreconditionError("cannot write '" + path + "': " + std::strerror(err));
  }
  // The rename itself survives a crash once the folder is synced.
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return core::OkStatus();
}

std::string OutputPath(const CalibrateOptions& o) {
  if (o.output.empty()) {
    return (fs::path(o.model).parent_path() / core::kReferenceStatsFile).string();
  }
  std::error_code ec;
  if (fs::is_directory(o.output, ec))
    return (fs::path(o.output) / core::kReferenceStatsFile).string();
  return o.output;
}

// Whether the server will read `output` as the reference of `model`.
bool IsServedReference(const std::string& model, const std::string& output) {
  std::error_code ec;
  const fs::path want =
      fs::weakly_canonical(fs::path(model).parent_path() / core::kReferenceStatsFile, ec);
  return !ec && fs::weakly_canonical(output, ec) == want && !ec;
}

std::string TensorLine(const std::string& tensor, const std::string& activation, int64_t width,
                       const core::TensorStats& s, const std::string& name) {
  char line[160];
  std::snprintf(line, sizeof(line), "  %-8s %-10s %6lld  mean %+.4f  variance %.4f", tensor.c_str(),
                activation.c_str(), static_cast<long long>(width), s.mean, s.variance);
  return std::string(line) + (name.empty() ? "" : "  '" + name + "'") + "\n";
}

// "features 0-3 input 'a' [-1,4], features 4-11 input 'b' [-1,2,4]": where
// each input's features sit in a row of the data file.
std::string InputLayout(const core::ModelSpec& spec) {
  std::string s = "each row holds the model's inputs one after another:";
  for (size_t i = 0; i < spec.inputs.size(); ++i) {
    const core::TensorPort& p = spec.inputs[i];
    s += std::string(i ? "," : "") + " features " + std::to_string(p.offset) + "-" +
         std::to_string(p.offset + p.features - 1) + " input '" + p.name + "' [";
    for (size_t d = 0; d < p.shape.size(); ++d) s += (d ? "," : "") + std::to_string(p.shape[d]);
    s += "]";
  }
  return s;
}

std::string InputNames(const core::ModelSpec& spec) {
  std::string s;
  for (const core::TensorPort& p : spec.inputs) s += (s.empty() ? "" : "+") + p.name;
  return s.empty() ? spec.input_name : s;
}

std::string Summary(const CalibrateOptions& o, const core::FeatureRows& data,
                    const core::ReferenceStats& ref, const core::ModelSpec& spec,
                    const std::string& output) {
  std::string s = "calibrated '" + o.model + "' on " + std::to_string(data.rows) + " rows of '" +
                  o.data + "'" + (data.has_header ? " (header skipped)" : "") + "\n";
  s += TensorLine("input", "", ref.input->features, *ref.input, InputNames(spec));
  for (const core::LayerReference& l : ref.layers) {
    s += TensorLine("layer " + std::to_string(l.index), l.activation, l.stats.features, l.stats,
                    l.name);
  }
  s += "wrote " + output + "\n";
  if (!IsServedReference(o.model, output)) {
    s += "note: the server reads a model's reference from '" +
         (fs::path(o.model).parent_path() / core::kReferenceStatsFile).string() +
         "'; move the file there to use it\n";
  } else if (spec.metadata.count(core::kReferenceStatsMetadataKey) != 0) {
    s += std::string("note: it takes precedence over the model's metadata_props ") +
         core::kReferenceStatsMetadataKey + "\n";
  }
  return s;
}

// Loads the model as ServableModel::Load does, calibrates, writes; returns
// the summary to print.
StatusOr<std::string> Calibrate(const CalibrateOptions& o) {
  const core::ModelServingOptions serving;
  auto bytes = core::ReadStableFile(o.model, serving.loader.max_file_bytes);
  if (!bytes.ok()) return bytes.status();
  auto spec = core::LoadOnnxModelFromBytes(*bytes, serving.loader);
  if (!spec.ok()) return spec.status().WithPrefix(o.model);
  bytes->clear();
  bytes->shrink_to_fit();
  SELU_RETURN_IF_ERROR(core::CompleteModelSpec(*spec).WithPrefix(o.model));
  core::MlpEngineOptions engine_options = serving.engine;
  engine_options.max_rows = std::max(engine_options.max_rows, o.batch_rows);
  auto engine = core::MlpEngine::Create(std::move(spec).value(), engine_options);
  if (!engine.ok()) return engine.status().WithPrefix(o.model);
  const core::MlpEngine& e = **engine;

  // A model with several inputs takes packed rows: each CSV row holds every
  // input's features one after another, in the model's input order.
  auto data = core::ReadFeatureCsv(o.data, e.input_features());
  if (!data.ok() && e.spec().inputs.size() > 1) {
    return Status(data.status().code(),
                  data.status().message() + " (" + InputLayout(e.spec()) + ")");
  }
  if (!data.ok()) return data.status();
  auto ref = core::Calibrate(e, data->values.data(), data->rows, o.batch_rows);
  if (!ref.ok()) return ref.status().WithPrefix(o.data);
  const std::string json = core::ReferenceStatsToJson(*ref) + "\n";
  // What the server will check when it loads the file.
  if (auto parsed = core::ParseReferenceStats(json, e.spec()); !parsed.ok()) {
    return core::InternalError("the statistics computed do not pass the server's check: " +
                               parsed.status().message());
  }
  const std::string output = OutputPath(o);
  SELU_RETURN_IF_ERROR(WriteFileAtomically(output, json));
  return Summary(o, *data, *ref, e.spec(), output);
}

}  // namespace

int RunCalibrate(int argc, char** argv) {
  CLI::App app{
      "selu-serve calibrate: computes a model's reference statistics (mean and variance per unit\n"
      "of its input and of every dense layer's output) from your data, through the engine the\n"
      "server runs, and writes them as reference_stats.json beside the model, where the drift\n"
      "monitor reads them (before the model's metadata_props selu.reference_stats). The model\n"
      "file is not changed.",
      "selu-serve calibrate"};
  app.option_defaults()->always_capture_default();
  app.get_formatter()->column_width(34);
  CalibrateOptions o;
  app.add_option("--model", o.model, "The model: <repository>/<model>/<version>/model.onnx")
      ->required();
  app.add_option("--data", o.data,
                 "CSV of samples the model is known to work on: one row per sample, one number "
                 "per input feature, comma-separated; an optional header row. A model with "
                 "several inputs takes every input's features one after another, in the order "
                 "ModelMetadata lists the inputs")
      ->required();
  app.add_option("--output", o.output,
                 "Where to write the statistics (a folder: reference_stats.json in it) "
                 "[default: reference_stats.json beside --model]");
  app.add_option("--batch-rows", o.batch_rows, "Rows per engine call")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 16));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    std::cerr << "selu-serve calibrate: " << e.what()
              << "\nRun 'selu-serve calibrate --help' for the options.\n";
    return 2;
  }
  auto summary = Calibrate(o);
  if (!summary.ok()) {
    std::cerr << "selu-serve calibrate: " << summary.status().message() << "\n";
    return 1;
  }
  std::cout << *summary << std::flush;
  return 0;
}

}  // namespace selu

#include "server/core/model/classification.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <system_error>

#include "server/core/base/client_text.h"
#include "server/core/base/stable_file.h"

namespace selu::core {

namespace fs = std::filesystem;

namespace {

const std::vector<std::string>& NoLabels() {
  static const std::vector<std::string> none;
  return none;
}

// The label file at `path` after symlinks, if it stays inside `model_dir`.
Status CheckInsideModelFolder(const fs::path& path, const std::string& model_dir) {
  std::error_code ec;
  const fs::path resolved = fs::canonical(path, ec);
  if (ec) return NotFoundError("cannot open '" + path.string() + "': " + ec.message());
  const fs::path root = fs::canonical(model_dir, ec);
  if (ec) return NotFoundError("cannot resolve '" + model_dir + "': " + ec.message());
  const fs::path relative = resolved.lexically_relative(root);
  if (relative.empty() || *relative.begin() == "..") {
    return FailedPreconditionError("'" + path.string() + "' resolves to '" + resolved.string() +
                                   "', outside the model folder '" + root.string() + "'");
  }
  return OkStatus();
}

}  // namespace

std::vector<std::string> ParseLabelLines(std::string_view text) {
  std::vector<std::string> lines;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.emplace_back(line);
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return lines;
}

StatusOr<ClassLabels> ClassLabels::Load(const inference::ModelConfig& config,
                                        const std::string& model_dir, const ModelSpec& spec) {
  ClassLabels labels;
  for (int i = 0; i < config.output_size(); ++i) {
    const inference::ModelOutput& output = config.output(i);
    if (output.label_filename().empty()) continue;
    size_t port = 0;
    while (port < spec.outputs.size() && spec.outputs[port].name != output.name()) ++port;
    if (port == spec.outputs.size()) {
      return InvalidArgumentError("output[" + std::to_string(i) + "] '" +
                                  QuoteClientText(output.name()) +
                                  "' with a label_filename is not an output of the model");
    }
    const fs::path path = fs::path(model_dir) / output.label_filename();
    const std::string where = "the label file of output '" + QuoteClientText(output.name()) +
                              "' (output[" + std::to_string(i) + "].label_filename '" +
                              QuoteClientText(output.label_filename()) + "')";
    SELU_RETURN_IF_ERROR(CheckInsideModelFolder(path, model_dir).WithPrefix(where));
    auto text = ReadStableFile(path.string(), kMaxLabelFileBytes);
    if (!text.ok()) return text.status().WithPrefix(where);
    if (labels.by_port_.empty()) labels.by_port_.resize(spec.outputs.size());
    labels.by_port_[port] = ParseLabelLines(*text);
  }
  return labels;
}

const std::vector<std::string>& ClassLabels::Of(size_t port) const {
  return port < by_port_.size() ? by_port_[port] : NoLabels();
}

std::string_view ClassLabels::Label(size_t port, int64_t index) const {
  const std::vector<std::string>& labels = Of(port);
  if (index < 0 || static_cast<size_t>(index) >= labels.size()) return {};
  return labels[static_cast<size_t>(index)];
}

void TopClasses(const float* scores, int64_t n, int64_t k, std::vector<int64_t>* top) {
  k = std::clamp<int64_t>(k, 0, std::max<int64_t>(n, 0));
  top->resize(static_cast<size_t>(std::max<int64_t>(n, 0)));
  for (int64_t i = 0; i < n; ++i) (*top)[static_cast<size_t>(i)] = i;
  // A strict weak order even with NaN (std::partial_sort needs one).
  auto better = [scores](int64_t a, int64_t b) {
    const float sa = scores[a];
    const float sb = scores[b];
    const bool na = std::isnan(sa);
    const bool nb = std::isnan(sb);
    if (na != nb) return nb;
    if (!na && sa != sb) return sa > sb;
    return a < b;
  };
  std::partial_sort(top->begin(), top->begin() + k, top->end(), better);
  top->resize(static_cast<size_t>(k));
}

void AppendClassString(float score, int64_t index, std::string_view label, std::string* out) {
  // std::to_string(float) is printf's "%f" of the value as a double; the
  // widest finite float takes 47 characters, an int64 index 20 more.
  char buffer[96];
  const int n = std::snprintf(buffer, sizeof buffer, "%f:%lld", static_cast<double>(score),
                              static_cast<long long>(index));
  out->append(buffer, static_cast<size_t>(std::clamp(n, 0, static_cast<int>(sizeof buffer) - 1)));
  if (!label.empty()) {
    out->push_back(':');
    out->append(label);
  }
}

}  // namespace selu::core

// Triton's classification extension, without the transport: the class labels
// of a model's outputs (config.pbtxt output[].label_filename) and the top-k
// strings a classification output answers with.
//
// A requested output with parameter `classification: k` answers, per row,
// the k highest of that output's scores (its features, flattened over the
// non-batch dims), best first, each as "<score>:<index>" or
// "<score>:<index>:<label>", formatted as Triton's server does
// (triton-inference-server/server src/classification.cc): the score as
// std::to_string(float) prints it (printf "%f": six decimals, "0.982310"),
// the flat class index, and the label on line `index` of the output's label
// file when there is one and it is not empty (Triton's LabelProvider gives
// no label then). A k larger than the number of classes gives every class.
// Ties: lower index first (Triton's std::sort leaves their order
// unspecified); NaN ranks below every number.
//
// Thread safety: a ClassLabels is immutable once loaded; the functions are
// stateless.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proto/model_config.pb.h"
#include "server/core/base/status.h"
#include "server/core/model/model_spec.h"

namespace selu::core {

// Largest label file read (a label per class; 16 MiB is ample).
inline constexpr int64_t kMaxLabelFileBytes = 16 << 20;

// The labels of a model version's outputs, by output port.
class ClassLabels {
 public:
  ClassLabels() = default;  // no labels
  // by_port[i]: the labels of spec.outputs[i] (may be shorter than outputs).
  explicit ClassLabels(std::vector<std::vector<std::string>> by_port)
      : by_port_(std::move(by_port)) {}

  // Reads the label file of every output `config` lists with a
  // label_filename: a path relative to `model_dir` (the model's folder, as
  // Triton), one label per line ('\n' or "\r\n" ends a line; the last line
  // needs no end). Outputs are matched to spec.outputs by name (the config
  // has been checked against `spec`). Errors, each naming the output and the
  // file: NOT_FOUND (cannot be opened), FAILED_PRECONDITION (not a file,
  // unreadable, changed while read, or resolves outside `model_dir`),
  // RESOURCE_EXHAUSTED (over kMaxLabelFileBytes).
  static StatusOr<ClassLabels> Load(const inference::ModelConfig& config,
                                    const std::string& model_dir, const ModelSpec& spec);

  // The labels of output port `port` (index into spec.outputs); empty when
  // it has none.
  const std::vector<std::string>& Of(size_t port) const;
  // The label of class `index` of output port `port`; "" when it has none.
  std::string_view Label(size_t port, int64_t index) const;
  bool empty() const { return by_port_.empty(); }

 private:
  std::vector<std::vector<std::string>> by_port_;  // empty: no output has labels
};

// The lines of a label file: '\n' ends a line, a '\r' before it is dropped,
// and a last line without '\n' counts (an empty file has no labels).
std::vector<std::string> ParseLabelLines(std::string_view text);

// The indexes of the `k` best of `n` scores (k clamped to [0, n]), best
// first: higher score first, ties lower index first, NaN last. `top` is
// overwritten (its capacity reused).
void TopClasses(const float* scores, int64_t n, int64_t k, std::vector<int64_t>* top);

// Appends "<score>:<index>", or "<score>:<index>:<label>" when `label` is
// not empty, to *out; the score as std::to_string(float) prints it.
void AppendClassString(float score, int64_t index, std::string_view label, std::string* out);

}  // namespace selu::core

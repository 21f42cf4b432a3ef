// GraphReader's last pass over the graph it built: steps whose result no
// graph output needs are dropped, dense layers read from the same weight
// constant that came out identical (same bias, folds and fused activations:
// an unrolled RNN's weights) are held once, and tensors and layers are
// numbered again, layers in order of first use.
#include <cstddef>
#include <utility>
#include <vector>

#include "server/core/model/onnx_graph_reader.h"

namespace selu::core::onnx_internal {
namespace {

bool SameLayer(const DenseLayer& a, const DenseLayer& b) {
  return a.in_features == b.in_features && a.out_features == b.out_features && a.bias == b.bias &&
         a.activations == b.activations && a.weights == b.weights;
}

}  // namespace

void GraphReader::Compact() {
  std::vector<bool> live(spec_.tensors.size(), false);
  for (const TensorPort& p : spec_.outputs) live[static_cast<size_t>(p.tensor)] = true;
  std::vector<bool> keep(spec_.steps.size(), false);
  for (size_t i = spec_.steps.size(); i-- > 0;) {
    if (!live[static_cast<size_t>(spec_.steps[i].output)]) continue;
    keep[i] = true;
    for (int in : spec_.steps[i].inputs) live[static_cast<size_t>(in)] = true;
  }

  // The first layer each layer equals (itself when none before it does).
  std::vector<size_t> canonical(spec_.layers.size());
  for (size_t i = 0; i < spec_.layers.size(); ++i) {
    canonical[i] = i;
    for (size_t j = 0; j < i; ++j) {
      if (canonical[j] == j && weight_source_[j] == weight_source_[i] &&
          SameLayer(spec_.layers[j], spec_.layers[i])) {
        canonical[i] = j;
        break;
      }
    }
  }

  std::vector<int> tensor_id(spec_.tensors.size(), -1);
  std::vector<GraphTensor> tensors;
  auto renumber = [&](int old) {
    if (tensor_id[static_cast<size_t>(old)] < 0) {
      tensor_id[static_cast<size_t>(old)] = static_cast<int>(tensors.size());
      tensors.push_back(std::move(spec_.tensors[static_cast<size_t>(old)]));
    }
    return tensor_id[static_cast<size_t>(old)];
  };
  for (TensorPort& p : spec_.inputs) p.tensor = renumber(p.tensor);
  std::vector<int> layer_id(spec_.layers.size(), -1);
  std::vector<DenseLayer> layers;
  std::vector<GraphStep> steps;
  for (size_t i = 0; i < spec_.steps.size(); ++i) {
    if (!keep[i]) continue;
    GraphStep step = std::move(spec_.steps[i]);
    for (int& in : step.inputs) in = tensor_id[static_cast<size_t>(in)];
    step.output = renumber(step.output);
    if (step.kind == StepKind::kDense) {
      const size_t c = canonical[static_cast<size_t>(step.layer)];
      if (layer_id[c] < 0) {
        layer_id[c] = static_cast<int>(layers.size());
        layers.push_back(std::move(spec_.layers[c]));
      }
      step.layer = layer_id[c];
    }
    steps.push_back(std::move(step));
  }
  for (TensorPort& p : spec_.outputs) p.tensor = tensor_id[static_cast<size_t>(p.tensor)];
  spec_.tensors = std::move(tensors);
  spec_.steps = std::move(steps);
  spec_.layers = std::move(layers);
}

}  // namespace selu::core::onnx_internal

#include "server/core/model/model_spec.h"

#include <set>
#include <string>

namespace selu::core {
namespace {

std::string StepLabel(const GraphStep& step, size_t index) {
  static const char* const kKinds[] = {"dense", "add", "concat", "slice", "activation", "softmax"};
  std::string label =
      std::string(kKinds[static_cast<int>(step.kind)]) + " step " + std::to_string(index);
  if (!step.name.empty()) label += " '" + step.name + "'";
  return label;
}

// The graph of a chain spec: input → layer 0 → ... → layer L-1 [→ softmax].
void BuildChainGraph(ModelSpec& spec) {
  spec.tensors.push_back(
      {spec.input_name.empty() ? "input" : spec.input_name, spec.input_features});
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    GraphStep step;
    step.kind = StepKind::kDense;
    step.name = spec.layers[i].name;
    step.inputs = {static_cast<int>(spec.tensors.size()) - 1};
    step.layer = static_cast<int>(i);
    step.output = static_cast<int>(spec.tensors.size());
    spec.tensors.push_back({spec.layers[i].name, spec.layers[i].out_features});
    spec.steps.push_back(std::move(step));
  }
  if (spec.softmax_output && !spec.layers.empty()) {
    GraphStep step;
    step.kind = StepKind::kSoftmax;
    step.name = "softmax";
    step.inputs = {static_cast<int>(spec.tensors.size()) - 1};
    step.output = static_cast<int>(spec.tensors.size());
    spec.tensors.push_back({"softmax", spec.tensors.back().features});
    spec.steps.push_back(std::move(step));
  }
  TensorPort in;
  in.name = spec.input_name;
  in.shape =
      spec.input_shape.empty() ? std::vector<int64_t>{-1, spec.input_features} : spec.input_shape;
  in.features = spec.input_features;
  in.tensor = 0;
  spec.inputs = {in};
  TensorPort out;
  out.name = spec.output_name;
  out.features = spec.tensors.back().features;
  out.shape = {-1, out.features};
  out.tensor = static_cast<int>(spec.tensors.size()) - 1;
  spec.outputs = {out};
}

Status CheckActivations(const std::vector<Activation>& acts, int64_t features,
                        const std::string& where) {
  for (const Activation& a : acts) {
    const size_t count = a.values.size();
    if (IsPerFeature(a.kind) && count != 1 && count != static_cast<size_t>(features)) {
      return InvalidArgumentError(where + " has a " + std::string(ActivationName(a.kind)) +
                                  " with " + std::to_string(count) + " values for " +
                                  std::to_string(features) + " features");
    }
  }
  return OkStatus();
}

Status CheckStep(const ModelSpec& spec, const GraphStep& step, const std::string& where,
                 const std::vector<bool>& ready) {
  const int tensor_count = static_cast<int>(spec.tensors.size());
  if (step.output < 0 || step.output >= tensor_count) {
    return InvalidArgumentError(where + " writes no tensor of the graph");
  }
  if (ready[static_cast<size_t>(step.output)]) {
    return InvalidArgumentError(where + " writes tensor '" + spec.tensors[step.output].name +
                                "', which is already written");
  }
  size_t want_inputs = 1;
  if (step.kind == StepKind::kAdd) want_inputs = 2;
  if (step.kind == StepKind::kConcat ? step.inputs.empty() : step.inputs.size() != want_inputs) {
    return InvalidArgumentError(where + " has " + std::to_string(step.inputs.size()) + " inputs");
  }
  int64_t in_sum = 0;
  for (int id : step.inputs) {
    if (id < 0 || id >= tensor_count || !ready[static_cast<size_t>(id)]) {
      return InvalidArgumentError(where + " reads a tensor that no earlier step writes");
    }
    in_sum += spec.tensors[id].features;
  }
  const int64_t in = spec.tensors[step.inputs[0]].features;
  const int64_t out = spec.tensors[step.output].features;
  if (out <= 0) return InvalidArgumentError(where + " has an empty output");
  auto mismatch = [&](int64_t want) {
    return InvalidArgumentError(where + " writes " + std::to_string(out) + " features, expected " +
                                std::to_string(want));
  };
  switch (step.kind) {
    case StepKind::kDense: {
      if (step.layer < 0 || step.layer >= static_cast<int>(spec.layers.size())) {
        return InvalidArgumentError(where + " names no layer");
      }
      const DenseLayer& l = spec.layers[step.layer];
      if (l.in_features != in) {
        return InvalidArgumentError(where + " (layer '" + l.name + "') takes " +
                                    std::to_string(l.in_features) + " features but receives " +
                                    std::to_string(in));
      }
      if (l.out_features != out) return mismatch(l.out_features);
      break;
    }
    case StepKind::kAdd:
      if (spec.tensors[step.inputs[1]].features != in) {
        return InvalidArgumentError(where + " adds " + std::to_string(in) + " features to " +
                                    std::to_string(spec.tensors[step.inputs[1]].features));
      }
      if (out != in) return mismatch(in);
      break;
    case StepKind::kConcat:
      if (out != in_sum) return mismatch(in_sum);
      break;
    case StepKind::kSlice:
      if (step.offset < 0 || step.offset + out > in) {
        return InvalidArgumentError(where + " takes features [" + std::to_string(step.offset) +
                                    ", " + std::to_string(step.offset + out) + ") of " +
                                    std::to_string(in));
      }
      break;
    case StepKind::kActivate:
      if (out != in) return mismatch(in);
      return CheckActivations(step.activations, out, where);
    case StepKind::kSoftmax:
      if (out != in) return mismatch(in);
      break;
  }
  return OkStatus();
}

Status CheckLayers(const ModelSpec& spec) {
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    const DenseLayer& l = spec.layers[i];
    const std::string where = "layer " + std::to_string(i) + " '" + l.name + "'";
    if (l.in_features <= 0 || l.out_features <= 0) {
      return InvalidArgumentError(where + " has an empty dimension");
    }
    if (static_cast<int64_t>(l.weights.size()) != l.in_features * l.out_features &&
        !l.weights.empty()) {
      return InvalidArgumentError(where + " has " + std::to_string(l.weights.size()) +
                                  " weights, expected " +
                                  std::to_string(l.in_features * l.out_features));
    }
    if (static_cast<int64_t>(l.bias.size()) != l.out_features) {
      return InvalidArgumentError(where + " has " + std::to_string(l.bias.size()) +
                                  " biases, expected " + std::to_string(l.out_features));
    }
    Status s = CheckActivations(l.activations, l.out_features, where);
    if (!s.ok()) return s;
  }
  return OkStatus();
}

Status CheckPorts(const ModelSpec& spec, const std::vector<TensorPort>& ports, const char* what) {
  std::set<std::string> names;
  for (const TensorPort& p : ports) {
    if (p.tensor < 0 || p.tensor >= static_cast<int>(spec.tensors.size())) {
      return InvalidArgumentError(std::string(what) + " '" + p.name + "' names no tensor");
    }
    if (p.features != spec.tensors[p.tensor].features || p.features <= 0) {
      return InvalidArgumentError(std::string(what) + " '" + p.name + "' has " +
                                  std::to_string(p.features) + " features, its tensor " +
                                  std::to_string(spec.tensors[p.tensor].features));
    }
    if (!names.insert(p.name).second) {
      return InvalidArgumentError(std::string("two ") + what + "s are named '" + p.name + "'");
    }
  }
  return OkStatus();
}

// "Selu", "Elu+Selu", "Identity" for none.
std::string ActivationsLabel(const std::vector<Activation>& acts) {
  if (acts.empty()) return "Identity";
  std::string name;
  for (const Activation& a : acts) {
    if (!name.empty()) name += "+";
    name += ActivationName(a.kind);
  }
  return name;
}

}  // namespace

std::vector<DenseGroup> GroupDenseSteps(const ModelSpec& spec) {
  const size_t n = spec.steps.size();
  std::vector<std::vector<int>> readers(spec.tensors.size());
  std::vector<int> output_ports(spec.tensors.size(), 0);
  for (size_t s = 0; s < n; ++s) {
    for (int t : spec.steps[s].inputs)
      readers[static_cast<size_t>(t)].push_back(static_cast<int>(s));
  }
  for (const TensorPort& p : spec.outputs) ++output_ports[static_cast<size_t>(p.tensor)];
  // When each tensor is available in execution order (-1: a graph input).
  std::vector<int> available(spec.tensors.size(), -1);
  for (size_t s = 0; s < n; ++s)
    available[static_cast<size_t>(spec.steps[s].output)] = static_cast<int>(s);
  std::vector<bool> absorbed(n, false);
  std::vector<DenseGroup> groups;
  for (size_t d = 0; d < n; ++d) {
    if (spec.steps[d].kind != StepKind::kDense) continue;
    DenseGroup g;
    g.step = static_cast<int>(d);
    int cur = spec.steps[d].output;
    while (true) {
      const auto& r = readers[static_cast<size_t>(cur)];
      if (r.size() != 1 || output_ports[static_cast<size_t>(cur)] > 0 ||
          absorbed[static_cast<size_t>(r[0])])
        break;
      const GraphStep& s = spec.steps[static_cast<size_t>(r[0])];
      if (s.kind == StepKind::kAdd) {
        const int other = s.inputs[0] == cur ? s.inputs[1] : s.inputs[0];
        if (other == cur || available[static_cast<size_t>(other)] >= static_cast<int>(d)) break;
      } else if (s.kind != StepKind::kActivate) {
        break;
      }
      absorbed[static_cast<size_t>(r[0])] = true;
      g.absorbed.push_back(r[0]);
      cur = s.output;
    }
    g.result = cur;
    available[static_cast<size_t>(cur)] = static_cast<int>(d);
    groups.push_back(std::move(g));
  }
  return groups;
}

std::vector<ObservedLayer> ObservedLayers(const ModelSpec& spec) {
  if (spec.steps.empty()) {  // a chain not completed yet: one per layer
    std::vector<ObservedLayer> out;
    for (size_t i = 0; i < spec.layers.size(); ++i) {
      const DenseLayer& l = spec.layers[i];
      out.push_back({l.name, l.out_features, static_cast<int>(i), l.activations, false,
                     ActivationsLabel(l.activations)});
    }
    return out;
  }
  std::vector<int> uses(spec.layers.size(), 0);
  for (const GraphStep& s : spec.steps) {
    if (s.kind == StepKind::kDense) ++uses[static_cast<size_t>(s.layer)];
  }
  std::vector<int> seen(spec.layers.size(), 0);
  std::vector<ObservedLayer> out;
  for (const DenseGroup& g : GroupDenseSteps(spec)) {
    const GraphStep& dense = spec.steps[static_cast<size_t>(g.step)];
    const size_t li = static_cast<size_t>(dense.layer);
    const DenseLayer& l = spec.layers[li];
    ObservedLayer o;
    o.name = uses[li] > 1 ? l.name + "@" + std::to_string(++seen[li]) : l.name;
    o.features = spec.tensors[static_cast<size_t>(g.result)].features;
    o.layer = dense.layer;
    o.activations = l.activations;
    std::vector<std::string> parts;
    if (!l.activations.empty()) parts.push_back(ActivationsLabel(l.activations));
    for (int k : g.absorbed) {
      const GraphStep& s = spec.steps[static_cast<size_t>(k)];
      if (s.kind == StepKind::kAdd) {
        o.residual = true;
        parts.push_back("Add");
      } else {
        parts.push_back(ActivationsLabel(s.activations));
      }
      o.activations.insert(o.activations.end(), s.activations.begin(), s.activations.end());
    }
    for (const std::string& p : parts) o.activation += (o.activation.empty() ? "" : "+") + p;
    if (o.activation.empty()) o.activation = "Identity";
    out.push_back(std::move(o));
  }
  return out;
}

int64_t ModelSpec::dense_step_count() const {
  int64_t n = 0;
  for (const GraphStep& s : steps) n += s.kind == StepKind::kDense ? 1 : 0;
  return n;
}

Status CompleteModelSpec(ModelSpec& spec) {
  if (spec.layers.empty()) return InvalidArgumentError("model has no layers");
  Status s = CheckLayers(spec);
  if (!s.ok()) return s;
  if (spec.steps.empty()) {
    int64_t features = spec.input_features;
    for (size_t i = 0; i < spec.layers.size(); ++i) {
      const DenseLayer& l = spec.layers[i];
      if (l.in_features != features) {
        return InvalidArgumentError("layer " + std::to_string(i) + " '" + l.name + "' takes " +
                                    std::to_string(l.in_features) + " features but receives " +
                                    std::to_string(features));
      }
      features = l.out_features;
    }
    spec.tensors.clear();
    BuildChainGraph(spec);
  }
  if (spec.inputs.empty()) return InvalidArgumentError("model has no inputs");
  if (spec.outputs.empty()) return InvalidArgumentError("model has no outputs");
  s = CheckPorts(spec, spec.inputs, "input");
  if (!s.ok()) return s;
  s = CheckPorts(spec, spec.outputs, "output");
  if (!s.ok()) return s;
  std::vector<bool> ready(spec.tensors.size(), false);
  for (const TensorPort& p : spec.inputs) {
    if (ready[static_cast<size_t>(p.tensor)]) {
      return InvalidArgumentError("inputs '" + p.name + "' and another share one tensor");
    }
    ready[static_cast<size_t>(p.tensor)] = true;
  }
  for (size_t i = 0; i < spec.steps.size(); ++i) {
    s = CheckStep(spec, spec.steps[i], StepLabel(spec.steps[i], i), ready);
    if (!s.ok()) return s;
    ready[static_cast<size_t>(spec.steps[i].output)] = true;
  }
  for (const TensorPort& p : spec.outputs) {
    if (!ready[static_cast<size_t>(p.tensor)]) {
      return InvalidArgumentError("output '" + p.name + "' is written by no step");
    }
  }
  int64_t offset = 0;
  for (TensorPort& p : spec.inputs) {
    p.offset = offset;
    offset += p.features;
  }
  spec.input_features = offset;
  offset = 0;
  for (TensorPort& p : spec.outputs) {
    p.offset = offset;
    offset += p.features;
  }
  spec.output_features = offset;
  spec.input_name = spec.inputs[0].name;
  spec.input_shape = spec.inputs[0].shape;
  spec.output_name = spec.outputs[0].name;
  return OkStatus();
}

}  // namespace selu::core

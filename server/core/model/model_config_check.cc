// Step 3 of model_config.h: a config checked against the loaded ModelSpec
// (CheckModelConfigAgainstModel), and CompleteModelConfig, the effective
// config the ModelConfig rpc reports.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "server/core/base/client_text.h"
#include "server/core/model/model_config.h"

namespace selu::core {
namespace {

std::string DataTypeName(int type) {
  const std::string& name = inference::DataType_Name(static_cast<inference::DataType>(type));
  return name.empty() ? std::to_string(type) : name;
}

// Dims as a message quotes them: the first ones only, so that a config (a
// RepositoryModelLoad request's) with thousands of dims cannot make a message
// over gRPC's 8 KB limit.
template <typename Dims>
std::string DimsString(const Dims& dims) {
  constexpr int kShownDims = 8;
  std::string s = "[";
  const int size = static_cast<int>(dims.size());
  for (int i = 0; i < size && i < kShownDims; ++i) {
    if (i) s += ", ";
    s += std::to_string(dims[i]);
  }
  if (size > kShownDims) s += ", ... (" + std::to_string(size) + " dims)";
  return s + "]";
}

template <typename Dims>
bool DimsMatch(const Dims& config_dims, const std::vector<int64_t>& model_dims) {
  if (static_cast<size_t>(config_dims.size()) != model_dims.size()) return false;
  for (size_t i = 0; i < model_dims.size(); ++i) {
    const int64_t c = config_dims[static_cast<int>(i)];
    const int64_t m = model_dims[i];
    if (c != -1 && m != -1 && c != m) return false;
  }
  return true;
}

// The model's inputs or outputs as the config sees them: the graph's ports,
// or for a spec without them (not completed) the chain view's one port.
std::vector<TensorPort> Ports(const ModelSpec& spec, bool inputs) {
  if (inputs && !spec.inputs.empty()) return spec.inputs;
  if (!inputs && !spec.outputs.empty()) return spec.outputs;
  TensorPort port;
  port.name = inputs ? spec.input_name : spec.output_name;
  port.features = inputs ? spec.input_features : spec.output_features;
  port.shape = inputs && !spec.input_shape.empty() ? spec.input_shape
                                                   : std::vector<int64_t>{-1, port.features};
  return {port};
}

// A port's dims as a config lists them: without the batch dimension.
std::vector<int64_t> PortDims(const TensorPort& port) {
  if (port.shape.size() < 2) return {port.features};
  return std::vector<int64_t>(port.shape.begin() + 1, port.shape.end());
}

std::string PortNames(const std::vector<TensorPort>& ports) {
  constexpr size_t kShownNames = 8;
  std::string s;
  for (size_t i = 0; i < ports.size() && i < kShownNames; ++i) {
    s += (i ? ", '" : "'") + QuoteClientText(ports[i].name) + "'";
  }
  if (ports.size() > kShownNames) s += ", ... (" + std::to_string(ports.size()) + " in all)";
  return s;
}

// Each listed tensor names a port (once) and matches its data type and
// dims; ports the list leaves out are completed from the model.
template <typename Tensors>
Status CheckTensors(const Tensors& tensors, const std::string& kind,
                    const std::vector<TensorPort>& ports) {
  if (tensors.empty()) return OkStatus();
  const size_t count = static_cast<size_t>(tensors.size());
  if (count > ports.size()) {
    return InvalidArgumentError(kind + ": the model has " + std::to_string(ports.size()) + " " +
                                kind + (ports.size() == 1 ? "" : "s") + ", the config lists " +
                                std::to_string(count));
  }
  for (size_t i = 0; i < count; ++i) {
    const auto& tensor = tensors[static_cast<int>(i)];
    const std::string field = kind + "[" + std::to_string(i) + "]";
    size_t k = 0;
    while (k < ports.size() && ports[k].name != tensor.name()) ++k;
    if (k == ports.size()) {
      if (ports.size() == 1) {
        return InvalidArgumentError(field + ".name '" + QuoteClientText(tensor.name()) +
                                    "' is not the model's " + kind + " '" +
                                    QuoteClientText(ports[0].name) + "'");
      }
      return InvalidArgumentError(field + ".name '" + QuoteClientText(tensor.name()) +
                                  "' is not one of the model's " + kind + "s " + PortNames(ports));
    }
    for (size_t j = 0; j < i; ++j) {
      if (tensors[static_cast<int>(j)].name() == tensor.name()) {
        return InvalidArgumentError(field + ".name '" + QuoteClientText(tensor.name()) +
                                    "' is also " + kind + "[" + std::to_string(j) + "]");
      }
    }
    if (tensor.data_type() != inference::TYPE_FP32) {
      return InvalidArgumentError(field + ".data_type " + DataTypeName(tensor.data_type()) +
                                  " does not match the model's TYPE_FP32");
    }
    const std::vector<int64_t> model_dims = PortDims(ports[k]);
    if (!DimsMatch(tensor.dims(), model_dims)) {
      return InvalidArgumentError(
          field + ".dims " + DimsString(tensor.dims()) + " do not match the model's " +
          DimsString(model_dims) +
          (ports.size() == 1 ? "" : " for '" + QuoteClientText(ports[k].name) + "'") +
          " (dims exclude the batch dimension)");
    }
  }
  return OkStatus();
}

}  // namespace

Status CheckModelConfigAgainstModel(const inference::ModelConfig& config, const ModelSpec& spec) {
  SELU_RETURN_IF_ERROR(CheckTensors(config.input(), "input", Ports(spec, /*inputs=*/true)));
  SELU_RETURN_IF_ERROR(CheckTensors(config.output(), "output", Ports(spec, /*inputs=*/false)));
  if (spec.fixed_batch_size > 0) {
    const std::string fixed = " exceeds the batch size " + std::to_string(spec.fixed_batch_size) +
                              " fixed by the model file";
    if (config.max_batch_size() > spec.fixed_batch_size) {
      return InvalidArgumentError("max_batch_size " + std::to_string(config.max_batch_size()) +
                                  fixed);
    }
    if (config.has_dynamic_batching()) {
      const auto& preferred = config.dynamic_batching().preferred_batch_size();
      for (int i = 0; i < preferred.size(); ++i) {
        if (preferred[i] > spec.fixed_batch_size) {
          return InvalidArgumentError("dynamic_batching.preferred_batch_size[" + std::to_string(i) +
                                      "] " + std::to_string(preferred[i]) + fixed);
        }
      }
    }
  }
  return OkStatus();
}

inference::ModelConfig CompleteModelConfig(const inference::ModelConfig& given,
                                           std::string_view model_name, const ModelSpec& spec,
                                           const EffectiveServing& serving) {
  inference::ModelConfig config = given;
  config.set_name(std::string(model_name));
  if (config.platform().empty()) config.set_platform("onnxruntime_onnx");
  if (config.backend().empty()) config.set_backend("onnxruntime");
  config.set_max_batch_size(
      static_cast<int32_t>(std::clamp<int64_t>(serving.max_batch_size, 0, INT32_MAX)));

  // Every input and output of the model, in model order, whatever the given
  // config listed (a partial list is completed; CheckModelConfigAgainstModel
  // has checked what it lists).
  config.clear_input();
  for (const TensorPort& port : Ports(spec, /*inputs=*/true)) {
    inference::ModelInput* input = config.add_input();
    input->set_name(port.name);
    input->set_data_type(inference::TYPE_FP32);
    for (int64_t d : PortDims(port)) input->add_dims(d);
  }
  const google::protobuf::RepeatedPtrField<inference::ModelOutput> given_outputs = config.output();
  config.clear_output();
  for (const TensorPort& port : Ports(spec, /*inputs=*/false)) {
    inference::ModelOutput* output = config.add_output();
    output->set_name(port.name);
    output->set_data_type(inference::TYPE_FP32);
    for (int64_t d : PortDims(port)) output->add_dims(d);
    for (const inference::ModelOutput& listed : given_outputs) {
      if (listed.name() == port.name) output->set_label_filename(listed.label_filename());
    }
  }

  if (!config.has_version_policy() || config.version_policy().policy_choice_case() ==
                                          inference::ModelVersionPolicy::POLICY_CHOICE_NOT_SET) {
    config.mutable_version_policy()->mutable_latest()->set_num_versions(1);
  }

  inference::ModelDynamicBatching* batching = config.mutable_dynamic_batching();
  batching->Clear();
  for (int64_t size : serving.preferred_batch_sizes) {
    batching->add_preferred_batch_size(
        static_cast<int32_t>(std::clamp<int64_t>(size, 0, INT32_MAX)));
  }
  batching->set_max_queue_delay_microseconds(
      static_cast<uint64_t>(std::max<int64_t>(serving.max_queue_delay_us, 0)));
  inference::ModelQueuePolicy* queue = batching->mutable_default_queue_policy();
  queue->set_max_queue_size(
      static_cast<uint32_t>(std::clamp<int64_t>(serving.max_queue_size, 0, UINT32_MAX)));
  queue->set_default_timeout_microseconds(
      static_cast<uint64_t>(std::max<int64_t>(serving.default_timeout_us, 0)));

  config.clear_instance_group();
  inference::ModelInstanceGroup* group = config.add_instance_group();
  group->set_name(std::string(model_name));
  group->set_kind(inference::ModelInstanceGroup::KIND_CPU);
  group->set_count(serving.instances);

  if (config.default_model_filename().empty()) config.set_default_model_filename("model.onnx");
  return config;
}

}  // namespace selu::core

// ModelSpec: a loaded SNN in the form the engine consumes, independent of the
// file format it came from.
//
// A model is a small graph of dense layers and a few joins over fp32 tensors
// shaped [rows, features] (row-major; a graph input of shape [N, T, F] is
// T·F features per row). Its steps, in topological order:
//   kDense     y = act_k(...act_1(x·W + b))         (one of `layers`)
//   kAdd       y = a + b, same features              (residual)
//   kConcat    y = [a | b | ...] along the features
//   kSlice     y = x[offset, offset + features)      (Gather/Slice/Split of
//              features: an unrolled RNN's x[:, t, :])
//   kActivate  y = act_k(...act_1(x))                (after a join or an input)
//   kSoftmax   y = softmax(x) over the features
// Squeeze/Reshape/Flatten/Identity change no float: the loader maps their
// output to the same tensor.
//
// Requests and answers are *packed rows*: one row of a request holds every
// graph input's features one after another, in `inputs` order, at each
// input's `offset`; one row of an answer holds every graph output's
// features likewise. For the common one-input, one-output model a packed row
// is just the input (output) row. So a batch of requests is a batch of
// packed rows, and each request's rows stay together.
//
// The plain chain (one input, dense layers one after another, optional
// softmax) may still be given by `layers` and `softmax_output` alone, with
// `steps` empty; CompleteModelSpec() builds its graph (and fills the legacy
// fields below from the graph for a graph spec), so that every reader can use
// either view.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "server/core/base/status.h"
#include "server/core/model/activation.h"

namespace selu::core {

struct DenseLayer {
  // Name of the ONNX node (or generated name) this layer came from; used in
  // messages and metrics.
  std::string name;
  int64_t in_features = 0;
  int64_t out_features = 0;
  // Row-major [in_features, out_features]: y[n] = sum_k x[k]·weights[k*out + n] + bias[n].
  std::vector<float> weights;
  // out_features values; zeros when the source had no bias.
  std::vector<float> bias;
  // Applied in order after the affine part; empty means identity.
  std::vector<Activation> activations;
};

// A graph input or output as clients see it.
struct TensorPort {
  std::string name;
  // As declared by the model, with -1 for the batch (or any symbolic)
  // dimension, e.g. [-1, 64] or [-1, 8, 8].
  std::vector<int64_t> shape;
  int64_t features = 0;  // floats per row: the product of the non-batch dims
  int64_t offset = 0;    // its first float within a packed row
  int tensor = -1;       // its id in ModelSpec::tensors
};

// A tensor of the graph: `features` floats per row.
struct GraphTensor {
  std::string name;  // the ONNX tensor name (the first one, when several alias it)
  int64_t features = 0;
};

enum class StepKind { kDense, kAdd, kConcat, kSlice, kActivate, kSoftmax };

struct GraphStep {
  StepKind kind = StepKind::kDense;
  // The ONNX node (the first of a pattern), for messages.
  std::string name;
  // Tensor ids; each is a graph input or the output of an earlier step.
  // kDense, kSlice, kActivate, kSoftmax: one; kAdd: two; kConcat: one or more.
  std::vector<int> inputs;
  int output = -1;  // tensor id, written by this step only
  // kDense: index into ModelSpec::layers (several steps may share a layer:
  // an unrolled RNN's weights are held once).
  int layer = -1;
  // kSlice: the first feature of inputs[0] taken; the output's `features`
  // follow it.
  int64_t offset = 0;
  // kActivate: applied in order.
  std::vector<Activation> activations;
};

struct ModelSpec {
  // --- The graph (see above). Empty `steps`: the chain given by `layers`.
  std::vector<TensorPort> inputs;
  std::vector<TensorPort> outputs;
  std::vector<GraphTensor> tensors;
  std::vector<GraphStep> steps;
  std::vector<DenseLayer> layers;

  // --- The chain view, kept for the one-input, one-output model: the first
  // input's and first output's names, and the packed row widths (every
  // input's features together; every output's).
  std::string input_name;
  std::string output_name;
  int64_t input_features = 0;
  int64_t output_features = 0;
  // Shape of the (first) input as declared by the model, with -1 for the batch
  // (or any symbolic) dimension, e.g. [-1, 64] or [-1, 8, 8]; rows are flattened.
  std::vector<int64_t> input_shape;
  // Chain only: a softmax over the last layer's output ends the model.
  bool softmax_output = false;

  // > 0 when the model file fixes the batch dimension; 0 when it is symbolic.
  int64_t fixed_batch_size = 0;
  // metadata_props of the model file (e.g. "selu.reference_stats").
  std::map<std::string, std::string> metadata;
  // Producer information, for ModelMetadata.
  std::string producer_name;
  std::string producer_version;

  // Number of kDense steps (the layers a LayerObserver sees, in step order).
  int64_t dense_step_count() const;
};

// A dense step with what it absorbs: while its result has a single reader
// step (reading it once) and is no graph output, a kActivate step, or a kAdd
// whose other operand is available before the dense step runs (a residual
// add; the engine fuses both into the dense layer's primitive). Execution
// order is step order with each group at its dense step.
struct DenseGroup {
  int step = -1;              // the kDense step
  std::vector<int> absorbed;  // kActivate / kAdd steps, in order
  int result = -1;            // the tensor the group produces
};
// One group per kDense step, in step order (spec complete).
std::vector<DenseGroup> GroupDenseSteps(const ModelSpec& spec);

// What a LayerObserver's `layer` k sees: dense group k's result.
struct ObservedLayer {
  // The layer's name; "name@u" (u = 1, 2, ...) when the layer is used by
  // several steps (an unrolled RNN's shared weights).
  std::string name;
  int64_t features = 0;
  int layer = -1;
  // The layer's activations, then those of the absorbed kActivate steps.
  std::vector<Activation> activations;
  bool residual = false;  // a kAdd was absorbed: the result is a sum
  // What the result went through after the affine part, in order: "Selu",
  // "Identity", "Selu+Add" (h + selu(W h + b)), "Add+Selu" (an unrolled
  // RNN's selu(W x + U h))...
  std::string activation;
};
// (A chain spec not completed yet: one per layer.)
std::vector<ObservedLayer> ObservedLayers(const ModelSpec& spec);

// Makes both views of `spec` agree: a chain (no steps) gets its graph
// (tensors "input", one per layer, steps, inputs/outputs from input_name,
// input_shape, output_name); a graph gets its chain view (input_name and
// input_shape of inputs[0], output_name of outputs[0], packed widths) and its
// ports' offsets. Then checks the graph: ids in range, each step's inputs
// produced earlier, features consistent with each step's kind and layer,
// per-feature activation values 1 or N, names of ports unique.
// INVALID_ARGUMENT naming the step otherwise.
Status CompleteModelSpec(ModelSpec& spec);

}  // namespace selu::core

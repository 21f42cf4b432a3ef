// ModelSpec: a loaded MLP in the form the engine consumes, independent of the
// file format it came from.
//
// A model is a chain of dense layers, y = act_k(...act_1(x·W + b)), with an
// optional softmax over the last axis at the very end. Tensors are fp32,
// row-major, shaped [rows, features].
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

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

struct ModelSpec {
  std::string input_name;
  std::string output_name;
  int64_t input_features = 0;
  int64_t output_features = 0;
  // Shape of the input as declared by the model, with -1 for the batch (or any
  // symbolic) dimension, e.g. [-1, 64] or [-1, 8, 8]; rows are flattened.
  std::vector<int64_t> input_shape;
  // > 0 when the model file fixes the batch dimension; 0 when it is symbolic.
  int64_t fixed_batch_size = 0;
  std::vector<DenseLayer> layers;
  bool softmax_output = false;
  // metadata_props of the model file (e.g. "selu.reference_stats").
  std::map<std::string, std::string> metadata;
  // Producer information, for ModelMetadata.
  std::string producer_name;
  std::string producer_version;
};

}  // namespace selu::core

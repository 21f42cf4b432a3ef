#include "client/src/infer_command.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "proto/grpc_service.grpc.pb.h"

namespace selu::client {

namespace {

// One output tensor of all requests, as [rows][columns] of doubles (or of
// strings, for a BYTES output: classification).
struct OutputMatrix {
  std::string name;
  std::string datatype;
  size_t columns = 0;
  std::vector<std::vector<double>> rows;
  std::vector<std::vector<std::string>> strings;
};

// The columns of each row one input takes.
struct InputSlice {
  std::string name;
  size_t offset = 0;
  size_t width = 0;
};

inference::ModelInferRequest MakeRequest(const InferOptions& options,
                                         const std::vector<InputSlice>& inputs,
                                         const std::vector<std::string>& classified,
                                         const Rows& rows, size_t first, size_t count) {
  inference::ModelInferRequest request;
  request.set_model_name(options.model);
  request.set_model_version(options.version);
  for (const std::string& name : classified) {
    auto* output = request.add_outputs();
    output->set_name(name);
    (*output->mutable_parameters())["classification"].set_int64_param(options.classification);
  }
  for (const InputSlice& slice : inputs) {
    auto* input = request.add_inputs();
    input->set_name(slice.name);
    input->set_datatype("FP32");
    input->add_shape(static_cast<int64_t>(count));
    input->add_shape(static_cast<int64_t>(slice.width));
    const size_t row_bytes = slice.width * sizeof(float);
    if (options.typed) {
      auto* values = input->mutable_contents()->mutable_fp32_contents();
      values->Reserve(static_cast<int>(count * slice.width));
      for (size_t r = first; r < first + count; ++r) {
        const auto begin = rows[r].begin() + static_cast<std::ptrdiff_t>(slice.offset);
        values->Add(begin, begin + static_cast<std::ptrdiff_t>(slice.width));
      }
    } else {
      std::string* raw = request.add_raw_input_contents();
      raw->resize(count * row_bytes);  // the protocol's raw bytes are little-endian
      for (size_t r = 0; r < count; ++r) {
        std::memcpy(raw->data() + r * row_bytes, rows[first + r].data() + slice.offset, row_bytes);
      }
    }
  }
  return request;
}

std::string ShapeText(const google::protobuf::RepeatedField<int64_t>& shape) {
  std::string s = "[";
  for (int i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

// How the rows' columns split into the inputs `names` (all of the model's
// when empty), whose widths ModelMetadata gives. A model's only input takes
// the whole row (the server checks its width). Throws UsageError.
std::vector<InputSlice> SliceRows(const inference::ModelMetadataResponse& metadata,
                                  const std::vector<std::string>& names, size_t row_width,
                                  const std::string& model) {
  std::vector<const inference::ModelMetadataResponse::TensorMetadata*> chosen;
  std::string all;
  for (const auto& input : metadata.inputs()) all += (all.empty() ? "" : ", ") + input.name();
  if (names.empty()) {
    for (const auto& input : metadata.inputs()) chosen.push_back(&input);
    if (chosen.empty()) throw UsageError("model " + model + " lists no inputs");
    if (chosen.size() == 1) return {{chosen[0]->name(), 0, row_width}};
  }
  for (const std::string& name : names) {
    const auto& inputs = metadata.inputs();
    const auto it = std::find_if(inputs.begin(), inputs.end(),
                                 [&](const auto& input) { return input.name() == name; });
    if (it == inputs.end()) {
      throw UsageError("model " + model + " has no input " + name + " (its inputs: " + all + ")");
    }
    if (std::count(names.begin(), names.end(), name) > 1) {
      throw UsageError("--input " + name + " is given twice");
    }
    chosen.push_back(&*it);
  }
  std::vector<InputSlice> slices;
  std::string layout;
  size_t offset = 0;
  for (const auto* input : chosen) {
    size_t width = 1;
    for (int d = 1; d < input->shape_size(); ++d) {
      if (input->shape(d) < 1) {
        throw UsageError("input " + input->name() + " has shape " + ShapeText(input->shape()) +
                         ": its width per row is unknown");
      }
      width *= static_cast<size_t>(input->shape(d));
    }
    slices.push_back({input->name(), offset, width});
    offset += width;
    layout += (layout.empty() ? "" : " + ") + input->name() + " " + ShapeText(input->shape());
  }
  if (offset != row_width) {
    throw UsageError("each row has " + std::to_string(row_width) + " values; the inputs " + layout +
                     " take " + std::to_string(offset) + ", one input after another");
  }
  return slices;
}

// Values of output `index` of `response`, raw or typed, as doubles.
std::vector<double> OutputValues(const inference::ModelInferResponse& response, int index) {
  const auto& tensor = response.outputs(index);
  std::vector<double> values;
  if (index < response.raw_output_contents_size()) {
    const std::string& raw = response.raw_output_contents(index);
    if (tensor.datatype() == "FP64") {
      values.resize(raw.size() / sizeof(double));
      std::memcpy(values.data(), raw.data(), values.size() * sizeof(double));
    } else if (tensor.datatype() == "FP32") {
      std::vector<float> floats(raw.size() / sizeof(float));
      std::memcpy(floats.data(), raw.data(), floats.size() * sizeof(float));
      values.assign(floats.begin(), floats.end());
    } else {
      throw UsageError("output " + tensor.name() + ": datatype " + tensor.datatype() +
                       " is not supported by this client");
    }
    return values;
  }
  const auto& contents = tensor.contents();
  values.assign(contents.fp32_contents().begin(), contents.fp32_contents().end());
  values.insert(values.end(), contents.fp64_contents().begin(), contents.fp64_contents().end());
  return values;
}

// Elements of BYTES output `index`: typed bytes_contents, or raw as the
// protocol serializes BYTES (a 4-byte little-endian length, then the bytes).
std::vector<std::string> OutputStrings(const inference::ModelInferResponse& response, int index) {
  const auto& tensor = response.outputs(index);
  if (index >= response.raw_output_contents_size()) {
    return {tensor.contents().bytes_contents().begin(), tensor.contents().bytes_contents().end()};
  }
  const std::string& raw = response.raw_output_contents(index);
  std::vector<std::string> strings;
  size_t at = 0;
  while (at + 4 <= raw.size()) {
    uint32_t size = 0;
    for (int b = 3; b >= 0; --b) size = size << 8 | static_cast<unsigned char>(raw[at + b]);
    at += 4;
    if (size > raw.size() - at) break;
    strings.emplace_back(raw, at, size);
    at += size;
  }
  if (at != raw.size()) {
    throw UsageError("output " + tensor.name() + ": malformed BYTES in raw_output_contents");
  }
  return strings;
}

void AppendStrings(const inference::ModelInferResponse& response, int index, OutputMatrix* matrix) {
  const auto& tensor = response.outputs(index);
  const std::vector<std::string> strings = OutputStrings(response, index);
  const size_t n = tensor.shape_size() > 0 ? static_cast<size_t>(tensor.shape(0)) : 1;
  const size_t columns = n > 0 ? strings.size() / n : 0;
  matrix->columns = columns;
  for (size_t r = 0; r < n; ++r) {
    matrix->strings.emplace_back(strings.begin() + static_cast<std::ptrdiff_t>(r * columns),
                                 strings.begin() + static_cast<std::ptrdiff_t>((r + 1) * columns));
  }
}

void Append(const inference::ModelInferResponse& response, std::vector<OutputMatrix>* outputs) {
  for (int i = 0; i < response.outputs_size(); ++i) {
    const auto& tensor = response.outputs(i);
    if (static_cast<size_t>(i) >= outputs->size()) {
      outputs->push_back({tensor.name(), tensor.datatype(), 0, {}, {}});
    }
    if (tensor.datatype() == "BYTES") {
      AppendStrings(response, i, &(*outputs)[static_cast<size_t>(i)]);
      continue;
    }
    const std::vector<double> values = OutputValues(response, i);
    const size_t n = tensor.shape_size() > 0 ? static_cast<size_t>(tensor.shape(0)) : 1;
    const size_t columns = n > 0 ? values.size() / n : 0;
    OutputMatrix& matrix = (*outputs)[static_cast<size_t>(i)];
    matrix.columns = columns;
    for (size_t r = 0; r < n; ++r) {
      matrix.rows.emplace_back(values.begin() + static_cast<std::ptrdiff_t>(r * columns),
                               values.begin() + static_cast<std::ptrdiff_t>((r + 1) * columns));
    }
  }
}

size_t ArgMax(const std::vector<double>& row) {
  return static_cast<size_t>(std::max_element(row.begin(), row.end()) - row.begin());
}

void PrintJson(const std::string& model, const std::string& version,
               const std::vector<OutputMatrix>& outputs, bool argmax) {
  nlohmann::json doc = {{"model_name", model}, {"model_version", version}};
  doc["outputs"] = nlohmann::json::array();
  for (const auto& output : outputs) {
    if (!output.strings.empty()) {
      doc["outputs"].push_back({{"name", output.name},
                                {"datatype", output.datatype},
                                {"shape", {output.strings.size(), output.columns}},
                                {"data", output.strings}});
      continue;
    }
    nlohmann::json tensor = {{"name", output.name},
                             {"datatype", output.datatype},
                             {"shape", {output.rows.size(), output.columns}},
                             {"data", output.rows}};
    if (argmax) {
      std::vector<size_t> classes;
      for (const auto& row : output.rows) classes.push_back(ArgMax(row));
      tensor["argmax"] = classes;
    }
    doc["outputs"].push_back(std::move(tensor));
  }
  std::printf("%s\n", doc.dump(2).c_str());
}

void PrintTable(const std::vector<OutputMatrix>& outputs, bool argmax) {
  for (const auto& output : outputs) {
    if (!output.strings.empty()) {
      std::printf("# %s %s [%zu, %zu]\n", output.name.c_str(), output.datatype.c_str(),
                  output.strings.size(), output.columns);
      for (size_t r = 0; r < output.strings.size(); ++r) {
        std::printf("%6zu", r);
        for (const std::string& s : output.strings[r]) std::printf(" %s", s.c_str());
        std::printf("\n");
      }
      continue;
    }
    std::printf("# %s %s [%zu, %zu]\n", output.name.c_str(), output.datatype.c_str(),
                output.rows.size(), output.columns);
    if (argmax) {
      std::printf("%6s %6s %12s\n", "row", "class", "value");
      for (size_t r = 0; r < output.rows.size(); ++r) {
        const size_t c = ArgMax(output.rows[r]);
        std::printf("%6zu %6zu %12.6g\n", r, c, output.rows[r][c]);
      }
      continue;
    }
    std::printf("%6s", "row");
    for (size_t c = 0; c < output.columns; ++c) std::printf(" %10zu", c);
    std::printf("\n");
    for (size_t r = 0; r < output.rows.size(); ++r) {
      std::printf("%6zu", r);
      for (double v : output.rows[r]) std::printf(" %10.4g", v);
      std::printf("\n");
    }
  }
}

}  // namespace

int RunInfer(const ConnectionOptions& connection, const InferOptions& options, const Rows& rows) {
  auto stub = inference::GRPCInferenceService::NewStub(MakeChannel(connection));
  std::vector<InputSlice> inputs;
  std::vector<std::string> classified;  // outputs asked for their top classes
  if (options.input_names.size() == 1 && options.classification == 0) {
    inputs = {{options.input_names[0], 0, rows[0].size()}};
  } else {
    grpc::ClientContext context;
    PrepareContext(&context, connection);
    inference::ModelMetadataRequest request;
    request.set_name(options.model);
    request.set_version(options.version);
    inference::ModelMetadataResponse metadata;
    const grpc::Status status = stub->ModelMetadata(&context, request, &metadata);
    if (!status.ok()) return ReportRpcError("ModelMetadata " + options.model, status);
    inputs = options.input_names.size() == 1
                 ? std::vector<InputSlice>{{options.input_names[0], 0, rows[0].size()}}
                 : SliceRows(metadata, options.input_names, rows[0].size(), options.model);
    if (options.classification > 0) {
      for (const auto& output : metadata.outputs()) classified.push_back(output.name());
    }
  }

  const size_t batch = options.batch > 0 ? static_cast<size_t>(options.batch) : rows.size();
  std::vector<OutputMatrix> outputs;
  std::string version;
  for (size_t first = 0; first < rows.size(); first += batch) {
    const size_t count = std::min(batch, rows.size() - first);
    grpc::ClientContext context;
    PrepareContext(&context, connection);
    inference::ModelInferResponse response;
    const grpc::Status status = stub->ModelInfer(
        &context, MakeRequest(options, inputs, classified, rows, first, count), &response);
    if (!status.ok()) {
      return ReportRpcError("ModelInfer " + options.model + " (rows " + std::to_string(first) +
                                ".." + std::to_string(first + count - 1) + ")",
                            status);
    }
    version = response.model_version();
    Append(response, &outputs);
  }
  if (options.table) {
    PrintTable(outputs, options.argmax);
  } else {
    PrintJson(options.model, version, outputs, options.argmax);
  }
  return kExitOk;
}

}  // namespace selu::client

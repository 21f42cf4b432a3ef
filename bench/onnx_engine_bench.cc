// onnx_engine_bench: the engine side of bench/peers/ort_engine_bench.js, the
// engine-only comparison with ONNX Runtime on the same ONNX files.
//
//   onnx_engine_bench --model model.onnx --input-file in.f32 --output-file out.f32
//
// Loads the file through the server's own loader (LoadOnnxModelFromFile, as
// the repository does), builds the MlpEngine with selu-serve's defaults and
// one OpenMP thread, then:
//  1. reads --input-file (little-endian float32, a whole number of rows of
//     the model's input width), computes every row in one Run and writes the
//     outputs to --output-file, so the driver can check them against ONNX
//     Runtime before anything is timed;
//  2. answers timing requests on stdin, one per line, "BATCH SECONDS": runs
//     MlpEngine::Run on the input's first BATCH rows with one warmed
//     workspace, back to back for at least SECONDS of wall time, and prints
//     one JSON line {"batch":..,"calls":..,"seconds":..,"rows_per_s":..}.
// Driven this way, the driver alternates the engine and ONNX Runtime per cell
// without reloading either. Exits at end of input; a bad line or a failed
// Run prints {"error": "..."} and exits 1.
#include <omp.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "server/core/engine/mlp_engine.h"
#include "server/core/model/onnx_model_loader.h"

namespace {

using selu::core::MlpEngine;

int Fail(const std::string& what) {
  std::string escaped;
  for (char c : what) {
    if (c == '"' || c == '\\') escaped += '\\';
    escaped += (static_cast<unsigned char>(c) < 0x20) ? ' ' : c;
  }
  std::printf("{\"error\": \"%s\"}\n", escaped.c_str());
  std::fflush(stdout);
  return 1;
}

bool ReadFloats(const std::string& path, std::vector<float>& values) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() % sizeof(float) != 0) return false;
  values.resize(bytes.size() / sizeof(float));
  std::copy(bytes.begin(), bytes.end(), reinterpret_cast<char*>(values.data()));
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path, input_path, output_path, primitive = "auto", weights = "fp32";
  CLI::App app{"onnx_engine_bench: MlpEngine::Run on an ONNX file, timed on request (stdin)"};
  app.add_option("--model", model_path, "ONNX file")->required();
  app.add_option("--input-file", input_path, "float32 rows to compute and time on")->required();
  app.add_option("--output-file", output_path, "where the outputs of every input row go")
      ->required();
  app.add_option("--primitive", primitive, "oneDNN primitive per layer (selu-serve's default)")
      ->check(CLI::IsMember({"auto", "inner_product", "matmul"}))
      ->capture_default_str();
  app.add_option("--weights-precision", weights, "how the layers store their weights")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  omp_set_num_threads(1);  // one thread per call, as selu-serve runs the engine
  auto spec = selu::core::LoadOnnxModelFromFile(model_path);
  if (!spec.ok()) return Fail(model_path + ": " + spec.status().message());
  selu::core::MlpEngineOptions options;
  options.primitive = *selu::core::EnginePrimitiveFromName(primitive);
  options.weights = *selu::core::WeightsPrecisionFromName(weights);
  auto created = MlpEngine::Create(std::move(*spec), options);
  if (!created.ok()) return Fail(model_path + ": " + created.status().message());
  const MlpEngine& engine = **created;

  std::vector<float> input;
  if (!ReadFloats(input_path, input)) return Fail("cannot read float32 rows from " + input_path);
  const int64_t in_width = engine.input_features();
  const int64_t out_width = engine.output_features();
  const int64_t rows = static_cast<int64_t>(input.size()) / in_width;
  if (rows < 1 || rows * in_width != static_cast<int64_t>(input.size())) {
    return Fail(input_path + " does not hold whole rows of " + std::to_string(in_width));
  }
  std::vector<float> output(static_cast<size_t>(rows * out_width));
  auto workspace = engine.CreateWorkspace();
  if (auto status = engine.Run(*workspace, input.data(), rows, output.data()); !status.ok()) {
    return Fail("Run: " + status.message());
  }
  {
    std::ofstream out(output_path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(output.data()),
              static_cast<std::streamsize>(output.size() * sizeof(float)));
    if (!out) return Fail("cannot write " + output_path);
  }
  std::printf(
      "{\"ready\": true, \"input_features\": %lld, \"output_features\": %lld, "
      "\"isa\": \"%s\", \"weights\": \"%s\", \"primitive\": \"%s\"}\n",
      static_cast<long long>(in_width), static_cast<long long>(out_width),
      selu::core::CpuIsaName().c_str(), weights.c_str(), primitive.c_str());
  std::fflush(stdout);

  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream words(line);
    int64_t batch = 0;
    double seconds = 0;
    if (!(words >> batch >> seconds) || batch < 1 || batch > rows || seconds <= 0) {
      return Fail("want 'BATCH SECONDS' with 1 <= BATCH <= " + std::to_string(rows));
    }
    // The first call builds the plan for this batch size; not timed.
    if (auto status = engine.Run(*workspace, input.data(), batch, output.data()); !status.ok()) {
      return Fail("Run: " + status.message());
    }
    using Clock = std::chrono::steady_clock;
    const auto start = Clock::now();
    const auto end = start + std::chrono::duration<double>(seconds);
    int64_t calls = 0;
    Clock::time_point now;
    do {
      if (!engine.Run(*workspace, input.data(), batch, output.data()).ok()) {
        return Fail("Run failed while timing");
      }
      ++calls;
      now = Clock::now();
    } while (now < end);
    const double elapsed = std::chrono::duration<double>(now - start).count();
    std::printf("{\"batch\": %lld, \"calls\": %lld, \"seconds\": %.6f, \"rows_per_s\": %.1f}\n",
                static_cast<long long>(batch), static_cast<long long>(calls), elapsed,
                static_cast<double>(calls * batch) / elapsed);
    std::fflush(stdout);
  }
  return 0;
}

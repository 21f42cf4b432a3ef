// Test-only helpers shared by the parity tests: reading a case folder written
// by make_parity_models.py and comparing engine outputs with PyTorch's.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace selu::parity {

// Where the cases are ($SELU_PARITY_DIR, set by ctest); empty when unset.
inline std::filesystem::path ParityDir() {
  const char* dir = std::getenv("SELU_PARITY_DIR");
  return dir == nullptr ? std::filesystem::path() : std::filesystem::path(dir);
}

// Sorted names of the case folders (those holding case.json).
inline std::vector<std::string> ListCaseNames() {
  namespace fs = std::filesystem;
  std::vector<std::string> names;
  const fs::path dir = ParityDir();
  std::error_code ec;
  if (dir.empty() || !fs::is_directory(dir, ec)) return names;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_directory() && fs::exists(entry.path() / "case.json")) {
      names.push_back(entry.path().filename().string());
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

// One case folder: model.onnx, input.bin, expected.bin, case.json.
struct ParityCase {
  std::string name;
  std::filesystem::path dir;
  int64_t rows = 0;
  int64_t in = 0;
  int64_t out = 0;
  // > 0 when the model fixes its batch dimension (then rows equals it).
  int64_t fixed_batch = 0;
  std::string description;
  // Largest |engine − PyTorch| allowed (case.json "tolerance"; folds: 1e-5).
  double tolerance = 1e-4;
  std::vector<float> input;     // rows·in
  std::vector<float> expected;  // rows·out

  std::string model_path() const { return (dir / "model.onnx").string(); }
};

// Reads raw little-endian float32 (the host is x86-64, little-endian).
inline testing::AssertionResult ReadFloats(const std::filesystem::path& path, size_t count,
                                           std::vector<float>* values) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return testing::AssertionFailure() << "cannot open " << path;
  std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (bytes.size() != count * sizeof(float)) {
    return testing::AssertionFailure() << path << " holds " << bytes.size() << " bytes, expected "
                                       << count * sizeof(float) << " (" << count << " floats)";
  }
  values->resize(count);
  std::memcpy(values->data(), bytes.data(), bytes.size());
  return testing::AssertionSuccess();
}

inline testing::AssertionResult LoadParityCase(const std::filesystem::path& dir, ParityCase* c) {
  std::ifstream meta_file(dir / "case.json");
  if (!meta_file) return testing::AssertionFailure() << "cannot open " << dir / "case.json";
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(meta_file);
    c->name = meta.at("name").get<std::string>();
    c->rows = meta.at("rows").get<int64_t>();
    c->in = meta.at("in").get<int64_t>();
    c->out = meta.at("out").get<int64_t>();
    c->fixed_batch = meta.value("fixed_batch", int64_t{0});
    c->description = meta.value("description", std::string());
    c->tolerance = meta.value("tolerance", 1e-4);
  } catch (const nlohmann::json::exception& e) {
    return testing::AssertionFailure() << dir / "case.json"
                                       << ": " << e.what();
  }
  c->dir = dir;
  if (c->rows <= 0 || c->in <= 0 || c->out <= 0) {
    return testing::AssertionFailure() << dir / "case.json"
                                       << ": bad sizes";
  }
  auto r = ReadFloats(dir / "input.bin", static_cast<size_t>(c->rows * c->in), &c->input);
  if (!r) return r;
  return ReadFloats(dir / "expected.bin", static_cast<size_t>(c->rows * c->out), &c->expected);
}

// Largest |actual − expected| over `rows` rows, where `expected` points at the
// first of those rows; NaN or inf in `actual` counts as infinite error.
// `where` receives "row r, column k: got x, expected y" for the worst entry,
// with r counted from `first_row`.
inline double MaxAbsError(const float* actual, const float* expected, int64_t rows, int64_t cols,
                          std::string* where = nullptr, int64_t first_row = 0) {
  double worst = 0.0;
  int64_t worst_index = -1;
  for (int64_t i = 0; i < rows * cols; ++i) {
    double d = std::fabs(double(actual[i]) - double(expected[i]));
    if (!std::isfinite(d)) d = std::numeric_limits<double>::infinity();
    if (d > worst || worst_index < 0) {
      worst = d;
      worst_index = i;
    }
  }
  if (where != nullptr && worst_index >= 0) {
    std::ostringstream s;
    s << "row " << first_row + worst_index / cols << ", column " << worst_index % cols << ": got "
      << actual[worst_index] << ", expected " << expected[worst_index];
    *where = s.str();
  }
  return worst;
}

}  // namespace selu::parity

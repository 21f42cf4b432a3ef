// Accuracy of bf16 weights: every parity case (make_parity_models.py) run
// with WeightsPrecision::kBf16 against PyTorch's fp32 output, and against the
// fp32 engine. Skipped where the CPU has no native bf16.
//
// Tolerance. bf16 keeps 8 significant bits, so rounding a weight or a layer
// input to it moves it by at most 2^-9 relative, and their product by 2^-8.
// The rounding errors of a dot product's terms have random signs, so a layer
// output is off by about 2^-8 times the root sum of squares of its terms,
// which in a normalised network is a fraction of the output scale that does
// not grow with the width; the largest of many outputs is a few (about 4)
// times that, and the errors of successive layers add in quadrature. Hence
//   max |bf16 − fp32| ≤ 2^-6 · √L · S
// with L dense layers and S = max(1, max |fp32 output|). A wrong weight
// layout or a tensor read in the wrong type is off by the order of S.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "server/core/engine/mlp_engine.h"
#include "server/core/model/onnx_model_loader.h"
#include "tests/parity/parity_case.h"

namespace selu::parity {
namespace {

using core::EnginePrimitive;
using core::MlpEngine;
using core::WeightsPrecision;

double Bf16Tolerance(const core::ModelSpec& spec, const std::vector<float>& expected) {
  double scale = 1.0;
  for (float v : expected) scale = std::max(scale, std::fabs(double(v)));
  const double layers = double(std::max<int64_t>(spec.dense_step_count(), 1));
  return std::ldexp(1.0, -6) * std::sqrt(layers) * scale;
}

struct Bf16Param {
  std::string case_name;
  EnginePrimitive primitive;
};

std::vector<Bf16Param> AllParams() {
  std::vector<Bf16Param> params;
  for (const std::string& name : ListCaseNames()) {
    for (EnginePrimitive p : {EnginePrimitive::kInnerProduct, EnginePrimitive::kMatmul}) {
      params.push_back({name, p});
    }
  }
  return params;
}

const char* PrimitiveName(EnginePrimitive p) {
  return p == EnginePrimitive::kInnerProduct ? "InnerProduct" : "Matmul";
}

void PrintTo(const Bf16Param& p, std::ostream* os) {
  *os << p.case_name << "/" << PrimitiveName(p.primitive);
}

class Bf16ParityTest : public testing::TestWithParam<Bf16Param> {};

TEST_P(Bf16ParityTest, WithinBf16ToleranceOfPyTorch) {
  if (!core::CpuHasBf16()) GTEST_SKIP() << "no native bf16 here (" << core::CpuIsaName() << ")";
  const Bf16Param& param = GetParam();
  ParityCase c;
  ASSERT_TRUE(LoadParityCase(ParityDir() / param.case_name, &c));
  auto spec = core::LoadOnnxModelFromFile(c.model_path());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  auto fp32 = MlpEngine::Create(*spec, {.primitive = param.primitive});
  auto bf16 =
      MlpEngine::Create(*spec, {.primitive = param.primitive, .weights = WeightsPrecision::kBf16});
  ASSERT_TRUE(fp32.ok()) << fp32.status().ToString();
  ASSERT_TRUE(bf16.ok()) << bf16.status().ToString();
  const double tolerance = Bf16Tolerance(*spec, c.expected);

  // All rows, then a few smaller batches (other plans) through one workspace.
  std::vector<std::pair<int64_t, int64_t>> runs = {{0, c.rows}};
  if (c.fixed_batch == 0) runs.insert(runs.end(), {{5, 1}, {20, 7}, {31, 33}});
  auto ws16 = (*bf16)->CreateWorkspace();
  auto ws32 = (*fp32)->CreateWorkspace();
  double vs_torch = 0.0, vs_fp32 = 0.0;
  for (const auto& [first, rows] : runs) {
    std::vector<float> y16(size_t(rows * c.out), NAN), y32(size_t(rows * c.out), NAN);
    const float* in = c.input.data() + first * c.in;
    ASSERT_TRUE((*bf16)->Run(*ws16, in, rows, y16.data()).ok());
    ASSERT_TRUE((*fp32)->Run(*ws32, in, rows, y32.data()).ok());
    std::string where;
    const double err =
        MaxAbsError(y16.data(), c.expected.data() + first * c.out, rows, c.out, &where, first);
    EXPECT_LE(err, tolerance) << c.name << " rows [" << first << ", " << first + rows
                              << "): worst at " << where;
    vs_torch = std::max(vs_torch, err);
    vs_fp32 = std::max(vs_fp32, MaxAbsError(y16.data(), y32.data(), rows, c.out));
  }
  std::printf(
      "[parity-bf16] %-24s %-12s layers=%2lld max_abs_err vs torch fp32=%.3e "
      "vs engine fp32=%.3e tolerance=%.3e\n",
      c.name.c_str(), PrimitiveName(param.primitive),
      static_cast<long long>(spec->dense_step_count()), vs_torch, vs_fp32, tolerance);
  RecordProperty("max_abs_err", testing::PrintToString(vs_torch));
}

INSTANTIATE_TEST_SUITE_P(Cases, Bf16ParityTest, testing::ValuesIn(AllParams()),
                         [](const testing::TestParamInfo<Bf16Param>& info) {
                           return info.param.case_name + "_" + PrimitiveName(info.param.primitive);
                         });

}  // namespace
}  // namespace selu::parity

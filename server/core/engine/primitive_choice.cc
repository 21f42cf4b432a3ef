// EnginePrimitive::kAuto's rule and the option names. The thresholds come
// from bench/engine_bench.cc (BM_Engine .../ip vs .../matmul vs .../auto) on
// this project's benchmark machine; bench/README.md has the table.
#include "server/core/engine/mlp_engine.h"

namespace selu::core {

bool AutoPicksMatmul(int64_t rows, int64_t in_features, int64_t out_features,
                     WeightsPrecision weights) {
  (void)weights;
  // oneDNN 2.6's matmul (brgemm) beats its inner product only where the
  // weights dominate: a wide layer streamed for few rows.
  return rows <= 8 && in_features >= 512 && out_features >= 512;
}

std::optional<EnginePrimitive> EnginePrimitiveFromName(std::string_view name) {
  if (name == "auto") return EnginePrimitive::kAuto;
  if (name == "inner_product") return EnginePrimitive::kInnerProduct;
  if (name == "matmul") return EnginePrimitive::kMatmul;
  return std::nullopt;
}

std::optional<WeightsPrecision> WeightsPrecisionFromName(std::string_view name) {
  if (name == "fp32") return WeightsPrecision::kFp32;
  if (name == "bf16") return WeightsPrecision::kBf16;
  return std::nullopt;
}

}  // namespace selu::core

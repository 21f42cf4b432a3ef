// EnginePrimitive::kAuto's rule and the option names. The thresholds come
// from bench/engine_bench.cc (BM_Engine .../ip vs .../matmul vs .../auto) on
// this project's benchmark machine; bench/README.md has the table.
#include "server/core/engine/mlp_engine.h"

namespace selu::core {

bool AutoPicksMatmul(int64_t rows, int64_t in_features, int64_t out_features,
                     WeightsPrecision weights) {
  // fp32: on the benchmark machine (AMD EPYC, avx512_core_bf16) the inner
  // product is as fast as the matmul or faster in every model x batch cell
  // (big at batch 1: matmul 0.84x), so kAuto is the inner product. bf16 on
  // wide layers: matmul (brg:avx512_core_bf16) 1.06-1.09x faster at batch
  // 8-32, equal from 128, slower at 1.
  if (weights != WeightsPrecision::kBf16) return false;
  return rows >= 8 && rows <= 64 && in_features >= 512 && out_features >= 512;
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

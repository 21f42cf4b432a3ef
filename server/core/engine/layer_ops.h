// Private to server/core/engine: a layer's activations lowered to the
// element-wise operations oneDNN runs, split into those fused into the
// layer's primitive as post-ops and those run after it as primitives of their
// own, in place on its output.
//
// Why the split: oneDNN 2.6's JIT kernels (brgemm, gemm inner product and
// matmul) keep one eltwise injector per algorithm, so a post-op chain using
// the same eltwise algorithm twice with different parameters silently runs
// the second with the first's (eltwise_linear(2) then eltwise_linear(3)
// multiplies by 4). And its prelu post-op exists only in the reference
// kernels. So a chain stays fused up to the first per-feature PRelu or the
// first eltwise that repeats an algorithm with other parameters; from there
// on each operation is its own primitive. Consecutive eltwise_linear
// operations are merged first (SELU then a constant scale stays fused).
#pragma once

#include <oneapi/dnnl/dnnl.hpp>
#include <vector>

#include "server/core/engine/graph_program.h"
#include "server/core/model/activation.h"

namespace selu::core::engine_internal {

// One element-wise operation as oneDNN runs it.
struct ElementOp {
  enum class Kind { kEltwise, kBinary, kPrelu };
  Kind kind = Kind::kEltwise;
  dnnl::algorithm alg = dnnl::algorithm::undef;  // eltwise or binary algorithm
  float alpha = 0.0f;                            // eltwise parameters
  float beta = 0.0f;
  dnnl::memory operand;  // kBinary: the {1, N} values; kPrelu: the {1, N} slopes
  // kBinary reading another tensor of the graph (a residual add) instead of
  // `operand`: its rows are bound per call.
  bool reads_tensor = false;
  View tensor;
};

// The {rows, width} tensor a view describes, rows `stride` floats apart.
inline dnnl::memory::desc ViewMd(const View& v, int64_t rows) {
  return dnnl::memory::desc({rows, v.width}, dnnl::memory::data_type::f32,
                            dnnl::memory::dims{v.stride, 1});
}

struct LayerOps {
  std::vector<ElementOp> fused;  // post-ops of the layer's primitive, in order
  std::vector<ElementOp> after;  // run after it, in order, each its own primitive
};

// Lowers a layer's `activations` (per-feature values are copied into {1, N}
// tensors on `cpu`). Per-feature values must number 1 or N (MlpEngine::Create
// checks).
LayerOps LowerActivations(const std::vector<Activation>& activations, const dnnl::engine& cpu);
// The same for a dense step's activations and what it absorbed (residual
// adds, further activations), in order.
LayerOps LowerPostItems(const std::vector<PostItem>& items, const dnnl::engine& cpu);
// Moves every fused operation from the first one reading a tensor onwards to
// `after` (for a primitive that refuses such a binary post-op); false when
// none reads a tensor.
bool UnfuseTensorOperands(LayerOps* ops);

// The fused part as post-ops for a batch of `rows`; binary post-op k reads
// its operand from execution argument DNNL_ARG_ATTR_MULTIPLE_POST_OP(k) |
// DNNL_ARG_SRC_1.
dnnl::post_ops FusedPostOps(const LayerOps& ops, int64_t rows);

// The desc of `op`'s operand for a batch of `rows`.
dnnl::memory::desc OperandMd(const ElementOp& op, int64_t rows);

// A primitive running `op` in place on a tensor of `dst_md` (user
// scratchpad, whose desc goes to *scratch_md).
dnnl::primitive AfterPrimitive(const ElementOp& op, const dnnl::memory::desc& dst_md, int64_t rows,
                               const dnnl::engine& cpu, dnnl::memory::desc* scratch_md);

}  // namespace selu::core::engine_internal

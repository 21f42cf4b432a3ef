// MlpEngine's private parts, shared by the files that build an engine
// (mlp_engine.cc: specs, weights, plans) and the ones that run it
// (mlp_engine_run.cc: workspaces, Run). Not to be included outside
// server/core/engine.
#pragma once

#include <omp.h>

#include <cstdlib>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <new>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "server/core/engine/graph_program.h"
#include "server/core/engine/layer_ops.h"
#include "server/core/engine/mlp_engine.h"

namespace selu::core {
namespace engine_internal {
using dnnl::memory;

// A memory object without a buffer: its handle is set before use.
inline void* const kNoBuffer = nullptr;

inline Status FromDnnlError(const char* what, const dnnl::error& e) {
  return InternalError(std::string(what) + ": oneDNN error " + std::to_string(e.status) + ": " +
                       e.what());
}

inline void UseThreads(int threads) {
  if (omp_get_max_threads() != threads) omp_set_num_threads(threads);
}

// 64-byte aligned growable float buffer.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { std::free(data_); }

  // Returns true when the buffer moved.
  bool Reserve(size_t bytes) {
    if (bytes <= capacity_) return false;
    const size_t rounded = (bytes + 63) / 64 * 64;
    void* fresh = std::aligned_alloc(64, rounded);
    if (fresh == nullptr) throw std::bad_alloc();
    std::free(data_);
    data_ = fresh;
    capacity_ = rounded;
    return true;
  }
  void* data() const { return data_; }

 private:
  void* data_ = nullptr;
  size_t capacity_ = 0;
};

// One operation of the program for one batch size.
struct OpPlan {
  dnnl::primitive prim;  // none for kActivate (its steps are all in `after`)
  bool has_prim = false;
  memory::desc src_md, src1_md, dst_md, scratch_md;
  memory weights, bias;  // kDense
  // kDense with bf16 weights: the layer's fp32 input converted to the dense
  // bf16 tensor the primitive reads (src_md), in the workspace's convert
  // buffer.
  dnnl::primitive convert;
  bool has_convert = false;
  memory::desc convert_src_md, convert_scratch_md;
  // Run after it, in place on dst (layer_ops.h), and their scratchpads.
  std::vector<dnnl::primitive> after;
  std::vector<memory::desc> after_scratch_mds;
};

// The primitives for one batch size. Immutable once built; shared by
// workspaces through shared_ptr.
struct BatchPlan {
  int64_t rows = 0;
  std::vector<OpPlan> ops;  // as Impl::program.ops
  size_t max_scratch_bytes = 0;
};

// One operation bound to a workspace's buffers.
struct BoundOp {
  std::unordered_map<int, memory> args;
  std::unordered_map<int, memory> convert_args;  // OpPlan::convert's
  std::vector<std::unordered_map<int, memory>> after_args;
};

// Per-thread execution state for one batch size.
struct BoundBatchPlan {
  std::shared_ptr<const BatchPlan> plan;
  std::vector<BoundOp> ops;
  // Memories over the packed input or output, pointed there per call.
  std::vector<std::pair<memory, View>> io;
  // Memories over the workspace's slots and scratchpad, pointed there when
  // the buffers move.
  std::vector<std::pair<memory, View>> slots;
  std::vector<memory> scratch;
  // Memories over the workspace's bf16 convert buffer.
  std::vector<memory> converted;
  uint64_t bound_generation = 0;  // buffer generation the intermediates point into
};

}  // namespace engine_internal

using engine_internal::AlignedBuffer;
using engine_internal::BatchPlan;
using engine_internal::BoundBatchPlan;
using engine_internal::BoundOp;
using engine_internal::OpPlan;

struct MlpEngine::Impl {
  using memory = dnnl::memory;
  // Its layers' weights are released once reordered (WeightsIn, under mu);
  // everything else in it is immutable after Create.
  mutable ModelSpec spec;
  MlpEngineOptions options;
  dnnl::engine cpu;
  // The graph as a list of operations over placed tensors (graph_program.h).
  engine_internal::GraphProgram program;
  // Per operation: its element-wise operations (kDense: after the affine
  // part; kActivate: all of them), with their constant operands.
  std::vector<engine_internal::LayerOps> op_ops;
  // Bytes per row of the bf16 convert buffer (bf16 weights; else 0).
  int64_t convert_row_bytes = 0;
  // Floats per row before each slot in a workspace's slot buffer, and in all.
  std::vector<int64_t> slot_offsets;
  int64_t slot_row_floats = 0;
  int64_t widest_observed = 0;  // widest strided dense output, for the observer's copy
  // From the spec, plain layout with inner product's {out, in} dims; empty
  // once the layer has a reordered copy.
  mutable std::vector<memory> plain_weights;
  std::vector<memory> biases;     // {out}: inner product's
  std::vector<memory> bias_rows;  // {1, out} over the same floats: matmul's

  mutable std::mutex mu;  // guards everything below
  mutable std::unordered_map<int64_t, std::shared_ptr<const BatchPlan>> plans;
  mutable std::deque<int64_t> plan_order;  // build order, for eviction
  // Weights already reordered, per layer, keyed by the layout a primitive
  // asked for; usually one layout per layer and primitive whatever the batch
  // size. Held with inner product's {out, in} dims: a matmul's {in, out}
  // layout is the same bytes with the axes swapped (memory::desc::permute_axes).
  mutable std::vector<std::list<memory>> reordered_weights;

  mutable std::mutex pool_mu;
  mutable std::vector<std::unique_ptr<Workspace>> pool;

  // Whether layer `layer` runs as a matmul at `rows` rows.
  bool UsesMatmul(size_t layer, int64_t rows) const;
  StatusOr<std::shared_ptr<const BatchPlan>> GetPlan(int64_t rows) const;
  StatusOr<std::shared_ptr<const BatchPlan>> BuildPlan(int64_t rows) const;  // requires mu
  // requires mu
  memory WeightsIn(size_t layer, const memory::desc& want, bool matmul, dnnl::stream& s) const;
  // Makes `ws` ready for `rows`: finds or binds its plan, sizes the buffers
  // and points the intermediate tensors at them.
  StatusOr<BoundBatchPlan*> Prepare(Workspace::State& ws, int64_t rows) const;
};

struct MlpEngine::Workspace::State {
  explicit State(const dnnl::engine& cpu) : stream(cpu) {}

  dnnl::stream stream;
  AlignedBuffer slots;    // every intermediate slot, one after another
  AlignedBuffer observe;  // a strided tensor copied for the observer
  AlignedBuffer scratch;
  AlignedBuffer convert;    // a dense layer's input in bf16 (bf16 weights)
  uint64_t generation = 1;  // bumped whenever a buffer moves
  std::unordered_map<int64_t, BoundBatchPlan> plans;
};

}  // namespace selu::core

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

// The primitives for one batch size. Immutable once built; shared by
// workspaces through shared_ptr.
struct BatchPlan {
  int64_t rows = 0;
  std::vector<dnnl::primitive> layers;
  std::vector<memory::desc> src_mds, dst_mds, scratch_mds;
  std::vector<memory> weights;  // in the layout each primitive wants
  std::vector<memory> biases;
  // Per layer: the operations run in place on its output after it (usually
  // none; layer_ops.h), and their scratchpads.
  std::vector<std::vector<dnnl::primitive>> after;
  std::vector<std::vector<memory::desc>> after_scratch_mds;
  bool has_after = false;
  bool has_softmax = false;
  dnnl::primitive softmax;
  memory::desc softmax_md, softmax_scratch_md;
  size_t max_scratch_bytes = 0;
};

// Per-thread execution state for one batch size.
struct BoundBatchPlan {
  std::shared_ptr<const BatchPlan> plan;
  std::vector<memory> src, dst, scratch;
  std::vector<std::unordered_map<int, memory>> args;
  memory softmax_data, softmax_scratch;
  std::unordered_map<int, memory> softmax_args;
  // As plan->after.
  std::vector<std::vector<memory>> after_scratch;
  std::vector<std::vector<std::unordered_map<int, memory>>> after_args;
  uint64_t bound_generation = 0;  // buffer generation the intermediates point into
};

}  // namespace engine_internal

using engine_internal::AlignedBuffer;
using engine_internal::BatchPlan;
using engine_internal::BoundBatchPlan;

struct MlpEngine::Impl {
  using memory = dnnl::memory;
  // Its layers' weights are released once reordered (WeightsIn, under mu);
  // everything else in it is immutable after Create.
  mutable ModelSpec spec;
  MlpEngineOptions options;
  dnnl::engine cpu;
  // From the spec, plain layout; empty once the layer has a reordered copy.
  mutable std::vector<memory> plain_weights;
  std::vector<memory> biases;
  // Per layer: its activations as oneDNN operations, with their constant
  // operands (per-feature values).
  std::vector<engine_internal::LayerOps> layer_ops;
  int64_t max_hidden_width = 0;  // widest intermediate tensor, for workspace buffers

  mutable std::mutex mu;  // guards everything below
  mutable std::unordered_map<int64_t, std::shared_ptr<const BatchPlan>> plans;
  mutable std::deque<int64_t> plan_order;  // build order, for eviction
  // Weights already reordered, per layer, keyed by the layout a primitive
  // asked for; usually one layout per layer whatever the batch size.
  mutable std::vector<std::list<memory>> reordered_weights;

  mutable std::mutex pool_mu;
  mutable std::vector<std::unique_ptr<Workspace>> pool;

  StatusOr<std::shared_ptr<const BatchPlan>> GetPlan(int64_t rows) const;
  StatusOr<std::shared_ptr<const BatchPlan>> BuildPlan(int64_t rows) const;         // requires mu
  memory WeightsIn(size_t layer, const memory::desc& want, dnnl::stream& s) const;  // requires mu
  // Makes `ws` ready for `rows`: finds or binds its plan, sizes the buffers
  // and points the intermediate tensors at them.
  StatusOr<BoundBatchPlan*> Prepare(Workspace::State& ws, int64_t rows) const;
};

struct MlpEngine::Workspace::State {
  explicit State(const dnnl::engine& cpu) : stream(cpu) {}

  dnnl::stream stream;
  AlignedBuffer intermediate[2];
  AlignedBuffer scratch;
  uint64_t generation = 1;  // bumped whenever a buffer moves
  std::unordered_map<int64_t, BoundBatchPlan> plans;
};

}  // namespace selu::core

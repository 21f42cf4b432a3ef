// MlpEngine: runs a ModelSpec on the CPU through oneDNN.
//
// Each dense layer is one oneDNN primitive (inner product or matmul, chosen by
// MlpEngineOptions::primitive, per batch size with kAuto) with its bias and
// activations fused as post-ops
// (SELU = eltwise_elu(α) then eltwise_linear(λ)); where oneDNN 2.6 cannot fuse
// the rest of a layer's chain (a per-channel PReLU, an eltwise algorithm
// repeated with other parameters), the remaining steps run as in-place
// primitives on the layer's output (layer_ops.h). A final softmax, if any, is
// a softmax primitive run in place. Weights are reordered once into the layout
// the primitive prefers. Primitives are built once per batch size ("plan") and
// reused; plans are shared by all workspaces and bounded in number.
//
// bf16 weights (MlpEngineOptions::weights): each dense layer keeps its
// weights in bf16 (half the bytes a weight-bound layer streams) and runs a
// bf16×bf16 primitive accumulating in fp32, with fp32 bias, post-ops and
// output. oneDNN 2.6's CPU kernels take no fp32 source with bf16 weights, so
// a layer's input is first converted to bf16 (a reorder into the workspace).
// Every other tensor of the graph (inputs, outputs, residuals, concatenations,
// softmax, what an observer sees) stays fp32, so every graph the fp32 engine
// runs also runs with bf16 weights.
//
// Threading: an MlpEngine is immutable after Create() except for its plan
// cache, which is internally synchronised; Run() may be called concurrently
// from many threads, each with its own Workspace. A Workspace holds a oneDNN
// stream, intermediate buffers, scratchpad and per-batch-size execution
// arguments; it is not thread-safe, must be used by one thread at a time and
// must not outlive its engine. The hot path (a batch size the workspace has
// seen before) takes no lock and allocates nothing.
//
// oneDNN is run with `threads_per_call` OpenMP threads in the calling thread
// (default 1): parallelism comes from running several workspaces at once.
//
// Non-finite inputs are not checked here (the transport rejects them): NaN
// propagates to the outputs of the rows that contain it, ±inf follow IEEE
// arithmetic through the affine part and the activations.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "server/core/base/status.h"
#include "server/core/model/model_spec.h"

namespace selu::core {

enum class EnginePrimitive {
  kInnerProduct,  // dnnl::inner_product_forward
  kMatmul,        // dnnl::matmul
  kAuto,          // per layer and batch size, by AutoPicksMatmul()
};

enum class WeightsPrecision {
  kFp32,
  kBf16,  // bf16 weights, fp32 accumulation, fp32 in and out (needs CpuHasBf16())
};

struct MlpEngineOptions {
  // Which oneDNN primitive computes each dense layer (see bench/ for figures).
  // A layer reading or writing a strided view (a concatenation's part) is a
  // matmul whatever this says.
  EnginePrimitive primitive = EnginePrimitive::kAuto;
  // How dense layers store their weights.
  WeightsPrecision weights = WeightsPrecision::kFp32;
  // Most batch sizes with a built plan at once; the least recently built is
  // dropped beyond it (workspaces keep theirs alive until they drop it too).
  int max_cached_plans = 256;
  // OpenMP threads one Run() may use.
  int threads_per_call = 1;
  // Largest rows accepted by Run(); INVALID_ARGUMENT beyond it.
  int64_t max_rows = 1 << 16;
};

// The instruction set oneDNN dispatches to on this machine ("avx2",
// "avx512_core_amx", ...), for logs, metrics and benchmark reports.
std::string CpuIsaName();

// Whether oneDNN has native bf16 kernels here (AVX512-BF16 or AMX).
// MlpEngine::Create refuses WeightsPrecision::kBf16 without them: emulated
// bf16 would be slower than fp32, the opposite of what was asked for.
bool CpuHasBf16();

// EnginePrimitive::kAuto's rule: whether a dense layer of these shapes at
// this batch size runs as a matmul rather than an inner product. A pure
// function of its arguments (derived from bench/engine_bench.cc on this
// project's machine, see bench/README.md), so plans are reproducible.
bool AutoPicksMatmul(int64_t rows, int64_t in_features, int64_t out_features,
                     WeightsPrecision weights);

// The names config.pbtxt and the flags use: "auto", "inner_product",
// "matmul"; "fp32", "bf16". nullopt for any other name.
std::optional<EnginePrimitive> EnginePrimitiveFromName(std::string_view name);
std::optional<WeightsPrecision> WeightsPrecisionFromName(std::string_view name);

// Sees a Run()'s tensors while they are still in the workspace's buffers
// (the self-normalization monitor): called on the thread that runs, once
// with the input and once after each dense layer with that layer's output
// (after its activations; before the final softmax). Pointers are valid only
// during the call.
class LayerObserver {
 public:
  virtual void OnInput(const float* input, int64_t rows, int64_t features) = 0;
  virtual void OnLayer(int layer, const float* output, int64_t rows, int64_t features) = 0;

 protected:
  ~LayerObserver() = default;
};

class MlpEngine {
 public:
  class Workspace;

  // Builds the engine: validates the spec, reorders weights, and builds the
  // plan for one row. INVALID_ARGUMENT for an inconsistent spec, INTERNAL if
  // oneDNN refuses.
  static StatusOr<std::unique_ptr<MlpEngine>> Create(ModelSpec spec,
                                                     const MlpEngineOptions& options = {});
  ~MlpEngine();
  MlpEngine(const MlpEngine&) = delete;
  MlpEngine& operator=(const MlpEngine&) = delete;

  // The model as given, for its names, shapes and metadata. Its layers'
  // `weights` are emptied once the engine holds them in the layout its
  // primitives want (after Create), so a model is not in memory twice.
  const ModelSpec& spec() const;
  int64_t input_features() const;
  int64_t output_features() const;
  const MlpEngineOptions& options() const;

  // A new workspace for one thread. It must not outlive this engine.
  std::unique_ptr<Workspace> CreateWorkspace() const;

  // Builds the plans for these batch sizes now, so that Run() never pays for
  // primitive creation on them.
  Status Warmup(std::span<const int64_t> batch_sizes) const;

  // Computes `rows` rows: `input` holds rows·input_features() floats,
  // `output` receives rows·output_features() floats. Neither may alias the
  // other. INVALID_ARGUMENT for rows outside [1, max_rows].
  Status Run(Workspace& workspace, const float* input, int64_t rows, float* output) const;
  // The same, showing `observer` every tensor of the call (a sampled batch).
  // The unobserved Run() above does not test for an observer.
  Status Run(Workspace& workspace, const float* input, int64_t rows, float* output,
             LayerObserver& observer) const;

  // Convenience for callers without their own workspace (tests, tools): takes
  // a workspace from an internal pool under a mutex.
  Status Run(const float* input, int64_t rows, float* output) const;

  // Number of batch sizes with a built plan in the shared cache.
  int64_t cached_plan_count() const;

 private:
  struct Impl;
  explicit MlpEngine(std::unique_ptr<Impl> impl);
  template <bool kObserved>
  Status RunImpl(Workspace& workspace, const float* input, int64_t rows, float* output,
                 LayerObserver* observer) const;
  std::unique_ptr<Impl> impl_;
};

// Per-thread execution state (see MlpEngine). Opaque to callers.
class MlpEngine::Workspace {
 public:
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  struct State;  // defined in mlp_engine.cc

 private:
  friend class MlpEngine;
  explicit Workspace(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace selu::core

// BareOneDnnMlp: the baseline the engine is measured against — the fastest
// straightforward oneDNN code for one MLP at one batch size.
//
// Per layer one primitive (inner product or matmul) with its bias and the
// activations fused as post-ops (SELU = eltwise_elu(α) then
// eltwise_linear(λ)), weights reordered once into the layout the primitive
// picked (format_tag::any), activations ping-ponging between two 64-byte
// aligned buffers, one user scratchpad shared by all layers, and all memory
// objects and argument maps built in the constructor: Run() only calls
// execute() per layer and waits on the stream. The input and output buffers
// are bound at construction.
//
// Not thread-safe. oneDNN runs with the calling thread's OpenMP thread count;
// the benchmark sets it to 1.
#pragma once

#include <cstdint>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>
#include <vector>

#include "server/core/engine/mlp_engine.h"
#include "server/core/model/model_spec.h"

namespace selu::bench {

class BareOneDnnMlp {
 public:
  // Throws dnnl::error if oneDNN refuses the model.
  BareOneDnnMlp(const core::ModelSpec& spec, core::EnginePrimitive primitive, int64_t rows,
                const float* input, float* output);

  void Run() {
    for (size_t i = 0; i < primitives_.size(); ++i) primitives_[i].execute(stream_, args_[i]);
    stream_.wait();
  }

 private:
  struct FreeDeleter {
    void operator()(void* p) const;
  };
  using AlignedBuffer = std::unique_ptr<void, FreeDeleter>;
  static AlignedBuffer Allocate(size_t bytes);

  dnnl::engine engine_;
  dnnl::stream stream_;
  std::vector<dnnl::primitive> primitives_;
  std::vector<std::unordered_map<int, dnnl::memory>> args_;
  AlignedBuffer ping_, pong_, scratchpad_;
};

}  // namespace selu::bench

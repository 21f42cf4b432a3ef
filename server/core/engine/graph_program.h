// Private to server/core/engine: a ModelSpec's graph turned into the list of
// operations MlpEngine runs, with every tensor placed in a buffer. No oneDNN
// here: this is the planning, mlp_engine.cc turns it into primitives.
//
// Placement. Every tensor lives in a View: a range of columns of a buffer
// whose rows are `stride` floats apart. Buffers are the packed input (graph
// inputs at their offsets), the packed output (graph outputs at theirs) and
// intermediate slots of the workspace. So a feature selection (kSlice) is a
// view of its source, a concatenation is written in place (its producers
// write into the columns of one buffer; only an operand that already lives
// elsewhere, such as a graph input, is copied), a graph output is written
// by its producer straight into the answer, and two inputs that are adjacent
// in the packed row concatenate for free.
//
// Fusion. A dense step absorbs what follows it while its result has a single
// reader and is no graph output: a kAdd whose other operand is already
// computed (a residual add, fused as a oneDNN binary post-op) and
// kActivate steps (more post-ops). What is not absorbed runs on its own.
//
// Slots. Intermediate buffers live from their first write to their last read
// and share a slot with buffers that do not overlap in time, so a chain
// alternates between two slots as before.
#pragma once

#include <cstdint>
#include <vector>

#include "server/core/base/status.h"
#include "server/core/model/model_spec.h"

namespace selu::core::engine_internal {

inline constexpr int kInputBuffer = 0;
inline constexpr int kOutputBuffer = 1;
// Buffers 2, 3, ...: intermediate slots 0, 1, ...

struct View {
  int buffer = kInputBuffer;
  int64_t offset = 0;  // first column
  int64_t width = 0;   // columns
  int64_t stride = 0;  // floats from one row to the next in the buffer
  bool dense() const { return offset == 0 && width == stride; }
  friend bool operator==(const View&, const View&) = default;
};

// One item after a dense layer's affine part: an activation, or the add of
// another tensor (a residual).
struct PostItem {
  bool is_add = false;
  View addend;                   // is_add
  std::vector<Activation> acts;  // !is_add
};

struct ExecOp {
  enum class Kind { kDense, kCopy, kAdd, kActivate, kSoftmax };
  Kind kind = Kind::kDense;
  int layer = -1;  // kDense
  View src;        // kDense, kCopy, kAdd (first operand)
  View src1;       // kAdd: second operand
  View dst;        // kActivate, kSoftmax: in place on dst
  // kDense: the layer's activations, then what it absorbed.
  std::vector<PostItem> post;
  std::vector<Activation> acts;  // kActivate
  // kDense: which dense step of the spec this is (0, 1, ... in step order);
  // the observer's `layer`.
  int observed = -1;
};

struct GraphProgram {
  std::vector<ExecOp> ops;
  std::vector<int64_t> slot_widths;  // floats per row of each intermediate slot
  // Per layer: true when some use of it reads or writes a strided view (it
  // must then run as a matmul, which takes strides).
  std::vector<bool> layer_needs_strides;
};

// Plans `spec` (complete: CompleteModelSpec has run).
StatusOr<GraphProgram> PlanGraph(const ModelSpec& spec);

}  // namespace selu::core::engine_internal

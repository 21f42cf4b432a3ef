#include "server/core/engine/graph_program.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <string>
#include <utility>

namespace selu::core::engine_internal {
namespace {

// How a tensor gets its floats.
enum class Source {
  kInput,    // a graph input: the packed input
  kAlias,    // a view of another tensor (selection, concatenation of adjacent views, in place)
  kWritten,  // an operation writes it where it is placed
};

struct Planner {
  explicit Planner(const ModelSpec& s) : spec(s) {}

  const ModelSpec& spec;
  size_t n_tensors = 0;
  std::vector<std::vector<int>> readers;  // tensor → steps reading it (with repeats)
  std::vector<int> output_ports;          // tensor → number of output ports naming it
  std::vector<int> producer;              // tensor → step writing it, -1 for inputs
  std::vector<bool> absorbed;             // step → run as part of a dense step before it
  std::vector<int> result;                // step → tensor its unit produces
  std::vector<std::vector<std::pair<bool, int>>> post_plan;  // dense step → (is_add, step)
  std::vector<Source> source;
  std::vector<bool> in_place;                   // step → kActivate/kSoftmax on its input's place
  std::vector<std::optional<View>> input_view;  // tensor → its place when it is a view of inputs
  std::vector<std::optional<View>> want;        // tensor → where its reader would like it
  std::vector<std::optional<View>> home;        // tensor → where it is
  std::vector<int64_t> vbuf_width;              // virtual intermediate buffers
  GraphProgram program;

  View NewBuffer(int64_t width) {
    vbuf_width.push_back(width);
    return View{static_cast<int>(vbuf_width.size()) + 1, 0, width, width};
  }

  void Index() {
    n_tensors = spec.tensors.size();
    readers.assign(n_tensors, {});
    output_ports.assign(n_tensors, 0);
    producer.assign(n_tensors, -1);
    for (size_t s = 0; s < spec.steps.size(); ++s) {
      for (int t : spec.steps[s].inputs)
        readers[static_cast<size_t>(t)].push_back(static_cast<int>(s));
      producer[static_cast<size_t>(spec.steps[s].output)] = static_cast<int>(s);
    }
    for (const TensorPort& p : spec.outputs) ++output_ports[static_cast<size_t>(p.tensor)];
  }

  // A tensor read by exactly one step, once, and not a graph output.
  bool SoleReader(int t, int* step) const {
    const auto& r = readers[static_cast<size_t>(t)];
    if (r.size() != 1 || output_ports[static_cast<size_t>(t)] > 0) return false;
    *step = r[0];
    return true;
  }

  void Fuse() {
    const size_t n = spec.steps.size();
    absorbed.assign(n, false);
    result.assign(n, -1);
    post_plan.assign(n, {});
    for (size_t s = 0; s < n; ++s) result[s] = spec.steps[s].output;
    for (const DenseGroup& g : GroupDenseSteps(spec)) {
      const size_t d = static_cast<size_t>(g.step);
      for (int k : g.absorbed) {
        absorbed[static_cast<size_t>(k)] = true;
        post_plan[d].push_back({spec.steps[static_cast<size_t>(k)].kind == StepKind::kAdd, k});
      }
      result[d] = g.result;
    }
  }

  void Classify() {
    source.assign(n_tensors, Source::kWritten);
    in_place.assign(spec.steps.size(), false);
    input_view.assign(n_tensors, std::nullopt);
    for (const TensorPort& p : spec.inputs) {
      source[static_cast<size_t>(p.tensor)] = Source::kInput;
      input_view[static_cast<size_t>(p.tensor)] =
          View{kInputBuffer, p.offset, p.features, spec.input_features};
    }
    for (size_t s = 0; s < spec.steps.size(); ++s) {
      if (absorbed[s]) continue;
      const GraphStep& step = spec.steps[s];
      const size_t out = static_cast<size_t>(result[s]);
      const int in = step.inputs[0];
      switch (step.kind) {
        case StepKind::kSlice:
          source[out] = Source::kAlias;
          if (input_view[static_cast<size_t>(in)]) {
            View v = *input_view[static_cast<size_t>(in)];
            v.offset += step.offset;
            v.width = spec.tensors[out].features;
            input_view[out] = v;
          }
          break;
        case StepKind::kConcat: {
          // Adjacent views of the packed input concatenate for free.
          std::optional<View> joined;
          for (int t : step.inputs) {
            const auto& v = input_view[static_cast<size_t>(t)];
            if (!v || (joined && v->offset != joined->offset + joined->width)) {
              joined.reset();
              break;
            }
            if (!joined) {
              joined = v;
            } else {
              joined->width += v->width;
            }
          }
          if (joined) {
            source[out] = Source::kAlias;
            input_view[out] = joined;
          }
          break;
        }
        case StepKind::kActivate:
        case StepKind::kSoftmax: {
          int only = -1;
          // Not on a concatenation: the tensors placed inside it may still
          // be read.
          const int from = producer[static_cast<size_t>(in)];
          const bool concat =
              from >= 0 && spec.steps[static_cast<size_t>(from)].kind == StepKind::kConcat;
          if (source[static_cast<size_t>(in)] == Source::kWritten && !concat &&
              SoleReader(in, &only)) {
            in_place[s] = true;
            source[out] = Source::kAlias;
          }
          break;
        }
        default:
          break;
      }
    }
  }

  // Backwards: where readers want tensors written (outputs into the answer,
  // concatenation operands into their concatenation).
  void Wishes() {
    want.assign(n_tensors, std::nullopt);
    home.assign(n_tensors, std::nullopt);
    for (const TensorPort& p : spec.outputs) {
      const size_t t = static_cast<size_t>(p.tensor);
      if (!want[t]) want[t] = View{kOutputBuffer, p.offset, p.features, spec.output_features};
    }
    for (size_t s = spec.steps.size(); s-- > 0;) {
      if (absorbed[s]) continue;
      const GraphStep& step = spec.steps[s];
      const size_t out = static_cast<size_t>(result[s]);
      if (in_place[s]) {
        if (want[out]) want[static_cast<size_t>(step.inputs[0])] = want[out];
        continue;
      }
      if (step.kind != StepKind::kConcat || source[out] == Source::kAlias) continue;
      const View whole = want[out] ? *want[out] : NewBuffer(spec.tensors[out].features);
      home[out] = whole;
      int64_t col = 0;
      for (size_t i = 0; i < step.inputs.size(); ++i) {
        const size_t x = static_cast<size_t>(step.inputs[i]);
        const bool repeated =
            std::count(step.inputs.begin(), step.inputs.end(), step.inputs[i]) > 1;
        if (source[x] == Source::kWritten && !want[x] && !repeated) {
          want[x] = View{whole.buffer, whole.offset + col, spec.tensors[x].features, whole.stride};
        }
        col += spec.tensors[x].features;
      }
    }
  }

  View Place(size_t t) {
    if (!home[t]) home[t] = want[t] ? *want[t] : NewBuffer(spec.tensors[t].features);
    return *home[t];
  }

  void Emit(ExecOp op) { program.ops.push_back(std::move(op)); }

  void Copy(const View& from, const View& to) {
    ExecOp op;
    op.kind = ExecOp::Kind::kCopy;
    op.src = from;
    op.dst = to;
    Emit(std::move(op));
  }

  void Forward() {
    for (const TensorPort& p : spec.inputs)
      home[static_cast<size_t>(p.tensor)] = input_view[static_cast<size_t>(p.tensor)];
    int dense_ordinal = 0;
    for (size_t s = 0; s < spec.steps.size(); ++s) {
      if (absorbed[s]) continue;
      const GraphStep& step = spec.steps[s];
      const size_t out = static_cast<size_t>(result[s]);
      const View in = step.inputs.empty() ? View{} : *home[static_cast<size_t>(step.inputs[0])];
      switch (step.kind) {
        case StepKind::kDense: {
          ExecOp op;
          op.kind = ExecOp::Kind::kDense;
          op.layer = step.layer;
          op.observed = dense_ordinal;
          op.src = in;
          const auto& acts = spec.layers[static_cast<size_t>(step.layer)].activations;
          if (!acts.empty()) op.post.push_back(PostItem{false, {}, acts});
          int cur = step.output;
          for (const auto& [is_add, k] : post_plan[s]) {
            const GraphStep& a = spec.steps[static_cast<size_t>(k)];
            if (is_add) {
              const int other = a.inputs[0] == cur ? a.inputs[1] : a.inputs[0];
              op.post.push_back(PostItem{true, *home[static_cast<size_t>(other)], {}});
            } else {
              op.post.push_back(PostItem{false, {}, a.activations});
            }
            cur = a.output;
          }
          op.dst = Place(out);
          Emit(std::move(op));
          break;
        }
        case StepKind::kAdd: {
          ExecOp op;
          op.kind = ExecOp::Kind::kAdd;
          op.src = in;
          op.src1 = *home[static_cast<size_t>(step.inputs[1])];
          op.dst = Place(out);
          Emit(std::move(op));
          break;
        }
        case StepKind::kSlice: {
          View v = in;
          v.offset += step.offset;
          v.width = spec.tensors[out].features;
          home[out] = v;
          break;
        }
        case StepKind::kConcat: {
          if (source[out] == Source::kAlias) {
            home[out] = input_view[out];
            break;
          }
          const View whole = *home[out];
          int64_t col = 0;
          for (int x : step.inputs) {
            const View part{whole.buffer, whole.offset + col,
                            spec.tensors[static_cast<size_t>(x)].features, whole.stride};
            if (!(*home[static_cast<size_t>(x)] == part)) Copy(*home[static_cast<size_t>(x)], part);
            col += part.width;
          }
          break;
        }
        case StepKind::kActivate:
        case StepKind::kSoftmax: {
          View place = in;
          if (in_place[s]) {
            home[out] = in;
          } else {
            place = Place(out);
            Copy(in, place);
          }
          ExecOp op;
          op.kind =
              step.kind == StepKind::kActivate ? ExecOp::Kind::kActivate : ExecOp::Kind::kSoftmax;
          op.dst = place;
          op.acts = step.activations;
          Emit(std::move(op));
          break;
        }
      }
      if (step.kind == StepKind::kDense) ++dense_ordinal;
    }
    // Outputs not written in place in the answer (views of inputs, a tensor
    // named by two outputs, an operand already placed elsewhere).
    for (const TensorPort& p : spec.outputs) {
      const View to{kOutputBuffer, p.offset, p.features, spec.output_features};
      const View from = *home[static_cast<size_t>(p.tensor)];
      if (!(from == to)) Copy(from, to);
    }
  }

  // Intermediate buffers → slots, by lifetime.
  void AssignSlots() {
    const size_t nv = vbuf_width.size();
    constexpr int kNever = std::numeric_limits<int>::max();
    std::vector<int> first(nv, kNever), last(nv, -1);
    auto touch = [&](const View& v, int i, bool write) {
      if (v.buffer < 2) return;
      const size_t b = static_cast<size_t>(v.buffer - 2);
      if (write) first[b] = std::min(first[b], i);
      last[b] = std::max(last[b], i);
    };
    for (size_t i = 0; i < program.ops.size(); ++i) {
      const ExecOp& op = program.ops[i];
      const int k = static_cast<int>(i);
      if (op.kind == ExecOp::Kind::kDense || op.kind == ExecOp::Kind::kCopy ||
          op.kind == ExecOp::Kind::kAdd) {
        touch(op.src, k, false);
      }
      if (op.kind == ExecOp::Kind::kAdd) touch(op.src1, k, false);
      for (const PostItem& p : op.post) {
        if (p.is_add) touch(p.addend, k, false);
      }
      touch(op.dst, k, true);
    }
    std::vector<size_t> order(nv);
    for (size_t i = 0; i < nv; ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return first[a] < first[b]; });
    std::vector<int> slot_of(nv, -1);
    std::vector<int> slot_free_after;  // the last op reading the slot's current buffer
    for (size_t v : order) {
      if (first[v] == kNever) first[v] = last[v];
      // The narrowest free slot that fits; else the widest free one (grown).
      int best = -1;
      for (size_t s = 0; s < slot_free_after.size(); ++s) {
        if (slot_free_after[s] >= first[v]) continue;
        if (best < 0) {
          best = static_cast<int>(s);
          continue;
        }
        const int64_t w = program.slot_widths[s];
        const int64_t bw = program.slot_widths[static_cast<size_t>(best)];
        const int64_t need = vbuf_width[v];
        if (w >= need ? (bw < need || w < bw) : (bw < need && w > bw)) best = static_cast<int>(s);
      }
      if (best < 0) {
        best = static_cast<int>(slot_free_after.size());
        slot_free_after.push_back(-1);
        program.slot_widths.push_back(0);
      }
      const size_t b = static_cast<size_t>(best);
      program.slot_widths[b] = std::max(program.slot_widths[b], vbuf_width[v]);
      slot_free_after[b] = std::max(last[v], first[v]);
      slot_of[v] = best;
    }
    auto remap = [&](View& view) {
      if (view.buffer >= 2) view.buffer = 2 + slot_of[static_cast<size_t>(view.buffer - 2)];
    };
    for (ExecOp& op : program.ops) {
      remap(op.src);
      remap(op.src1);
      remap(op.dst);
      for (PostItem& p : op.post) {
        if (p.is_add) remap(p.addend);
      }
    }
  }

  void MarkStrided() {
    program.layer_needs_strides.assign(spec.layers.size(), false);
    for (const ExecOp& op : program.ops) {
      if (op.kind == ExecOp::Kind::kDense && (!op.src.dense() || !op.dst.dense())) {
        program.layer_needs_strides[static_cast<size_t>(op.layer)] = true;
      }
    }
  }
};

}  // namespace

StatusOr<GraphProgram> PlanGraph(const ModelSpec& spec) {
  if (spec.steps.empty() || spec.inputs.empty() || spec.outputs.empty()) {
    return InvalidArgumentError("model spec is not complete (CompleteModelSpec has not run)");
  }
  Planner p(spec);
  p.Index();
  p.Fuse();
  p.Classify();
  p.Wishes();
  p.Forward();
  p.AssignSlots();
  p.MarkStrided();
  return std::move(p.program);
}

}  // namespace selu::core::engine_internal

// MlpEngine on graph specs (several inputs and outputs, heads sharing a
// trunk, residual adds, concatenations, feature selections, shared layers,
// activations and softmax after joins) against a double-precision
// interpreter of the spec written here, independent of the engine's
// planner: fixed graphs for each placement case, then random graphs; each
// with fp32 and (where the CPU has native bf16) bf16 weights.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "server/core/engine/mlp_engine.h"

namespace selu::core {
namespace {

class Builder {
 public:
  explicit Builder(uint32_t seed) : rng_(seed) {}

  int Input(const std::string& name, int64_t features) {
    const int t = Tensor(name, features);
    TensorPort p;
    p.name = name;
    p.shape = {-1, features};
    p.features = features;
    p.tensor = t;
    spec.inputs.push_back(p);
    return t;
  }
  void Output(const std::string& name, int t) {
    TensorPort p;
    p.name = name;
    p.features = spec.tensors[static_cast<size_t>(t)].features;
    p.shape = {-1, p.features};
    p.tensor = t;
    spec.outputs.push_back(p);
  }
  int NewLayer(int64_t in, int64_t out, std::vector<Activation> acts) {
    DenseLayer l;
    l.name = "layer" + std::to_string(spec.layers.size());
    l.in_features = in;
    l.out_features = out;
    std::normal_distribution<float> w(0.0f, 1.0f / std::sqrt(float(in)));
    std::normal_distribution<float> b(0.0f, 0.1f);
    for (int64_t k = 0; k < in * out; ++k) l.weights.push_back(w(rng_));
    for (int64_t k = 0; k < out; ++k) l.bias.push_back(b(rng_));
    l.activations = std::move(acts);
    spec.layers.push_back(std::move(l));
    return static_cast<int>(spec.layers.size()) - 1;
  }
  int DenseWith(int layer, int x) {
    GraphStep s = Step(StepKind::kDense, {x}, spec.layers[static_cast<size_t>(layer)].out_features);
    s.layer = layer;
    return Push(std::move(s));
  }
  int Dense(int x, int64_t out, std::vector<Activation> acts = {Activation::Selu()}) {
    return DenseWith(NewLayer(Features(x), out, std::move(acts)), x);
  }
  int Add(int a, int b) { return Push(Step(StepKind::kAdd, {a, b}, Features(a))); }
  int Concat(std::vector<int> xs) {
    int64_t f = 0;
    for (int x : xs) f += Features(x);
    return Push(Step(StepKind::kConcat, std::move(xs), f));
  }
  int Slice(int x, int64_t offset, int64_t features) {
    GraphStep s = Step(StepKind::kSlice, {x}, features);
    s.offset = offset;
    return Push(std::move(s));
  }
  int Activate(int x, std::vector<Activation> acts) {
    GraphStep s = Step(StepKind::kActivate, {x}, Features(x));
    s.activations = std::move(acts);
    return Push(std::move(s));
  }
  int Softmax(int x) { return Push(Step(StepKind::kSoftmax, {x}, Features(x))); }
  int64_t Features(int t) const { return spec.tensors[static_cast<size_t>(t)].features; }

  ModelSpec spec;

 private:
  int Tensor(const std::string& name, int64_t features) {
    spec.tensors.push_back({name, features});
    return static_cast<int>(spec.tensors.size()) - 1;
  }
  GraphStep Step(StepKind kind, std::vector<int> inputs, int64_t features) {
    GraphStep s;
    s.kind = kind;
    s.name = "step" + std::to_string(spec.steps.size());
    s.inputs = std::move(inputs);
    s.output = Tensor(s.name, features);
    return s;
  }
  int Push(GraphStep s) {
    const int out = s.output;
    spec.steps.push_back(std::move(s));
    return out;
  }
  std::mt19937 rng_;
};

// The spec evaluated step by step in double, on packed rows.
std::vector<double> Reference(const ModelSpec& spec, const std::vector<float>& packed,
                              int64_t rows) {
  std::vector<std::vector<double>> t(spec.tensors.size());
  for (const TensorPort& p : spec.inputs) {
    auto& v = t[static_cast<size_t>(p.tensor)];
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < p.features; ++j) {
        v.push_back(packed[static_cast<size_t>(r * spec.input_features + p.offset + j)]);
      }
    }
  }
  for (const GraphStep& s : spec.steps) {
    const int64_t out_f = spec.tensors[static_cast<size_t>(s.output)].features;
    const auto& a = t[static_cast<size_t>(s.inputs[0])];
    const int64_t in_f = spec.tensors[static_cast<size_t>(s.inputs[0])].features;
    std::vector<double> y(static_cast<size_t>(rows * out_f));
    for (int64_t r = 0; r < rows; ++r) {
      double* row = &y[static_cast<size_t>(r * out_f)];
      const double* x = &a[static_cast<size_t>(r * in_f)];
      switch (s.kind) {
        case StepKind::kDense: {
          const DenseLayer& l = spec.layers[static_cast<size_t>(s.layer)];
          for (int64_t n = 0; n < out_f; ++n) {
            double acc = l.bias[static_cast<size_t>(n)];
            for (int64_t k = 0; k < in_f; ++k) {
              acc += x[k] * double(l.weights[static_cast<size_t>(k * out_f + n)]);
            }
            for (const Activation& act : l.activations) acc = ReferenceActivation(act, acc, n);
            row[n] = acc;
          }
          break;
        }
        case StepKind::kAdd: {
          const auto& b = t[static_cast<size_t>(s.inputs[1])];
          for (int64_t n = 0; n < out_f; ++n) row[n] = x[n] + b[static_cast<size_t>(r * out_f + n)];
          break;
        }
        case StepKind::kConcat: {
          int64_t col = 0;
          for (int id : s.inputs) {
            const int64_t f = spec.tensors[static_cast<size_t>(id)].features;
            const auto& v = t[static_cast<size_t>(id)];
            for (int64_t j = 0; j < f; ++j) row[col + j] = v[static_cast<size_t>(r * f + j)];
            col += f;
          }
          break;
        }
        case StepKind::kSlice:
          for (int64_t n = 0; n < out_f; ++n) row[n] = x[s.offset + n];
          break;
        case StepKind::kActivate:
          for (int64_t n = 0; n < out_f; ++n) {
            double v = x[n];
            for (const Activation& act : s.activations) v = ReferenceActivation(act, v, n);
            row[n] = v;
          }
          break;
        case StepKind::kSoftmax: {
          double mx = -INFINITY, sum = 0;
          for (int64_t n = 0; n < out_f; ++n) mx = std::max(mx, x[n]);
          for (int64_t n = 0; n < out_f; ++n) sum += std::exp(x[n] - mx);
          for (int64_t n = 0; n < out_f; ++n) row[n] = std::exp(x[n] - mx) / sum;
          break;
        }
      }
    }
    t[static_cast<size_t>(s.output)] = std::move(y);
  }
  std::vector<double> packed_out;
  for (int64_t r = 0; r < rows; ++r) {
    for (const TensorPort& p : spec.outputs) {
      const auto& v = t[static_cast<size_t>(p.tensor)];
      for (int64_t j = 0; j < p.features; ++j)
        packed_out.push_back(v[static_cast<size_t>(r * p.features + j)]);
    }
  }
  return packed_out;
}

// Observes every dense output, to check the observer sees what the graph
// computes (by count and width).
struct CountingObserver final : LayerObserver {
  void OnInput(const float*, int64_t, int64_t features) override { input_features = features; }
  void OnLayer(int layer, const float* y, int64_t rows, int64_t features) override {
    layers.push_back(layer);
    widths.push_back(features);
    double s = 0;
    for (int64_t i = 0; i < rows * features; ++i) s += y[i];
    sums.push_back(s);
  }
  int64_t input_features = 0;
  std::vector<int> layers;
  std::vector<int64_t> widths;
  std::vector<double> sums;
};

// bf16 keeps 8 significant bits: each weight and each layer input is off by
// at most 2^-9 relative, so a product by 2^-8. A layer of width n with
// inputs ~N(0, 1) and weights ~N(0, 1/n) has Σ|x·w| ≈ 0.64·√n, so its output
// is off by at most ≈ 2^-8·0.64·√n ≤ 0.02 for the widths here (≤ 64); the
// errors of a chain add up (SELU's gain is about 1), and a few dense steps
// deep that stays under 0.06 even with the rounding errors all of one sign.
constexpr double kBf16Tolerance = 0.06;

void ExpectMatches(ModelSpec spec, const std::string& what) {
  // The engine empties its copy's weights: the reference keeps its own.
  ModelSpec complete = spec;
  ASSERT_TRUE(CompleteModelSpec(complete).ok()) << what;
  std::vector<std::pair<EnginePrimitive, WeightsPrecision>> variants = {
      {EnginePrimitive::kInnerProduct, WeightsPrecision::kFp32},
      {EnginePrimitive::kMatmul, WeightsPrecision::kFp32},
      {EnginePrimitive::kAuto, WeightsPrecision::kFp32}};
  if (CpuHasBf16()) {
    variants.push_back({EnginePrimitive::kInnerProduct, WeightsPrecision::kBf16});
    variants.push_back({EnginePrimitive::kMatmul, WeightsPrecision::kBf16});
  }
  for (const auto& [prim, precision] : variants) {
    const bool bf16 = precision == WeightsPrecision::kBf16;
    const std::string variant =
        std::string(prim == EnginePrimitive::kMatmul         ? " matmul"
                    : prim == EnginePrimitive::kInnerProduct ? " inner product"
                                                             : " auto") +
        (bf16 ? " bf16" : " fp32");
    MlpEngineOptions options;
    options.primitive = prim;
    options.weights = precision;
    auto engine = MlpEngine::Create(spec, options);
    ASSERT_TRUE(engine.ok()) << what << ": " << engine.status().message();
    auto ws = (*engine)->CreateWorkspace();
    std::mt19937 rng(7);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    for (int64_t rows : {1, 3, 17, 64, 3}) {
      std::vector<float> in(static_cast<size_t>(rows * complete.input_features));
      for (float& v : in) v = dist(rng);
      std::vector<float> out(static_cast<size_t>(rows * complete.output_features), NAN);
      CountingObserver observer;
      const bool observed = rows == 17;
      Status st = observed ? (*engine)->Run(*ws, in.data(), rows, out.data(), observer)
                           : (*engine)->Run(*ws, in.data(), rows, out.data());
      ASSERT_TRUE(st.ok()) << what << ": " << st.message();
      const std::vector<double> want = Reference(complete, in, rows);
      ASSERT_EQ(want.size(), out.size()) << what;
      double worst = 0;
      for (size_t i = 0; i < out.size(); ++i) worst = std::max(worst, std::abs(out[i] - want[i]));
      EXPECT_LT(worst, bf16 ? kBf16Tolerance : 1e-4) << what << " rows " << rows << variant;
      if (observed) {
        EXPECT_EQ(observer.input_features, complete.input_features);
        ASSERT_EQ(static_cast<int64_t>(observer.layers.size()), complete.dense_step_count())
            << what << ": every dense step is observed once";
        for (size_t k = 0; k < observer.layers.size(); ++k) {
          EXPECT_EQ(observer.layers[k], static_cast<int>(k)) << what;
          EXPECT_TRUE(std::isfinite(observer.sums[k])) << what;
        }
      }
    }
  }
}

TEST(GraphEngineTest, VaeHeadsShareTheTrunk) {
  Builder g(1);
  const int x = g.Input("x", 20);
  const int h = g.Dense(g.Dense(x, 64), 32);
  g.Output("mu", g.Dense(h, 8, {}));
  g.Output("logvar", g.Dense(h, 8, {}));
  ExpectMatches(g.spec, "vae");
}

TEST(GraphEngineTest, ResidualAddsFuseAfterAndBeforeTheActivation) {
  Builder g(2);
  const int x = g.Input("x", 16);
  int h = g.Dense(x, 32);
  h = g.Add(h, g.Dense(h, 32));                                        // h + selu(Wh + b)
  h = g.Activate(g.Add(g.Dense(h, 32, {}), h), {Activation::Selu()});  // selu(Wh + b + h)
  h = g.Add(h, g.Dense(h, 32, {Activation::LeakyRelu(0.1f)}));
  g.Output("y", g.Dense(h, 5, {}));
  ExpectMatches(g.spec, "residual");
}

TEST(GraphEngineTest, UnrolledRnnSharesItsWeights) {
  Builder g(3);
  const int64_t T = 8, F = 4, H = 16;
  const int x = g.Input("x", T * F);
  const int in_layer = g.NewLayer(F, H, {});
  const int rec_layer = g.NewLayer(H, H, {});
  int h = g.Activate(g.DenseWith(in_layer, g.Slice(x, 0, F)), {Activation::Selu()});
  for (int64_t t = 1; t < T; ++t) {
    const int a = g.DenseWith(in_layer, g.Slice(x, t * F, F));
    const int b = g.DenseWith(rec_layer, h);
    h = g.Activate(g.Add(a, b), {Activation::Selu()});
  }
  g.Output("y", g.Dense(h, 3, {}));
  EXPECT_EQ(g.spec.layers.size(), 3u);
  ExpectMatches(g.spec, "rnn");
}

TEST(GraphEngineTest, WideAndDeepConcatenatesInPlace) {
  Builder g(4);
  const int wide = g.Input("wide", 6);
  const int deep = g.Input("deep", 10);
  const int d = g.Dense(g.Dense(deep, 24), 12);
  g.Output("y", g.Dense(g.Concat({wide, d}), 4, {}));
  ExpectMatches(g.spec, "wide and deep");
  // Producers written into the concatenation, an input copied in.
  Builder g2(5);
  const int a = g2.Input("a", 8);
  const int p = g2.Dense(a, 12);
  const int q = g2.Dense(a, 7, {Activation::Tanh()});
  const int c = g2.Concat({p, a, q, p});  // p twice: one copy
  g2.Output("c", c);
  g2.Output("y", g2.Dense(c, 3, {}));
  ExpectMatches(g2.spec, "concat operands");
}

TEST(GraphEngineTest, AdjacentInputsConcatenateForFree) {
  Builder g(6);
  const int a = g.Input("a", 5);
  const int b = g.Input("b", 3);
  g.Output("y", g.Dense(g.Concat({a, b}), 4));
  g.Output("b_back", b);  // an input given back: copied into the answer
  ExpectMatches(g.spec, "adjacent inputs");
}

TEST(GraphEngineTest, JoinsActivationsAndSoftmaxRunOnTheirOwn) {
  Builder g(7);
  const int x = g.Input("x", 12);
  const int sx = g.Activate(x, {Activation::Elu(0.5f)});  // on an input: copied first
  const int a = g.Dense(sx, 9, {});
  const int b = g.Dense(x, 9, {});
  const int sum = g.Add(a, b);  // both operands also read elsewhere: a binary of its own
  g.Output("sum", sum);
  g.Output("a", a);
  const int probs =
      g.Softmax(g.Dense(g.Activate(sum, {Activation::Tanh(), Activation::Selu()}), 6, {}));
  g.Output("probs", probs);
  g.Output("mid", g.Softmax(g.Slice(sum, 2, 5)));
  ExpectMatches(g.spec, "joins");
}

TEST(GraphEngineTest, RandomGraphs) {
  for (uint32_t seed = 10; seed < 70; ++seed) {
    std::mt19937 rng(seed);
    Builder g(seed);
    std::vector<int> live;
    const int inputs = 1 + static_cast<int>(rng() % 3);
    for (int i = 0; i < inputs; ++i)
      live.push_back(g.Input("in" + std::to_string(i), 2 + rng() % 9));
    const int steps = 3 + static_cast<int>(rng() % 9);
    for (int s = 0; s < steps; ++s) {
      const int x = live[rng() % live.size()];
      switch (rng() % 6) {
        case 0:
        case 1:
          live.push_back(g.Dense(
              x, 2 + rng() % 12,
              rng() % 2 ? std::vector<Activation>{Activation::Selu()} : std::vector<Activation>{}));
          break;
        case 2: {
          std::vector<int> same;
          for (int t : live) {
            if (g.Features(t) == g.Features(x) && t != x) same.push_back(t);
          }
          live.push_back(same.empty() ? g.Dense(x, g.Features(x))
                                      : g.Add(x, same[rng() % same.size()]));
          break;
        }
        case 3:
          live.push_back(g.Concat({x, live[rng() % live.size()]}));
          break;
        case 4: {
          const int64_t f = g.Features(x);
          const int64_t off = static_cast<int64_t>(rng() % static_cast<uint32_t>(f));
          live.push_back(
              g.Slice(x, off, 1 + static_cast<int64_t>(rng() % static_cast<uint32_t>(f - off))));
          break;
        }
        case 5:
          live.push_back(g.Activate(x, {Activation::Selu()}));
          break;
      }
    }
    if (g.spec.layers.empty()) live.push_back(g.Dense(live.back(), 3));
    g.Output("last", live.back());
    if (rng() % 2) g.Output("other", live[live.size() / 2]);
    ExpectMatches(g.spec, "random graph " + std::to_string(seed));
  }
}

}  // namespace
}  // namespace selu::core

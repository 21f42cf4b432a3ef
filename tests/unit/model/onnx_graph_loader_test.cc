// The ONNX loader's graphs (issue 13): several inputs and outputs, heads
// sharing a trunk, residual and recurrent Adds, Concat, feature selections
// (Gather, Slice, Split, Squeeze, Unsqueeze, Reshape, Flatten) and shared
// weights; and a test per refusal. Models are built with the ONNX protobuf
// schema so each case is explicit. Numbers are checked with RunSpec, the
// graph's definition in double (onnx_graph_builder.h), not the engine.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "server/core/model/onnx_model_loader.h"
#include "tests/unit/model/onnx_graph_builder.h"

namespace selu::core {
namespace {

using testing_graph::Dense;
using testing_graph::GraphBuilder;
using testing_graph::Row;
using testing_graph::RunSpec;

#define EXPECT_REFUSED(builder, ...)                                          \
  do {                                                                        \
    auto spec_ = (builder).Load();                                            \
    ASSERT_FALSE(spec_.ok());                                                 \
    EXPECT_EQ(spec_.status().code(), StatusCode::kInvalidArgument);           \
    for (const char* part_ : {__VA_ARGS__}) {                                 \
      EXPECT_NE(spec_.status().message().find(part_), std::string::npos)      \
          << "message lacks '" << part_ << "': " << spec_.status().message(); \
    }                                                                         \
  } while (0)

std::vector<StepKind> Kinds(const ModelSpec& spec) {
  std::vector<StepKind> kinds;
  for (const GraphStep& s : spec.steps) kinds.push_back(s.kind);
  return kinds;
}

using K = StepKind;

void ExpectNear(const std::vector<double>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-9) << "at " << i;
}

// ----------------------------------------------------------------- accepted

TEST(OnnxGraphLoaderTest, VaeTrunkWithTwoHeads) {
  GraphBuilder b;
  b.Input("x", {-1, 8});
  const std::string h = b.Op("Selu", {b.Gemm("x", "enc", 8, 6, "enc")}, "enc_selu");
  b.Output(b.Gemm(h, "mu", 6, 2, "mu"), {-1, 2});
  b.Output(b.Gemm(h, "logvar", 6, 3, "logvar"), {-1, 3});
  auto spec = b.Load();
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(Kinds(*spec), (std::vector<K>{K::kDense, K::kDense, K::kDense}));
  ASSERT_EQ(spec->layers.size(), 3u);
  EXPECT_EQ(spec->layers[0].name, "enc");  // layers in order of first use
  EXPECT_EQ(spec->layers[1].name, "mu");
  EXPECT_EQ(spec->layers[2].name, "logvar");
  EXPECT_EQ(spec->layers[0].activations, std::vector<Activation>{Activation::Selu()});
  // Both heads read the trunk's tensor.
  EXPECT_EQ(spec->steps[1].inputs, std::vector<int>{spec->steps[0].output});
  EXPECT_EQ(spec->steps[2].inputs, std::vector<int>{spec->steps[0].output});
  ASSERT_EQ(spec->outputs.size(), 2u);
  EXPECT_EQ(spec->outputs[0].name, "mu_out");
  EXPECT_EQ(spec->outputs[1].name, "logvar_out");
  EXPECT_EQ(spec->outputs[1].offset, 2);
  EXPECT_EQ(spec->outputs[1].shape, (std::vector<int64_t>{-1, 3}));
  EXPECT_EQ(spec->output_features, 5);
  EXPECT_EQ(spec->input_features, 8);
  EXPECT_FALSE(spec->softmax_output);
}

TEST(OnnxGraphLoaderTest, ResidualAddAfterSeluAndBeforeSelu) {
  {
    GraphBuilder b;  // h + selu(W h + b)
    b.Input("x", {-1, 4});
    const std::string s = b.Op("Selu", {b.Gemm("x", "fc", 4, 4, "fc")}, "selu");
    const std::string r = b.Op("Add", {"x", s}, "residual");
    b.Output(b.Gemm(r, "head", 4, 2, "head"));
    auto spec = b.Load();
    ASSERT_TRUE(spec.ok()) << spec.status().ToString();
    EXPECT_EQ(Kinds(*spec), (std::vector<K>{K::kDense, K::kAdd, K::kDense}));
    EXPECT_EQ(spec->layers[0].activations, std::vector<Activation>{Activation::Selu()});
    EXPECT_EQ(spec->steps[1].inputs,
              (std::vector<int>{spec->inputs[0].tensor, spec->steps[0].output}));
    EXPECT_EQ(spec->steps[2].inputs, std::vector<int>{spec->steps[1].output});
    const std::vector<double> x = Row(4, 0.3);
    std::vector<double> sum = Dense(x, 4, 4);
    for (int64_t j = 0; j < 4; ++j) {
      sum[j] = x[j] + ReferenceActivation(Activation::Selu(), sum[j]);
    }
    ExpectNear(RunSpec(*spec, x, 1), Dense(sum, 4, 2));
  }
  {
    GraphBuilder b;  // selu(h + W h + b): the Selu is a step of its own
    b.Input("x", {-1, 4});
    const std::string r = b.Op("Add", {b.Gemm("x", "fc", 4, 4, "fc"), "x"}, "residual");
    const std::string s = b.Op("Selu", {r}, "selu");
    // A constant scale of the activation joins its step.
    b.Init("two", {}, {2.0f});
    b.Output(b.Op("Mul", {s, "two"}, "scale"));
    auto spec = b.Load();
    ASSERT_TRUE(spec.ok()) << spec.status().ToString();
    EXPECT_EQ(Kinds(*spec), (std::vector<K>{K::kDense, K::kAdd, K::kActivate}));
    EXPECT_TRUE(spec->layers[0].activations.empty());
    EXPECT_EQ(spec->steps[2].activations,
              (std::vector<Activation>{Activation::Selu(), Activation::Linear(2.0f, 0.0f)}));
    EXPECT_EQ(spec->outputs[0].tensor, spec->steps[2].output);
  }
}

TEST(OnnxGraphLoaderTest, UnrolledRnnSharesItsWeights) {
  // h_t = tanh(x_t·Wx + bx + h_{t-1}·Wh + bh) over x [N, 8, 4], h_0 an input.
  GraphBuilder b;
  b.Input("x", {-1, 8, 4});
  b.Input("h0", {-1, 3});
  std::string h = "h0";
  for (int t = 0; t < 8; ++t) {
    const std::string ts = std::to_string(t);
    auto* gather = b.Node("Gather", {"x", b.Ints("t" + ts, {}, {t})}, "x_" + ts);
    GraphBuilder::SetInt(gather, "axis", 1);
    const std::string a = b.Gemm(gather->output(0), "Wx", 4, 3, "in_" + ts);
    const std::string r = b.Gemm(h, "Wh", 3, 3, "rec_" + ts, 0.05f);
    h = b.Op("Tanh", {b.Op("Add", {a, r}, "sum_" + ts)}, "tanh_" + ts);
  }
  b.Output(b.Gemm(h, "out", 3, 2, "out"), {-1, 2});
  auto spec = b.Load();
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  ASSERT_EQ(spec->layers.size(), 3u);
  EXPECT_EQ(spec->layers[0].name, "in_0");
  EXPECT_EQ(spec->layers[1].name, "rec_0");
  EXPECT_EQ(spec->layers[2].name, "out");
  int uses[3] = {0, 0, 0}, slices = 0;
  for (const GraphStep& s : spec->steps) {
    if (s.kind == K::kDense) ++uses[s.layer];
    if (s.kind == K::kSlice) {
      EXPECT_EQ(s.offset, 4 * slices);
      EXPECT_EQ(spec->tensors[s.output].features, 4);
      EXPECT_EQ(s.inputs, std::vector<int>{spec->inputs[0].tensor});
      ++slices;
    }
  }
  EXPECT_EQ(uses[0], 8);
  EXPECT_EQ(uses[1], 8);
  EXPECT_EQ(uses[2], 1);
  EXPECT_EQ(slices, 8);
  EXPECT_EQ(spec->dense_step_count(), 17);
  ASSERT_EQ(spec->inputs.size(), 2u);
  EXPECT_EQ(spec->inputs[0].shape, (std::vector<int64_t>{-1, 8, 4}));
  EXPECT_EQ(spec->inputs[0].features, 32);
  EXPECT_EQ(spec->inputs[1].offset, 32);
  EXPECT_EQ(spec->input_features, 35);
  // The first recurrent step reads h0 itself.
  const GraphStep* rec0 = nullptr;
  for (const GraphStep& s : spec->steps) {
    if (s.name == "rec_0") rec0 = &s;
  }
  ASSERT_NE(rec0, nullptr);
  EXPECT_EQ(rec0->inputs, std::vector<int>{spec->inputs[1].tensor});
  // The numbers: the recurrence computed here directly, two rows.
  std::vector<double> packed, want;
  for (int row = 0; row < 2; ++row) {
    const std::vector<double> x = Row(32, row), h0 = Row(3, 10.0 + row);
    packed.insert(packed.end(), x.begin(), x.end());
    packed.insert(packed.end(), h0.begin(), h0.end());
    std::vector<double> h = h0;
    for (int t = 0; t < 8; ++t) {
      const std::vector<double> a = Dense({x.begin() + 4 * t, x.begin() + 4 * t + 4}, 4, 3);
      const std::vector<double> r = Dense(h, 3, 3, 0.05f);
      for (int j = 0; j < 3; ++j) h[j] = std::tanh(a[j] + r[j]);
    }
    const std::vector<double> y = Dense(h, 3, 2);
    want.insert(want.end(), y.begin(), y.end());
  }
  ExpectNear(RunSpec(*spec, packed, 2), want);
}

TEST(OnnxGraphLoaderTest, SharedWeightsMergeOnlyWhenTheLayersAreTheSame) {
  GraphBuilder b;
  b.Input("x", {-1, 4});
  b.Input("y", {-1, 4});
  b.Input("z", {-1, 4});
  const std::string fused = b.Op("Relu", {b.Gemm("x", "W", 4, 4, "relu_fused")}, "relu");
  const std::string plain_y = b.Gemm("y", "W", 4, 4, "plain_y");
  const std::string plain_z = b.Gemm("z", "W", 4, 4, "plain_z");
  b.Output(b.Op("Add", {b.Op("Add", {fused, plain_y}, "add1"), plain_z}, "add2"));
  auto spec = b.Load();
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(Kinds(*spec), (std::vector<K>{K::kDense, K::kDense, K::kDense, K::kAdd, K::kAdd}));
  ASSERT_EQ(spec->layers.size(), 2u);  // Relu fused into the first: not the same layer
  EXPECT_EQ(spec->layers[0].activations, std::vector<Activation>{Activation::Relu()});
  EXPECT_EQ(spec->steps[1].layer, 1);
  EXPECT_EQ(spec->steps[2].layer, 1);
  EXPECT_EQ(spec->steps[2].name, "plain_z");
}

TEST(OnnxGraphLoaderTest, WideAndDeepConcatenatesTwoInputs) {
  GraphBuilder b;
  b.Input("wide", {-1, 5});
  b.Input("deep", {-1, 3});
  const std::string d = b.Op("Selu", {b.Gemm("deep", "d1", 3, 4, "d1")}, "d1_selu");
  auto* cat = b.Node("Concat", {"wide", d}, "cat");
  GraphBuilder::SetInt(cat, "axis", -1);
  b.Output(b.Op("Sigmoid", {b.Gemm(cat->output(0), "top", 9, 1, "top")}, "prob"), {-1, 1});
  auto spec = b.Load();
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(Kinds(*spec), (std::vector<K>{K::kDense, K::kConcat, K::kDense}));
  EXPECT_EQ(spec->steps[1].inputs,
            (std::vector<int>{spec->inputs[0].tensor, spec->steps[0].output}));
  EXPECT_EQ(spec->tensors[spec->steps[1].output].features, 9);
  EXPECT_EQ(spec->layers[1].activations, std::vector<Activation>{Activation::Sigmoid()});
  EXPECT_EQ(spec->inputs[1].offset, 5);
  EXPECT_EQ(spec->input_features, 8);
  EXPECT_EQ(spec->input_name, "wide");
  const std::vector<double> wide = Row(5, 1.0), deep = Row(3, 2.0);
  std::vector<double> joined = wide;
  for (double v : Dense(deep, 3, 4)) joined.push_back(ReferenceActivation(Activation::Selu(), v));
  std::vector<double> packed = wide;
  packed.insert(packed.end(), deep.begin(), deep.end());
  ExpectNear(RunSpec(*spec, packed, 1), std::vector<double>{ReferenceActivation(
                                            Activation::Sigmoid(), Dense(joined, 9, 1)[0])});
}

TEST(OnnxGraphLoaderTest, SelectionsMapToSlicesOrToNothing) {
  GraphBuilder b;
  b.Input("x", {-1, 2, 3, 4});  // 24 features
  auto* split = b.Node("Split", {"x", b.Ints("halves", {2}, {1, 1})}, "split", 2);
  GraphBuilder::SetInt(split, "axis", 1);
  const std::string first = b.Op("Squeeze", {split->output(0), b.Ints("ax1", {1}, {1})}, "sq");
  const std::string rows = b.Op(  // [N, 3, 4] → rows 1..2: [4, 12)
      "Slice", {first, b.Ints("s", {1}, {1}), b.Ints("e", {1}, {3}), b.Ints("a", {1}, {-2})},
      "rows");
  const std::string flat = b.Op("Reshape", {rows, b.Ints("shape", {2}, {0, -1})}, "reshape");
  b.Output(b.Gemm(b.Op("Identity", {flat}, "id"), "g1", 8, 2, "g1"));
  const std::string second = b.Op("Flatten", {split->output(1)}, "flatten");
  const std::string tail = b.Op(  // last 2 of 12: [10, 12)
      "Slice",
      {second, b.Ints("s2", {1}, {-2}), b.Ints("e2", {1}, {std::numeric_limits<int64_t>::max()}),
       b.Ints("a2", {1}, {1})},
      "tail");
  const std::string up = b.Op("Unsqueeze", {tail, b.Ints("ax2", {1}, {1})}, "up");  // [1, 2]
  b.Output(b.Op("Reshape", {up, b.Ints("shape2", {2}, {-1, 2})}, "down"), {-1, 2});
  auto spec = b.Load();
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(Kinds(*spec), (std::vector<K>{K::kSlice, K::kSlice, K::kSlice, K::kDense, K::kSlice}));
  const auto& st = spec->steps;
  EXPECT_EQ(st[0].offset, 0);  // split part 0: [0, 12) of x
  EXPECT_EQ(spec->tensors[st[0].output].features, 12);
  EXPECT_EQ(st[1].offset, 12);                              // split part 1
  EXPECT_EQ(st[2].inputs, std::vector<int>{st[0].output});  // squeeze: no step
  EXPECT_EQ(st[2].offset, 4);
  EXPECT_EQ(spec->tensors[st[2].output].features, 8);
  EXPECT_EQ(st[3].inputs, std::vector<int>{st[2].output});  // reshape, identity: no step
  EXPECT_EQ(st[4].inputs, std::vector<int>{st[1].output});  // flatten: no step
  EXPECT_EQ(st[4].offset, 10);
  EXPECT_EQ(spec->tensors[st[4].output].features, 2);
  EXPECT_EQ(spec->outputs[1].tensor, st[4].output);  // unsqueeze + reshape: no step
  EXPECT_EQ(spec->outputs[1].shape, (std::vector<int64_t>{-1, 2}));
  const std::vector<double> x = Row(24, 0.5);
  std::vector<double> want = Dense({x.begin() + 4, x.begin() + 12}, 8, 2);
  want.insert(want.end(), {x[22], x[23]});
  ExpectNear(RunSpec(*spec, x, 1), want);
}

TEST(OnnxGraphLoaderTest, GatherNegativeIndexSplitAttributeAndWholeSelections) {
  GraphBuilder b(/*opset=*/11);
  b.Input("x", {-1, 8, 4});
  auto* last = b.Node("Gather", {"x", b.Ints("minus1", {}, {-1})}, "last");
  GraphBuilder::SetInt(last, "axis", 1);
  auto* split = b.Node("Split", {last->output(0)}, "split", 2);  // opset < 13: attribute
  GraphBuilder::SetInt(split, "axis", -1);
  GraphBuilder::SetInts(split, "split", {1, 3});
  b.Output(b.Gemm(split->output(1), "g", 3, 2, "g"));
  // A whole-axis Slice (opset 11: inputs) and a Squeeze by attribute select nothing.
  const std::string all =
      b.Op("Slice", {"x", b.Ints("s0", {1}, {0}), b.Ints("e0", {1}, {8}), b.Ints("a0", {1}, {1})},
           "all");
  auto* sq = b.Node("Unsqueeze", {all}, "unsq");
  GraphBuilder::SetInts(sq, "axes", {-1});
  b.Output(sq->output(0), {-1, 8, 4, 1});
  auto spec = b.Load();
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(Kinds(*spec), (std::vector<K>{K::kSlice, K::kSlice, K::kDense}));
  EXPECT_EQ(spec->steps[0].offset, 28);
  EXPECT_EQ(spec->steps[1].offset, 1);
  EXPECT_EQ(spec->tensors[spec->steps[1].output].features, 3);
  EXPECT_EQ(spec->outputs[1].tensor, spec->inputs[0].tensor);  // the input itself
  EXPECT_EQ(spec->outputs[1].shape, (std::vector<int64_t>{-1, 8, 4, 1}));
}

TEST(OnnxGraphLoaderTest, GraphOutputAlsoConsumedDownstream) {
  GraphBuilder b;
  b.Input("x", {-1, 4});
  const std::string g = b.Gemm("x", "fc1", 4, 4, "fc1");
  b.Output(g, {-1, 4});
  b.Output(b.Gemm(b.Op("Relu", {g}, "relu"), "fc2", 4, 2, "fc2"));
  auto spec = b.Load();
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(Kinds(*spec), (std::vector<K>{K::kDense, K::kActivate, K::kDense}));
  EXPECT_TRUE(spec->layers[0].activations.empty());  // the output sees fc1 before Relu
  EXPECT_EQ(spec->outputs[0].tensor, spec->steps[0].output);
  EXPECT_EQ(spec->outputs[1].offset, 4);
}

TEST(OnnxGraphLoaderTest, SoftmaxInTheMiddleAndGeluOnASharedTensor) {
  GraphBuilder b;
  b.Input("x", {-1, 4});
  const std::string sm = b.Op("Softmax", {b.Gemm("x", "fc", 4, 4, "fc")}, "sm");
  b.Output(sm);
  // GELU of the softmax's output (also a graph output): its own step.
  b.Init("sqrt2", {}, {1.4142135f});
  b.Init("one", {}, {1.0f});
  b.Init("half", {}, {0.5f});
  const std::string e = b.Op("Erf", {b.Op("Div", {sm, "sqrt2"}, "div")}, "erf");
  const std::string m = b.Op("Mul", {sm, b.Op("Add", {e, "one"}, "add1")}, "mul");
  b.Output(b.Op("Mul", {m, "half"}, "gelu"));
  auto spec = b.Load();
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(Kinds(*spec), (std::vector<K>{K::kDense, K::kSoftmax, K::kActivate}));
  EXPECT_EQ(spec->steps[2].activations, std::vector<Activation>{Activation::Gelu()});
  EXPECT_FALSE(spec->softmax_output);
}

// ----------------------------------------------------------------- refused

TEST(OnnxGraphLoaderRefusalTest, NonContiguousSelections) {
  {
    GraphBuilder b;
    b.Input("x", {-1, 2, 4});
    const std::string s =
        b.Op("Slice", {"x", b.Ints("s", {1}, {0}), b.Ints("e", {1}, {2}), b.Ints("a", {1}, {2})},
             "cols");
    b.Output(b.Gemm(b.Op("Flatten", {s}, "f"), "g", 4, 2, "g"));
    EXPECT_REFUSED(b, "'cols'", "(Slice)", "not one contiguous range", "[batch,2,4]");
  }
  {
    GraphBuilder b;
    b.Input("x", {-1, 2, 4});
    auto* g = b.Node("Gather", {"x", b.Ints("i", {}, {1})}, "feature1");
    GraphBuilder::SetInt(g, "axis", -1);
    b.Output(g->output(0));
    EXPECT_REFUSED(b, "'feature1'", "(Gather)", "not one contiguous range");
  }
  {
    GraphBuilder b;
    b.Input("x", {-1, 2, 4});
    b.Input("y", {-1, 2, 4});
    auto* c = b.Node("Concat", {"x", "y"}, "cat_last");
    GraphBuilder::SetInt(c, "axis", 2);
    b.Output(c->output(0));
    EXPECT_REFUSED(b, "'cat_last'", "(Concat)", "one after another");
  }
}

TEST(OnnxGraphLoaderRefusalTest, RecurrentOpsGetAHint) {
  for (const char* op : {"Loop", "Scan", "RNN", "GRU", "LSTM"}) {
    GraphBuilder b;
    b.Input("x", {-1, 8, 4});
    b.Output(b.Op(op, {"x"}, "rnn"));
    // Without the checker, which refuses these incomplete nodes first.
    OnnxLoaderOptions no_checker;
    no_checker.run_onnx_checker = false;
    auto spec = b.Load(no_checker);
    ASSERT_FALSE(spec.ok());
    for (const char* part : {"node 'rnn' (", op, "recurrent ops are not supported",
                             "export the recurrence unrolled"}) {
      EXPECT_NE(spec.status().message().find(part), std::string::npos) << spec.status().message();
    }
  }
}

TEST(OnnxGraphLoaderRefusalTest, RealRnnNodePassesTheCheckerAndIsRefused) {
  {
    GraphBuilder b;
    b.Input("x", {8, 2, 4});  // [seq, batch, input] as RNN reads it
    b.Init("W", {1, 3, 4}, std::vector<float>(12, 0.1f));
    b.Init("R", {1, 3, 3}, std::vector<float>(9, 0.1f));
    auto* rnn = b.Node("RNN", {"x", "W", "R"}, "rnn");
    GraphBuilder::SetInt(rnn, "hidden_size", 3);
    b.Output(rnn->output(0), {8, 1, 2, 3});
    EXPECT_REFUSED(b, "node 'rnn' (RNN)", "recurrent ops are not supported",
                   "export the recurrence unrolled");
  }
}

TEST(OnnxGraphLoaderRefusalTest, BroadcastingAddOfTwoTensors) {
  GraphBuilder b;
  b.Input("x", {-1, 4});
  const std::string a = b.Gemm("x", "a", 4, 4, "a");
  const std::string c = b.Gemm("x", "c", 4, 1, "c");
  b.Output(b.Op("Add", {a, c}, "bcast"));
  EXPECT_REFUSED(b, "'bcast'", "(Add)", "[batch,4]", "[batch,1]", "broadcasting");
}

TEST(OnnxGraphLoaderRefusalTest, SelectionsThatAreNotFeatures) {
  {
    GraphBuilder b;
    b.Input("x", {-1, 4});
    b.Output(b.Op("Gather", {"x", b.Ints("i", {}, {0})}, "row0"));  // axis 0
    EXPECT_REFUSED(b, "'row0'", "(Gather)", "batch axis");
  }
  {
    GraphBuilder b;
    b.Input("x", {-1, 4});
    b.Output(b.Op("Reshape", {"x", b.Ints("sh", {2}, {2, -1})}, "regroup_batch"));
    EXPECT_REFUSED(b, "'regroup_batch'", "(Reshape)", "does not keep the batch");
  }
  {
    GraphBuilder b;
    b.Input("x", {-1, 4});
    b.Output(b.Op("Reshape", {"x", b.Ints("sh", {2}, {-1, 3})}, "bad_count"));
    EXPECT_REFUSED(b, "'bad_count'", "reshapes 4 features per row into [-1,3]");
  }
  {
    GraphBuilder b;
    b.Input("x", {-1, 8});
    const std::string s = b.Op("Slice",
                               {"x", b.Ints("s", {1}, {0}), b.Ints("e", {1}, {8}),
                                b.Ints("a", {1}, {1}), b.Ints("st", {1}, {2})},
                               "every_other");
    b.Output(s);
    EXPECT_REFUSED(b, "'every_other'", "(Slice)", "step 2");
  }
  {
    GraphBuilder b;
    b.Input("x", {-1, 4});
    auto* sp = b.Node("Split", {"x", b.Ints("sizes", {2}, {1, 2})}, "short_split", 2);
    GraphBuilder::SetInt(sp, "axis", 1);
    b.Output(sp->output(0));
    EXPECT_REFUSED(b, "'short_split'", "(Split)", "add up to 3");
  }
  {
    GraphBuilder b;
    b.Input("x", {-1, 4});
    b.Output(b.Op("Squeeze", {"x", b.Ints("ax", {1}, {1})}, "sq4"));
    EXPECT_REFUSED(b, "'sq4'", "(Squeeze)", "has size 4, not 1");
  }
  {
    GraphBuilder b;
    b.Input("x", {-1, 4});
    b.Output(b.Op("ConstantOfShape", {b.Op("Shape", {"x"}, "shape")}, "zeros"));
    EXPECT_REFUSED(b, "'shape'", "(Shape)", "shape computations");
  }
}

TEST(OnnxGraphLoaderRefusalTest, InputsAndOperandsThatDoNotFit) {
  {
    GraphBuilder b;
    b.Input("x", {5, 4});
    b.Input("y", {3, 4});
    b.Output(b.Op("Add", {"x", "y"}, "add"));
    EXPECT_REFUSED(b, "graph input 'y'", "batch dimension 3", "agree on the batch");
  }
  {
    GraphBuilder b;
    b.Input("x", {-1, 4});
    b.Input("y", {-1, 4});
    b.Output(b.Gemm(b.Op("Mul", {"x", "y"}, "product"), "g", 4, 2, "g"));
    EXPECT_REFUSED(b, "'product'", "(Mul)", "is not a constant");
  }
  {
    GraphBuilder b;
    b.Input("x", {-1, 2, 4});
    b.Output(b.Op("Softmax", {"x"}, "sm3"));
    EXPECT_REFUSED(b, "'sm3'", "(Softmax)", "last axis");
  }
  {
    GraphBuilder b;
    b.Input("x", {-1, 4});
    b.Output(b.Gemm(b.Op("Relu", {"nowhere"}, "dangling"), "g", 4, 2, "g"));
    OnnxLoaderOptions no_checker;
    no_checker.run_onnx_checker = false;
    auto spec = b.Load(no_checker);
    ASSERT_FALSE(spec.ok());
    EXPECT_NE(spec.status().message().find("'dangling' (Relu): input 0 'nowhere' is produced by "
                                           "no earlier node"),
              std::string::npos)
        << spec.status().message();
  }
}

TEST(OnnxGraphLoaderRefusalTest, NamesFromTheFileAreQuotedBounded) {
  GraphBuilder b;
  b.Input("x", {-1, 4});
  const std::string name = std::string(5000, 'n') + "\nforged line";
  b.Output(b.Op("Hardmax", {b.Gemm("x", "g", 4, 2, "g")}, name));
  auto spec = b.Load();
  ASSERT_FALSE(spec.ok());
  EXPECT_LT(spec.status().message().size(), 1000u) << spec.status().message().substr(0, 300);
  EXPECT_EQ(spec.status().message().find('\n'), std::string::npos);
  EXPECT_NE(spec.status().message().find("(Hardmax)"), std::string::npos);
}

}  // namespace
}  // namespace selu::core

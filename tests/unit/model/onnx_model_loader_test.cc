// The ONNX loader: what it accepts, and a test per refusal. Models are built
// here with the ONNX protobuf schema so each case is explicit.
#include "server/core/model/onnx_model_loader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <random>

namespace selu::core {
namespace {

using ::testing::HasSubstr;

class ModelBuilder {
 public:
  explicit ModelBuilder(std::vector<int64_t> input_dims = {-1, 4}, int opset = 13) {
    model_.set_ir_version(8);
    model_.set_producer_name("selu-serve-test");
    auto* op = model_.add_opset_import();
    op->set_domain("");
    op->set_version(opset);
    graph()->set_name("mlp");
    auto* in = graph()->add_input();
    in->set_name("x");
    auto* tt = in->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    for (int64_t d : input_dims) {
      auto* dim = tt->mutable_shape()->add_dim();
      if (d < 0) {
        dim->set_dim_param("batch");
      } else {
        dim->set_dim_value(d);
      }
    }
    current_ = "x";
  }

  onnx::GraphProto* graph() { return model_.mutable_graph(); }
  onnx::ModelProto& model() { return model_; }

  onnx::TensorProto* Initializer(const std::string& name, std::vector<int64_t> dims,
                                 const std::vector<float>& values, bool raw = true) {
    auto* t = graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) t->add_dims(d);
    if (raw) {
      t->set_raw_data(
          std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)));
    } else {
      for (float v : values) t->add_float_data(v);
    }
    return t;
  }

  onnx::NodeProto* Node(const std::string& op, std::vector<std::string> extra_inputs = {},
                        std::string name = "") {
    auto* n = graph()->add_node();
    n->set_op_type(op);
    n->set_name(name.empty() ? op + "_" + std::to_string(graph()->node_size() - 1) : name);
    n->add_input(current_);
    for (auto& e : extra_inputs) n->add_input(e);
    current_ = n->name() + "_out";
    n->add_output(current_);
    return n;
  }

  // y = x·W + b with W given as [k, n] row-major; emitted as Gemm transB=1.
  onnx::NodeProto* Gemm(int64_t k, int64_t n, const std::vector<float>& w_kn,
                        const std::vector<float>& bias, std::string name = "") {
    const std::string id = "w" + std::to_string(graph()->initializer_size());
    std::vector<float> w_nk(k * n);
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < n; ++j) w_nk[j * k + i] = w_kn[i * n + j];
    Initializer(id + "_B", {n, k}, w_nk);
    Initializer(id + "_C", {n}, bias);
    auto* node = Node("Gemm", {id + "_B", id + "_C"}, name);
    auto* a = node->add_attribute();
    a->set_name("transB");
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(1);
    return node;
  }

  static void SetFloat(onnx::NodeProto* node, const std::string& name, float v) {
    auto* a = node->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(v);
  }
  static void SetInt(onnx::NodeProto* node, const std::string& name, int64_t v) {
    auto* a = node->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }

  std::string Finish(int64_t out_features = -1) {
    auto* out = graph()->add_output();
    out->set_name(current_);
    auto* tt = out->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    tt->mutable_shape()->add_dim()->set_dim_param("batch");
    auto* features = tt->mutable_shape()->add_dim();
    if (out_features > 0) features->set_dim_value(out_features);
    return model_.SerializeAsString();
  }

  const std::string& current() const { return current_; }

 private:
  onnx::ModelProto model_;
  std::string current_;
};

std::vector<float> Iota(size_t n, float scale = 0.01f) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * float(i) - 0.5f * scale * float(n);
  return v;
}

Status LoadError(const std::string& bytes) {
  auto spec = LoadOnnxModelFromBytes(bytes);
  return spec.ok() ? OkStatus() : spec.status();
}

#define EXPECT_REFUSED(bytes, ...)                                       \
  do {                                                                   \
    Status s_ = LoadError(bytes);                                        \
    EXPECT_EQ(s_.code(), StatusCode::kInvalidArgument) << s_.ToString(); \
    for (const char* part_ : {__VA_ARGS__}) {                            \
      EXPECT_NE(s_.message().find(part_), std::string::npos)             \
          << "message lacks '" << part_ << "': " << s_.message();        \
    }                                                                    \
  } while (0)

// ----------------------------------------------------------------- accepted

TEST(OnnxLoaderTest, GemmChainWithSeluAndSoftmax) {
  ModelBuilder b;
  b.Gemm(4, 3, Iota(12), {0.1f, 0.2f, 0.3f}, "fc1");
  b.Node("Selu");
  b.Gemm(3, 2, Iota(6), {0.0f, 1.0f}, "fc2");
  b.Node("Softmax");
  auto spec = LoadOnnxModelFromBytes(b.Finish(2));
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->input_name, "x");
  EXPECT_EQ(spec->input_features, 4);
  EXPECT_EQ(spec->output_features, 2);
  EXPECT_EQ(spec->fixed_batch_size, 0);
  ASSERT_EQ(spec->layers.size(), 2u);
  EXPECT_EQ(spec->layers[0].name, "fc1");
  EXPECT_EQ(spec->layers[0].weights, Iota(12));  // back to [k, n]
  EXPECT_EQ(spec->layers[0].bias, (std::vector<float>{0.1f, 0.2f, 0.3f}));
  ASSERT_EQ(spec->layers[0].activations.size(), 1u);
  EXPECT_EQ(spec->layers[0].activations[0], Activation::Selu());
  EXPECT_TRUE(spec->layers[1].activations.empty());
  // A graph spec: the softmax is a step (the engine reads steps).
  ASSERT_EQ(spec->steps.size(), 3u);
  EXPECT_EQ(spec->steps[2].kind, StepKind::kSoftmax);
  EXPECT_FALSE(spec->softmax_output);
  EXPECT_EQ(spec->producer_name, "selu-serve-test");
}

TEST(OnnxLoaderTest, GemmTransB0AlphaBetaAndTypedData) {
  ModelBuilder b;
  b.Initializer("B", {4, 2}, Iota(8), /*raw=*/false);
  b.Initializer("C", {1, 2}, {1.0f, -1.0f}, /*raw=*/false);
  auto* g = b.Node("Gemm", {"B", "C"}, "g");
  ModelBuilder::SetFloat(g, "alpha", 2.0f);
  ModelBuilder::SetFloat(g, "beta", 0.5f);
  auto spec = LoadOnnxModelFromBytes(b.Finish());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  const auto w = Iota(8);
  for (size_t i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(spec->layers[0].weights[i], 2.0f * w[i]);
  EXPECT_EQ(spec->layers[0].bias, (std::vector<float>{0.5f, -0.5f}));
}

TEST(OnnxLoaderTest, GemmWithoutBiasAndScalarBias) {
  ModelBuilder b;
  b.Initializer("B", {4, 2}, Iota(8));
  b.Node("Gemm", {"B"}, "nobias");
  b.Initializer("B2", {2, 2}, Iota(4));
  b.Initializer("C2", {1}, {3.0f});
  b.Node("Gemm", {"B2", "C2"}, "scalarbias");
  auto spec = LoadOnnxModelFromBytes(b.Finish());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->layers[0].bias, (std::vector<float>{0.0f, 0.0f}));
  EXPECT_EQ(spec->layers[1].bias, (std::vector<float>{3.0f, 3.0f}));
}

TEST(OnnxLoaderTest, MatMulAddEitherOrderAndMatMulAlone) {
  ModelBuilder b;
  b.Initializer("W1", {4, 3}, Iota(12));
  b.Initializer("b1", {3}, {1, 2, 3});
  b.Node("MatMul", {"W1"}, "mm1");
  auto* add = b.Node("Add", {"b1"}, "add1");
  std::swap(*add->mutable_input(0), *add->mutable_input(1));  // b + x
  b.Node("Relu");
  b.Initializer("W2", {3, 2}, Iota(6));
  b.Node("MatMul", {"W2"}, "mm2");
  auto spec = LoadOnnxModelFromBytes(b.Finish(2));
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  ASSERT_EQ(spec->layers.size(), 2u);
  EXPECT_EQ(spec->layers[0].bias, (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(spec->layers[0].activations[0].kind, ActivationKind::kRelu);
  EXPECT_EQ(spec->layers[1].bias, (std::vector<float>{0, 0}));
}

TEST(OnnxLoaderTest, ActivationAttributesAndNoOps) {
  ModelBuilder b;
  b.Gemm(4, 4, Iota(16), Iota(4));
  auto* selu = b.Node("Selu");
  ModelBuilder::SetFloat(selu, "alpha", 1.5f);
  ModelBuilder::SetFloat(selu, "gamma", 1.2f);
  b.Node("Identity");
  b.Node("Dropout");
  auto* elu = b.Node("Elu");
  ModelBuilder::SetFloat(elu, "alpha", 0.7f);
  b.Node("Tanh");
  b.Node("Sigmoid");
  auto spec = LoadOnnxModelFromBytes(b.Finish());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  const auto& acts = spec->layers[0].activations;
  ASSERT_EQ(acts.size(), 4u);
  EXPECT_EQ(acts[0], Activation::Selu(1.5f, 1.2f));
  EXPECT_EQ(acts[1], Activation::Elu(0.7f));
  EXPECT_EQ(acts[2].kind, ActivationKind::kTanh);
  EXPECT_EQ(acts[3].kind, ActivationKind::kSigmoid);
}

TEST(OnnxLoaderTest, FlattenAtInputAndFixedBatch) {
  ModelBuilder b({5, 2, 3});
  b.Node("Flatten");
  b.Gemm(6, 2, Iota(12), {0, 0});
  auto spec = LoadOnnxModelFromBytes(b.Finish());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->input_features, 6);
  EXPECT_EQ(spec->input_shape, (std::vector<int64_t>{-1, 2, 3}));
  EXPECT_EQ(spec->fixed_batch_size, 5);
}

TEST(OnnxLoaderTest, DoubleWeightsAreConverted) {
  ModelBuilder b;
  auto* t = b.graph()->add_initializer();
  t->set_name("B");
  t->set_data_type(onnx::TensorProto::DOUBLE);
  t->add_dims(4);
  t->add_dims(1);
  for (double v : {0.5, -0.25, 2.0, 1.0}) t->add_double_data(v);
  b.Node("Gemm", {"B"}, "g");
  auto spec = LoadOnnxModelFromBytes(b.Finish());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->layers[0].weights, (std::vector<float>{0.5f, -0.25f, 2.0f, 1.0f}));
}

TEST(OnnxLoaderTest, ConstantNodeAndIdentityOfWeights) {
  ModelBuilder b;
  auto* c = b.graph()->add_node();
  c->set_op_type("Constant");
  c->set_name("const_w");
  c->add_output("W");
  auto* attr = c->add_attribute();
  attr->set_name("value");
  attr->set_type(onnx::AttributeProto::TENSOR);
  attr->mutable_t()->set_data_type(onnx::TensorProto::FLOAT);
  attr->mutable_t()->add_dims(4);
  attr->mutable_t()->add_dims(2);
  for (float v : Iota(8)) attr->mutable_t()->add_float_data(v);
  auto* id = b.graph()->add_node();
  id->set_op_type("Identity");
  id->set_name("shared_w");
  id->add_input("W");
  id->add_output("W_alias");
  b.Node("MatMul", {"W_alias"}, "mm");
  auto spec = LoadOnnxModelFromBytes(b.Finish());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->layers[0].weights, Iota(8));
}

TEST(OnnxLoaderTest, MetadataPropsAreKept) {
  ModelBuilder b;
  b.Gemm(4, 2, Iota(8), {0, 0});
  auto* p = b.model().add_metadata_props();
  p->set_key("selu.reference_stats");
  p->set_value("{\"format\":1}");
  auto spec = LoadOnnxModelFromBytes(b.Finish());
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->metadata.at("selu.reference_stats"), "{\"format\":1}");
}

// ----------------------------------------------------------------- refused

TEST(OnnxLoaderRefusalTest, UnsupportedOpNamesNodeAndType) {
  ModelBuilder b;
  b.Gemm(4, 4, Iota(16), Iota(4));
  b.Node("Hardmax", {}, "hardmax");
  EXPECT_REFUSED(b.Finish(), "'hardmax'", "Hardmax", "unsupported op type");
}

TEST(OnnxLoaderRefusalTest, ShapeMismatchBetweenLayers) {
  ModelBuilder b;
  b.Gemm(4, 3, Iota(12), Iota(3), "fc1");
  b.Gemm(5, 2, Iota(10), Iota(2), "fc2");
  EXPECT_REFUSED(b.Finish(), "'fc2'", "Gemm", "expect 5 input features", "produces 3");
}

TEST(OnnxLoaderRefusalTest, InputWidthMismatch) {
  ModelBuilder b({-1, 6});
  b.Gemm(4, 3, Iota(12), Iota(3), "fc1");
  EXPECT_REFUSED(b.Finish(), "'fc1'", "expect 4 input features", "produces 6");
}

TEST(OnnxLoaderRefusalTest, NonFiniteWeight) {
  ModelBuilder b;
  auto w = Iota(8);
  w[5] = std::nanf("");
  b.Initializer("B", {4, 2}, w);
  b.Node("Gemm", {"B"}, "fc");
  EXPECT_REFUSED(b.Finish(), "'fc'", "'B'", "non-finite value at index 5");
}

TEST(OnnxLoaderRefusalTest, InfiniteBias) {
  ModelBuilder b;
  b.Gemm(4, 2, Iota(8), {1.0f, INFINITY}, "fc");
  EXPECT_REFUSED(b.Finish(), "'fc'", "non-finite value at index 1");
}

TEST(OnnxLoaderRefusalTest, ExternalData) {
  ModelBuilder b;
  auto* t = b.Initializer("B", {4, 2}, {});
  t->clear_raw_data();
  t->set_data_location(onnx::TensorProto::EXTERNAL);
  auto* e = t->add_external_data();
  e->set_key("location");
  e->set_value("weights.bin");
  b.Node("Gemm", {"B"}, "fc");
  auto bytes = b.Finish();
  onnx::ModelProto m;
  ASSERT_TRUE(m.ParseFromString(bytes));
  // The ONNX checker refuses a missing external file first; without it, our
  // own check names the tensor.
  OnnxLoaderOptions no_checker;
  no_checker.run_onnx_checker = false;
  auto spec = LoadOnnxModelFromBytes(bytes, no_checker);
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(spec.status().message(), HasSubstr("external data"));
  EXPECT_THAT(spec.status().message(), HasSubstr("'B'"));
  EXPECT_EQ(LoadError(bytes).code(), StatusCode::kInvalidArgument);
}

TEST(OnnxLoaderRefusalTest, RawDataSizeMismatch) {
  ModelBuilder b;
  auto* t = b.Initializer("B", {4, 2}, Iota(8));
  t->mutable_raw_data()->resize(20);
  b.Node("Gemm", {"B"}, "fc");
  OnnxLoaderOptions no_checker;
  no_checker.run_onnx_checker = false;
  auto spec = LoadOnnxModelFromBytes(b.Finish(), no_checker);
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(spec.status().message(), HasSubstr("20 bytes of raw data"));
  EXPECT_THAT(spec.status().message(), HasSubstr("32"));
}

TEST(OnnxLoaderRefusalTest, IntegerWeights) {
  ModelBuilder b;
  auto* t = b.graph()->add_initializer();
  t->set_name("B");
  t->set_data_type(onnx::TensorProto::INT32);
  t->add_dims(4);
  t->add_dims(2);
  for (int i = 0; i < 8; ++i) t->add_int32_data(i);
  b.Node("Gemm", {"B"}, "fc");
  EXPECT_REFUSED(b.Finish(), "'fc'", "INT32", "FLOAT");
}

TEST(OnnxLoaderRefusalTest, TruncatedFile) {
  ModelBuilder b;
  b.Gemm(4, 3, Iota(12), Iota(3));
  const std::string bytes = b.Finish();
  EXPECT_REFUSED(bytes.substr(0, bytes.size() - 7), "");
  Status s = LoadError(bytes.substr(0, bytes.size() / 2));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
}

TEST(OnnxLoaderRefusalTest, GarbageAndEmptyFiles) {
  EXPECT_REFUSED("this is not an onnx file at all", "");
  EXPECT_REFUSED("", "empty");
  EXPECT_REFUSED(std::string("\x08\x07", 2), "graph");
}

TEST(OnnxLoaderRefusalTest, TransA) {
  ModelBuilder b;
  b.Initializer("B", {4, 2}, Iota(8));
  ModelBuilder::SetInt(b.Node("Gemm", {"B"}, "ta"), "transA", 1);
  EXPECT_REFUSED(b.Finish(), "'ta'", "transA");
}

TEST(OnnxLoaderRefusalTest, NonConstantWeight) {
  ModelBuilder b({-1, 4});
  b.Gemm(4, 4, Iota(16), Iota(4), "fc");
  b.Node("MatMul", {b.current()}, "square");  // x·x: the weight is not a constant
  EXPECT_REFUSED(b.Finish(), "'square'", "is not a constant");
}

TEST(OnnxLoaderRefusalTest, SecondGraphInput) {
  ModelBuilder b;
  auto* in2 = b.graph()->add_input();
  in2->set_name("W");
  auto* tt = in2->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto::FLOAT);
  tt->mutable_shape()->add_dim()->set_dim_value(4);
  tt->mutable_shape()->add_dim()->set_dim_value(2);
  b.Node("MatMul", {"W"}, "mm");
  // Several inputs are fine (onnx_graph_loader_test.cc); this one fixes a
  // batch of 4 where x's is symbolic.
  EXPECT_REFUSED(b.Finish(), "'W'", "agree on the batch");
  b.graph()
      ->mutable_input(1)
      ->mutable_type()
      ->mutable_tensor_type()
      ->mutable_shape()
      ->mutable_dim(0)
      ->set_dim_param("batch");
  EXPECT_REFUSED(b.model().SerializeAsString(), "'mm'", "'W'", "is not a constant");
}

TEST(OnnxLoaderRefusalTest, SoftmaxAnywhereButOverTheLastAxis) {
  {
    ModelBuilder b;
    b.Gemm(4, 4, Iota(16), Iota(4));
    b.Node("Softmax", {}, "sm");
    b.Gemm(4, 2, Iota(8), Iota(2), "after");
    auto spec = LoadOnnxModelFromBytes(b.Finish());
    ASSERT_TRUE(spec.ok()) << spec.status().ToString();
    ASSERT_EQ(spec->steps.size(), 3u);
    EXPECT_EQ(spec->steps[1].kind, StepKind::kSoftmax);
    EXPECT_EQ(spec->steps[2].kind, StepKind::kDense);
  }
  {
    ModelBuilder b;
    b.Gemm(4, 4, Iota(16), Iota(4));
    ModelBuilder::SetInt(b.Node("Softmax", {}, "sm0"), "axis", 0);
    EXPECT_REFUSED(b.Finish(), "'sm0'", "axis=0");
  }
}

TEST(OnnxLoaderTest, ActivationBeforeFirstLayerIsAStep) {
  ModelBuilder b;
  b.Node("Relu", {}, "early");
  b.Gemm(4, 2, Iota(8), Iota(2));
  auto spec = LoadOnnxModelFromBytes(b.Finish());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  ASSERT_EQ(spec->steps.size(), 2u);
  EXPECT_EQ(spec->steps[0].kind, StepKind::kActivate);
  EXPECT_EQ(spec->steps[0].activations, std::vector<Activation>{Activation::Relu()});
  EXPECT_EQ(spec->steps[1].inputs, std::vector<int>{spec->steps[0].output});
}

TEST(OnnxLoaderRefusalTest, AddAfterActivation) {
  // A per-feature or scalar constant after an activation is a post-op
  // (OnnxLoaderFoldTest); one of another shape is refused.
  ModelBuilder b;
  b.Gemm(4, 2, Iota(8), Iota(2));
  b.Node("Relu");
  b.Initializer("c", {3}, {1, 1, 1});
  b.Node("Add", {"c"}, "late_add");
  EXPECT_REFUSED(b.Finish(), "'late_add'", "constant 'c' has shape [3]");
}

TEST(OnnxLoaderTest, BranchingGraphKeepsWhatTheOutputNeeds) {
  ModelBuilder b;
  b.Gemm(4, 4, Iota(16), Iota(4), "fc1");
  const std::string fork = b.current();
  b.Node("Relu", {}, "r");  // read by nothing: dropped
  auto* n = b.Node("Tanh", {}, "side");
  n->set_input(0, fork);  // consumes fc1's output, not r's
  auto spec = LoadOnnxModelFromBytes(b.Finish());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  ASSERT_EQ(spec->steps.size(), 2u);
  EXPECT_TRUE(spec->layers[0].activations.empty());  // fc1 has two readers: not fused
  EXPECT_EQ(spec->steps[1].kind, StepKind::kActivate);
  EXPECT_EQ(spec->steps[1].activations, std::vector<Activation>{Activation::Tanh()});
}

TEST(OnnxLoaderTest, OutputInTheMiddleDropsTheRest) {
  ModelBuilder b;
  b.Gemm(4, 4, Iota(16), Iota(4), "fc1");
  const std::string mid = b.current();
  b.Gemm(4, 2, Iota(8), Iota(2), "fc2");
  b.Finish();
  b.graph()->mutable_output(0)->set_name(mid);
  auto spec = LoadOnnxModelFromBytes(b.model().SerializeAsString());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  ASSERT_EQ(spec->layers.size(), 1u);
  EXPECT_EQ(spec->layers[0].name, "fc1");
  EXPECT_EQ(spec->output_features, 4);
}

TEST(OnnxLoaderRefusalTest, DeclaredOutputWidthMismatch) {
  ModelBuilder b;
  b.Gemm(4, 2, Iota(8), Iota(2));
  EXPECT_REFUSED(b.Finish(3), "declares 3 features", "produces 2");
}

TEST(OnnxLoaderRefusalTest, NonFloatInput) {
  ModelBuilder b;
  b.graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->set_elem_type(
      onnx::TensorProto::INT64);
  b.Gemm(4, 2, Iota(8), Iota(2));
  EXPECT_REFUSED(b.Finish(), "'x'", "INT64");
}

TEST(OnnxLoaderRefusalTest, SymbolicFeatureDimension) {
  ModelBuilder b({-1, -1});
  b.Gemm(4, 2, Iota(8), Iota(2));
  EXPECT_REFUSED(b.Finish(), "dimension 1", "fixed positive size");
}

TEST(OnnxLoaderRefusalTest, RankThreeWithoutFlatten) {
  ModelBuilder b({-1, 2, 2});
  b.Gemm(4, 2, Iota(8), Iota(2), "fc");
  EXPECT_REFUSED(b.Finish(), "'fc'", "Flatten");
}

TEST(OnnxLoaderRefusalTest, NoLayers) {
  ModelBuilder b;
  b.Node("Identity");
  EXPECT_REFUSED(b.Finish(), "no Gemm or MatMul");
}

TEST(OnnxLoaderRefusalTest, CustomDomain) {
  ModelBuilder b;
  b.Gemm(4, 2, Iota(8), Iota(2));
  auto* n = b.Node("FusedSelu", {}, "custom");
  n->set_domain("com.example");
  auto* op = b.model().add_opset_import();
  op->set_domain("com.example");
  op->set_version(1);
  OnnxLoaderOptions no_checker;
  no_checker.run_onnx_checker = false;
  auto spec = LoadOnnxModelFromBytes(b.Finish(), no_checker);
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(spec.status().message(), HasSubstr("'custom'"));
  EXPECT_THAT(spec.status().message(), HasSubstr("com.example"));
}

// ------------------------------------- activations, patterns, folds (issue 13)

// A Constant node appended now (so it sits between the nodes added before and
// after it, as PyTorch places them) holding `values` with `dims`.
std::string ConstantNode(ModelBuilder& b, const std::string& name, std::vector<int64_t> dims,
                         const std::vector<float>& values) {
  auto* n = b.graph()->add_node();
  n->set_op_type("Constant");
  n->set_name(name);
  n->add_output(name + "_out");
  auto* a = n->add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  auto* t = a->mutable_t();
  t->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) t->add_dims(d);
  for (float v : values) t->add_float_data(v);
  return name + "_out";
}

std::string Scalar(ModelBuilder& b, const std::string& name, float v) {
  return ConstantNode(b, name, {}, {v});
}

// GELU as torch.onnx.export (PyTorch 1.13, opset 13) writes nn.GELU():
// Div(x, √2) → Erf → Add(1) → Mul(x, ·) → Mul(0.5), constants in between.
struct GeluConstants {
  float divisor = 1.4142135381698608f;
  float one = 1.0f;
  float half = 0.5f;
};
void AddGelu(ModelBuilder& b, const std::string& tag, GeluConstants c = {}) {
  const std::string x = b.current();
  b.Node("Div", {Scalar(b, tag + "_sqrt2", c.divisor)}, tag + "_div");
  b.Node("Erf", {}, tag + "_erf");
  b.Node("Add", {Scalar(b, tag + "_one", c.one)}, tag + "_add");
  b.Node("Mul", {x}, tag + "_mul");
  b.Node("Mul", {Scalar(b, tag + "_half", c.half)}, tag + "_half_mul");
}

TEST(OnnxLoaderActivationTest, NewActivationNodes) {
  ModelBuilder b;
  b.Gemm(4, 3, Iota(12), Iota(3), "fc1");
  ModelBuilder::SetFloat(b.Node("LeakyRelu", {}, "leaky"), "alpha", 0.2f);
  b.Node("LeakyRelu", {}, "leaky_default");
  b.Node("HardSigmoid", {}, "hs_default");
  auto* hs = b.Node("HardSigmoid", {}, "hs_torch");
  ModelBuilder::SetFloat(hs, "alpha", 1.0f / 6.0f);
  b.Node("Softplus", {}, "softplus");
  b.Node("Clip", {Scalar(b, "lo", 0.0f), Scalar(b, "hi", 6.0f)}, "relu6");
  b.Node("Clip", {"", Scalar(b, "hi2", 2.0f)}, "clamp_max");
  b.Initializer("slope", {3}, {0.25f, -0.5f, 1.5f});
  b.Node("PRelu", {"slope"}, "prelu");
  b.Gemm(3, 2, Iota(6), Iota(2), "fc2");
  b.Initializer("shared_slope", {1}, {0.3f});
  b.Node("PRelu", {"shared_slope"}, "prelu_shared");
  b.Initializer("equal_slopes", {1, 2}, {0.4f, 0.4f});
  b.Node("PRelu", {"equal_slopes"}, "prelu_equal");
  ModelBuilder::SetInt(b.Node("Cast", {}, "cast_float"), "to", onnx::TensorProto::FLOAT);
  auto spec = LoadOnnxModelFromBytes(b.Finish(2));
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  const std::vector<Activation> first = {
      Activation::LeakyRelu(0.2f),
      Activation::LeakyRelu(0.01f),
      Activation::HardSigmoid(0.2f, 0.5f),
      Activation::HardSigmoid(1.0f / 6.0f, 0.5f),
      Activation::Softplus(),
      Activation::Clip(0.0f, 6.0f),
      Activation::Clip(std::numeric_limits<float>::lowest(), 2.0f),
      Activation::PRelu({0.25f, -0.5f, 1.5f})};
  EXPECT_EQ(spec->layers[0].activations, first);
  // One slope for all features (or all equal) is kept as one value.
  const std::vector<Activation> second = {Activation::PRelu({0.3f}), Activation::PRelu({0.4f})};
  EXPECT_EQ(spec->layers[1].activations, second);
}

TEST(OnnxLoaderActivationTest, ClipBoundsAsAttributesBeforeOpset11) {
  ModelBuilder b({-1, 4}, /*opset=*/10);
  b.Gemm(4, 2, Iota(8), Iota(2));
  auto* clip = b.Node("Clip", {}, "clip10");
  ModelBuilder::SetFloat(clip, "min", -1.0f);
  ModelBuilder::SetFloat(clip, "max", 1.0f);
  auto spec = LoadOnnxModelFromBytes(b.Finish());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->layers[0].activations, std::vector<Activation>{Activation::Clip(-1.0f, 1.0f)});
}

TEST(OnnxLoaderActivationTest, GeluSiluHardSwishPatterns) {
  ModelBuilder b;
  b.Gemm(4, 3, Iota(12), Iota(3), "fc1");
  AddGelu(b, "gelu");
  b.Gemm(3, 3, Iota(9), Iota(3), "fc2");
  const std::string x2 = b.current();
  b.Node("Sigmoid", {}, "silu_sigmoid");
  b.Node("Mul", {x2}, "silu_mul");
  b.Gemm(3, 2, Iota(6), Iota(2), "fc3");
  const std::string x3 = b.current();
  ModelBuilder::SetFloat(b.Node("HardSigmoid", {}, "hs"), "alpha", 1.0f / 6.0f);
  auto* mul = b.Node("Mul", {x3}, "hardswish_mul");
  std::swap(*mul->mutable_input(0), *mul->mutable_input(1));  // x · gate, either order
  auto spec = LoadOnnxModelFromBytes(b.Finish(2));
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  ASSERT_EQ(spec->layers.size(), 3u);
  EXPECT_EQ(spec->layers[0].activations, std::vector<Activation>{Activation::Gelu()});
  EXPECT_EQ(spec->layers[1].activations, std::vector<Activation>{Activation::Silu()});
  EXPECT_EQ(spec->layers[2].activations, std::vector<Activation>{Activation::HardSwish()});
  EXPECT_EQ(spec->layers[0].weights, Iota(12));  // nothing of the pattern folded into W
}

// Folds are computed here from their definitions, in double.
TEST(OnnxLoaderFoldTest, BatchNormAfterGemmFoldsIntoWeightsAndBias) {
  ModelBuilder b;
  const auto w = Iota(12, 0.1f), bias = Iota(3, 0.3f);
  b.Gemm(4, 3, w, bias, "fc");
  const std::vector<float> scale = {1.5f, -0.5f, 2.0f}, shift = {0.1f, 0.2f, -0.3f};
  const std::vector<float> mean = {0.05f, -0.1f, 0.4f}, var = {0.8f, 1.3f, 0.01f};
  b.Initializer("bn_scale", {3}, scale);
  b.Initializer("bn_B", {3}, shift);
  b.Initializer("bn_mean", {3}, mean);
  b.Initializer("bn_var", {3}, var);
  auto* bn = b.Node("BatchNormalization", {"bn_scale", "bn_B", "bn_mean", "bn_var"}, "bn");
  ModelBuilder::SetFloat(bn, "epsilon", 1e-3f);
  b.Node("Selu");
  auto spec = LoadOnnxModelFromBytes(b.Finish(3));
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  const DenseLayer& l = spec->layers[0];
  for (int64_t j = 0; j < 3; ++j) {
    const double s = double(scale[j]) / std::sqrt(double(var[j]) + double(1e-3f));
    for (int64_t k = 0; k < 4; ++k) {
      EXPECT_FLOAT_EQ(l.weights[k * 3 + j], float(double(w[k * 3 + j]) * s)) << k << "," << j;
    }
    EXPECT_FLOAT_EQ(l.bias[j], float((double(bias[j]) - mean[j]) * s + shift[j])) << j;
  }
  EXPECT_EQ(l.activations, std::vector<Activation>{Activation::Selu()});
}

TEST(OnnxLoaderFoldTest, ConstantsBeforeAnActivationFoldIntoTheLayer) {
  ModelBuilder b;
  const auto w = Iota(8, 0.1f);
  b.Initializer("W", {4, 2}, w);
  b.Node("MatMul", {"W"}, "mm");
  b.Initializer("m", {1, 2}, {2.0f, -3.0f});
  b.Node("Mul", {"m"}, "scale");                     // x·m
  b.Node("Add", {Scalar(b, "one", 1.0f)}, "shift");  // + 1
  auto* sub = b.Node("Sub", {Scalar(b, "ten", 10.0f)}, "flip");
  std::swap(*sub->mutable_input(0), *sub->mutable_input(1));  // 10 − x
  b.Node("Div", {Scalar(b, "four", 4.0f)}, "quarter");        // / 4
  b.Node("Relu");
  auto spec = LoadOnnxModelFromBytes(b.Finish());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  const DenseLayer& l = spec->layers[0];
  const double m[2] = {2.0, -3.0};
  for (int64_t j = 0; j < 2; ++j) {
    for (int64_t k = 0; k < 4; ++k) {
      EXPECT_FLOAT_EQ(l.weights[k * 2 + j], float(-m[j] * w[k * 2 + j] / 4.0));
    }
    EXPECT_FLOAT_EQ(l.bias[j], float((10.0 - 1.0) / 4.0));
  }
  EXPECT_EQ(l.activations, std::vector<Activation>{Activation::Relu()});
}

TEST(OnnxLoaderFoldTest, ConstantsAfterAnActivationBecomePostOps) {
  ModelBuilder b;
  b.Gemm(4, 2, Iota(8), Iota(2), "fc");
  b.Node("Relu");
  b.Node("Mul", {Scalar(b, "two", 2.0f)}, "double");
  b.Node("Add", {Scalar(b, "one", 1.0f)}, "plus_one");  // merged: 2x + 1
  b.Initializer("v", {2}, {0.5f, 4.0f});
  b.Node("Mul", {"v"}, "per_feature_scale");
  b.Node("Sub", {"v"}, "per_feature_shift");
  b.Initializer("same", {2}, {3.0f, 3.0f});
  b.Node("Add", {"same"}, "uniform_shift");  // one value for all: linear
  b.Node("Tanh");
  b.Initializer("bn_scale", {2}, {2.0f, 1.0f});
  b.Initializer("bn_B", {2}, {0.0f, 1.0f});
  b.Initializer("bn_mean", {2}, {1.0f, 0.0f});
  b.Initializer("bn_var", {2}, {3.0f, 0.0f});
  auto* bn = b.Node("BatchNormalization", {"bn_scale", "bn_B", "bn_mean", "bn_var"}, "late_bn");
  ModelBuilder::SetFloat(bn, "epsilon", 1.0f);
  auto spec = LoadOnnxModelFromBytes(b.Finish());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  const std::vector<Activation> expected = {
      Activation::Relu(), Activation::Linear(2.0f, 1.0f), Activation::Scale({0.5f, 4.0f}),
      Activation::Shift({-0.5f, -4.0f}), Activation::Linear(1.0f, 3.0f), Activation::Tanh(),
      // 2/√(3+1) = 1, 1/√(0+1) = 1: a shift of B − mean·1 = (−1, 1).
      Activation::Shift({-1.0f, 1.0f})};
  EXPECT_EQ(spec->layers[0].activations, expected);
  EXPECT_EQ(spec->layers[0].weights, Iota(8));
}

// IEEE binary16 → float by its definition: (−1)^s · 2^(e−15) · 1.m, or
// 2^(−14) · 0.m for e = 0.
double HalfValue(uint16_t h) {
  const int sign = h >> 15, e = (h >> 10) & 0x1F, m = h & 0x3FF;
  const double v = e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25);
  return sign ? -v : v;
}

TEST(OnnxLoaderTypeTest, EveryFiniteFloat16WeightConvertsExactly) {
  std::vector<uint16_t> bits;
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if (((h >> 10) & 0x1F) != 0x1F) bits.push_back(static_cast<uint16_t>(h));
  }
  ASSERT_EQ(bits.size(), 248u * 256u);
  for (bool raw : {true, false}) {
    ModelBuilder b({-1, 248});
    auto* t = b.graph()->add_initializer();
    t->set_name("W16");
    t->set_data_type(onnx::TensorProto::FLOAT16);
    t->add_dims(248);
    t->add_dims(256);
    if (raw) {
      std::string bytes;
      for (uint16_t h : bits) {
        bytes.push_back(static_cast<char>(h & 0xFF));
        bytes.push_back(static_cast<char>(h >> 8));
      }
      t->set_raw_data(bytes);
    } else {
      for (uint16_t h : bits) t->add_int32_data(h);
    }
    b.Node("MatMul", {"W16"}, "mm16");
    auto spec = LoadOnnxModelFromBytes(b.Finish());
    ASSERT_TRUE(spec.ok()) << spec.status().ToString();
    const auto& w = spec->layers[0].weights;
    ASSERT_EQ(w.size(), bits.size());
    for (size_t i = 0; i < bits.size(); ++i) {
      ASSERT_EQ(double(w[i]), HalfValue(bits[i])) << "bits 0x" << std::hex << bits[i];
      ASSERT_EQ(std::signbit(w[i]), (bits[i] & 0x8000) != 0);
    }
  }
}

TEST(OnnxLoaderTypeTest, BFloat16AndCastOfWeightsAndFloat64Bias) {
  ModelBuilder b;
  auto* t = b.graph()->add_initializer();
  t->set_name("Wbf");
  t->set_data_type(onnx::TensorProto::BFLOAT16);
  t->add_dims(4);
  t->add_dims(2);
  // 1.5, −2, 0.1015625, −0 and powers of two 2⁻¹⁰⁰ … 2¹⁰⁰ (bits: value >> 16).
  for (int v : {0x3FC0, 0xC000, 0x3DD0, 0x8000, 0x0D80, 0x7180, 0x3F80, 0x4000}) {
    t->add_int32_data(v);
  }
  auto* cast = b.graph()->add_node();  // as converters write fp16/bf16 weights
  cast->set_op_type("Cast");
  cast->set_name("cast_w");
  cast->add_input("Wbf");
  cast->add_output("W32");
  ModelBuilder::SetInt(cast, "to", onnx::TensorProto::FLOAT);
  auto* c = b.graph()->add_initializer();
  c->set_name("C64");
  c->set_data_type(onnx::TensorProto::DOUBLE);
  c->add_dims(2);
  const double c64[2] = {0.1, -1e-3};
  c->set_raw_data(std::string(reinterpret_cast<const char*>(c64), sizeof(c64)));
  b.Node("Gemm", {"W32", "C64"}, "gemm_bf16");
  auto spec = LoadOnnxModelFromBytes(b.Finish());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  const std::vector<float> expected = {
      1.5f, -2.0f, 0.1015625f, -0.0f, std::ldexp(1.0f, -100), std::ldexp(1.0f, 100), 1.0f, 2.0f};
  EXPECT_EQ(spec->layers[0].weights, expected);
  EXPECT_EQ(spec->layers[0].bias, (std::vector<float>{0.1f, -1e-3f}));  // rounded to nearest
}

// ------------------------------------------------- refusals of issue 13

TEST(OnnxLoaderPatternRefusalTest, GeluWithWrongConstantsNamesTheNode) {
  {
    ModelBuilder b;
    b.Gemm(4, 3, Iota(12), Iota(3));
    AddGelu(b, "g", {.divisor = 2.0f});
    EXPECT_REFUSED(b.Finish(), "'g_div'", "(Div)", "GELU", "must be 1.41421356", "got 2");
  }
  {
    ModelBuilder b;
    b.Gemm(4, 3, Iota(12), Iota(3));
    AddGelu(b, "g", {.one = 2.0f});
    EXPECT_REFUSED(b.Finish(), "'g_add'", "(Add)", "GELU", "must be 1, got 2");
  }
  {
    ModelBuilder b;
    b.Gemm(4, 3, Iota(12), Iota(3));
    AddGelu(b, "g", {.half = 0.25f});
    EXPECT_REFUSED(b.Finish(), "'g_half_mul'", "(Mul)", "must be 0.5, got 0.25");
  }
}

TEST(OnnxLoaderPatternRefusalTest, GeluIntermediateWithAnotherConsumer) {
  ModelBuilder b({-1, 4});
  b.Gemm(4, 3, Iota(12), Iota(3));
  const std::string x = b.current();
  b.Node("Div", {Scalar(b, "sqrt2", 1.4142135f)}, "div");
  b.Node("Erf", {}, "erf");
  const std::string erf_out = b.current();
  b.Node("Add", {Scalar(b, "one", 1.0f)}, "add");
  b.Node("Mul", {x}, "mul");
  b.Node("Mul", {erf_out}, "reuses_erf");  // erf's output read twice
  EXPECT_REFUSED(b.Finish(), "'erf'", "(Erf)", "must feed exactly one Add");
}

TEST(OnnxLoaderPatternRefusalTest, GeluTanhApproximation) {
  // nn.GELU(approximate='tanh') as PyTorch exports it starts with Mul(x, x).
  ModelBuilder b;
  b.Gemm(4, 3, Iota(12), Iota(3));
  b.Node("Mul", {b.current()}, "square");
  EXPECT_REFUSED(b.Finish(), "'square'", "(Mul)", "is not a constant");
}

TEST(OnnxLoaderPatternRefusalTest, HardSigmoidGateNotHardSwish) {
  ModelBuilder b;
  b.Gemm(4, 3, Iota(12), Iota(3));
  const std::string x = b.current();
  b.Node("HardSigmoid", {}, "gate");  // ONNX defaults 0.2/0.5, not PyTorch's 1/6
  b.Node("Mul", {x}, "gated");
  EXPECT_REFUSED(b.Finish(), "'gate'", "HardSwish only with alpha=1/6", "got alpha=0.2");
}

TEST(OnnxLoaderPatternRefusalTest, ProductOfTwoTensorsAndErfAlone) {
  {
    ModelBuilder b;
    b.Gemm(4, 3, Iota(12), Iota(3));
    const std::string x = b.current();
    b.Node("Tanh", {}, "t");
    b.Node("Mul", {x}, "x_tanh");  // x·tanh(x) (Mish-like): no such pattern
    EXPECT_REFUSED(b.Finish(), "'x_tanh'", "(Mul)", "is not a constant");
  }
  {
    ModelBuilder b;
    b.Gemm(4, 3, Iota(12), Iota(3));
    b.Node("Erf", {}, "lonely_erf");
    EXPECT_REFUSED(b.Finish(), "'lonely_erf'", "unsupported op type 'Erf'");
  }
}

TEST(OnnxLoaderFoldRefusalTest, ArithmeticThatIsNotAffine) {
  {
    ModelBuilder b;
    b.Gemm(4, 2, Iota(8), Iota(2));
    auto* div = b.Node("Div", {Scalar(b, "one", 1.0f)}, "reciprocal");
    std::swap(*div->mutable_input(0), *div->mutable_input(1));
    EXPECT_REFUSED(b.Finish(), "'reciprocal'", "(Div)", "divides a constant by the tensor");
  }
  {
    ModelBuilder b;
    b.Gemm(4, 2, Iota(8), Iota(2));
    b.Node("Div", {Scalar(b, "zero", 0.0f)}, "by_zero");
    EXPECT_REFUSED(b.Finish(), "'by_zero'", "divides by zero");
  }
  {
    ModelBuilder b;
    b.Gemm(4, 2, Iota(8), Iota(2));
    b.Node("Relu");
    b.Node("Div", {Scalar(b, "tiny", 1e-45f)}, "huge_scale");  // 1/1e-45 is past FLOAT
    EXPECT_REFUSED(b.Finish(), "'huge_scale'", "overflows FLOAT");
  }
  {
    ModelBuilder b;
    b.Gemm(4, 2, Iota(8), Iota(2));
    b.Node("Relu");
    b.Initializer("c", {2, 2}, {1, 1, 1, 1});
    b.Node("Mul", {"c"}, "matrix_mul");
    EXPECT_REFUSED(b.Finish(), "'matrix_mul'", "(Mul)", "has shape [2,2]", "expected [2]");
  }
  {
    ModelBuilder b;  // input standardization: a shift step, not folded
    b.Initializer("mean", {4}, {1, 2, 3, 4});
    b.Node("Sub", {"mean"}, "standardize");
    b.Gemm(4, 2, Iota(8), Iota(2));
    auto spec = LoadOnnxModelFromBytes(b.Finish());
    ASSERT_TRUE(spec.ok()) << spec.status().ToString();
    EXPECT_EQ(spec->steps[0].kind, StepKind::kActivate);
    EXPECT_EQ(spec->steps[0].activations,
              std::vector<Activation>{Activation::Shift({-1, -2, -3, -4})});
  }
  {
    ModelBuilder b({-1, 2, 2});  // per-feature constants need rank 2
    b.Initializer("mean", {2}, {1, 2});
    b.Node("Sub", {"mean"}, "standardize3");
    EXPECT_REFUSED(b.Finish(), "'standardize3'", "(Sub)", "rank-2 tensors only");
  }
}

TEST(OnnxLoaderFoldRefusalTest, BatchNormOutsideTheInferenceForm) {
  auto bn_model = [](auto&& tweak) {
    ModelBuilder b({-1, 4}, /*opset=*/15);  // training_mode: opset 14 on
    b.Gemm(4, 2, Iota(8), Iota(2));
    for (const char* n : {"s", "B", "m", "v"}) b.Initializer(n, {2}, {1.0f, 1.0f});
    auto* bn = b.Node("BatchNormalization", {"s", "B", "m", "v"}, "bn");
    tweak(b, bn);
    return b.Finish();
  };
  EXPECT_REFUSED(bn_model([](ModelBuilder&, onnx::NodeProto* bn) {
                   ModelBuilder::SetInt(bn, "training_mode", 1);
                 }),
                 "'bn'", "(BatchNormalization)", "training_mode=1");
  EXPECT_REFUSED(bn_model([](ModelBuilder&, onnx::NodeProto* bn) {
                   bn->add_output("running_mean");
                   bn->add_output("running_var");
                 }),
                 "'bn'", "training form");
  EXPECT_REFUSED(bn_model([](ModelBuilder& b, onnx::NodeProto* bn) {
                   b.Initializer("neg_var", {2}, {1.0f, -2.0f});
                   bn->set_input(4, "neg_var");
                 }),
                 "'bn'", "input_var + epsilon is not positive at feature 1");
  EXPECT_REFUSED(bn_model([](ModelBuilder& b, onnx::NodeProto* bn) {
                   b.Initializer("m3", {3}, {1.0f, 1.0f, 1.0f});
                   bn->set_input(3, "m3");
                 }),
                 "'bn'", "input_mean 'm3' has shape [3]");
}

TEST(OnnxLoaderActivationRefusalTest, ClipPReluAndCast) {
  {
    ModelBuilder b;
    b.Gemm(4, 2, Iota(8), Iota(2));
    b.Node("Clip", {Scalar(b, "lo", 3.0f), Scalar(b, "hi", 1.0f)}, "inverted");
    EXPECT_REFUSED(b.Finish(), "'inverted'", "(Clip)", "min 3 is above max 1");
  }
  {
    ModelBuilder b;
    b.Gemm(4, 2, Iota(8), Iota(2));
    const std::string x = b.current();
    b.Node("Relu");
    b.Node("Clip", {x}, "dynamic_min");
    EXPECT_REFUSED(b.Finish(), "'dynamic_min'", "is not a constant");
  }
  {
    ModelBuilder b;
    b.Gemm(4, 2, Iota(8), Iota(2));
    b.Initializer("slopes", {2, 2}, {1, 1, 1, 1});
    b.Node("PRelu", {"slopes"}, "prelu2d");
    EXPECT_REFUSED(b.Finish(), "'prelu2d'", "(PRelu)", "slope 'slopes' has shape [2,2]");
  }
  {
    ModelBuilder b;
    b.Gemm(4, 2, Iota(8), Iota(2));
    ModelBuilder::SetInt(b.Node("Cast", {}, "to_half"), "to", onnx::TensorProto::FLOAT16);
    EXPECT_REFUSED(b.Finish(), "'to_half'", "(Cast)", "FLOAT16", "computes in FLOAT only");
  }
  {
    ModelBuilder b;
    auto* t = b.graph()->add_initializer();
    t->set_name("W8");
    t->set_data_type(onnx::TensorProto::INT8);
    t->add_dims(4);
    t->add_dims(2);
    for (int i = 0; i < 8; ++i) t->add_int32_data(i);
    b.Node("MatMul", {"W8"}, "int8_mm");
    EXPECT_REFUSED(b.Finish(), "'int8_mm'", "element type INT8", "FLOAT16, BFLOAT16 or DOUBLE");
  }
}

TEST(OnnxLoaderFileTest, MissingFileIsNotFound) {
  auto spec = LoadOnnxModelFromFile("/nonexistent/dir/model.onnx");
  EXPECT_EQ(spec.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(spec.status().message(), HasSubstr("/nonexistent/dir/model.onnx"));
}

TEST(OnnxLoaderFileTest, OversizedFileIsResourceExhausted) {
  ModelBuilder b;
  b.Gemm(4, 2, Iota(8), Iota(2));
  const std::string path = ::testing::TempDir() + "/oversized.onnx";
  std::ofstream(path, std::ios::binary) << b.Finish();
  OnnxLoaderOptions tiny;
  tiny.max_file_bytes = 16;
  auto spec = LoadOnnxModelFromFile(path, tiny);
  EXPECT_EQ(spec.status().code(), StatusCode::kResourceExhausted);
  auto ok = LoadOnnxModelFromFile(path);
  EXPECT_TRUE(ok.ok()) << ok.status().ToString();
  std::remove(path.c_str());
}

TEST(OnnxLoaderFileTest, ErrorsNameTheFile) {
  const std::string path = ::testing::TempDir() + "/garbage.onnx";
  std::ofstream(path, std::ios::binary) << "garbage";
  auto spec = LoadOnnxModelFromFile(path);
  EXPECT_EQ(spec.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(spec.status().message(), HasSubstr(path));
  std::remove(path.c_str());
}

// Mutated and truncated versions of a valid model: each either loads or is
// refused with a status; none crashes (run under ASan in the asan preset).
TEST(OnnxLoaderFuzzTest, MutatedModelsNeverCrash) {
  ModelBuilder b;
  b.Gemm(4, 8, Iota(32), Iota(8), "fc1");
  b.Node("Selu");
  b.Initializer("W2", {8, 3}, Iota(24));
  b.Node("MatMul", {"W2"}, "mm");
  b.Initializer("b2", {3}, {1, 2, 3});
  b.Node("Add", {"b2"});
  b.Node("Softmax");
  const std::string good = b.Finish(3);
  ASSERT_TRUE(LoadOnnxModelFromBytes(good).ok());
  std::mt19937 rng(42);
  int loaded = 0, refused = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string bytes = good;
    const int edits = 1 + int(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      switch (rng() % 4) {
        case 0:
          bytes[rng() % bytes.size()] = char(rng());
          break;
        case 1:
          bytes[rng() % bytes.size()] ^= char(1 << (rng() % 8));
          break;
        case 2:
          bytes.resize(rng() % bytes.size() + 1);
          break;
        case 3:
          bytes.insert(rng() % bytes.size(), 1, char(rng()));
          break;
      }
    }
    for (bool checker : {true, false}) {
      OnnxLoaderOptions options;
      options.run_onnx_checker = checker;
      auto spec = LoadOnnxModelFromBytes(bytes, options);
      if (spec.ok()) {
        ++loaded;
        // Whatever loads is self-consistent (a graph, not always a chain).
        ModelSpec copy = *spec;
        ASSERT_TRUE(CompleteModelSpec(copy).ok());
        ASSERT_FALSE(spec->steps.empty());
        for (const auto& l : spec->layers) {
          ASSERT_EQ(l.weights.size(), size_t(l.in_features * l.out_features));
          ASSERT_EQ(l.bias.size(), size_t(l.out_features));
          for (float w : l.weights) ASSERT_TRUE(std::isfinite(w));
        }
      } else {
        ++refused;
        EXPECT_FALSE(spec.status().message().empty());
      }
    }
  }
  std::printf("mutated models: %d loaded, %d refused\n", loaded, refused);
  EXPECT_GT(refused, 0);
}

}  // namespace
}  // namespace selu::core

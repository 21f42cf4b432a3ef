// Protocol ⇄ core conversion: every accepted form of input, and a precise
// INVALID_ARGUMENT for every malformed one.
#include "server/grpc/infer_codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

namespace selu::grpc_transport {
namespace {

using ::testing::HasSubstr;
using Request = inference::ModelInferRequest;

core::ModelSpec Spec(std::vector<int64_t> input_shape = {-1, 4}) {
  core::ModelSpec spec;
  spec.input_name = "x";
  spec.output_name = "y";
  spec.input_shape = input_shape;
  spec.input_features = 1;
  for (size_t i = 1; i < input_shape.size(); ++i) spec.input_features *= input_shape[i];
  spec.output_features = 3;
  return spec;
}

Request TypedFp32(int64_t rows, const std::vector<float>& values) {
  Request r;
  r.set_model_name("m");
  auto* in = r.add_inputs();
  in->set_name("x");
  in->set_datatype("FP32");
  in->add_shape(rows);
  in->add_shape(4);
  for (float v : values) in->mutable_contents()->add_fp32_contents(v);
  return r;
}

template <typename T>
Request Raw(const std::string& datatype, int64_t rows, const std::vector<T>& values) {
  Request r;
  r.set_model_name("m");
  auto* in = r.add_inputs();
  in->set_name("x");
  in->set_datatype(datatype);
  in->add_shape(rows);
  in->add_shape(4);
  r.add_raw_input_contents(
      std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T)));
  return r;
}

core::Status Decode(const Request& r, DecodedInput* out, int64_t max_batch = 8,
                    const core::ModelSpec& spec = Spec()) {
  return DecodeInferInput(r, spec, max_batch, out);
}

void ExpectInvalid(const Request& r, std::vector<std::string> parts,
                   const core::ModelSpec& spec = Spec()) {
  DecodedInput in;
  core::Status s = Decode(r, &in, 8, spec);
  EXPECT_EQ(s.code(), core::StatusCode::kInvalidArgument) << s.ToString();
  for (const auto& p : parts) EXPECT_THAT(s.message(), HasSubstr(p));
}

TEST(InferCodecTest, TypedFp32IsUsedInPlace) {
  const Request r = TypedFp32(2, {1, 2, 3, 4, 5, 6, 7, 8});
  DecodedInput in;
  ASSERT_TRUE(Decode(r, &in).ok());
  EXPECT_EQ(in.rows, 2);
  EXPECT_FALSE(in.raw);
  EXPECT_EQ(in.data, r.inputs(0).contents().fp32_contents().data());
  EXPECT_TRUE(in.converted.empty());
}

TEST(InferCodecTest, RawFp32IsUsedInPlace) {
  const Request r = Raw<float>("FP32", 1, {1, 2, 3, 4});
  DecodedInput in;
  ASSERT_TRUE(Decode(r, &in).ok());
  EXPECT_TRUE(in.raw);
  EXPECT_EQ(static_cast<const void*>(in.data), r.raw_input_contents(0).data());
  EXPECT_EQ(in.data[3], 4.0f);
}

TEST(InferCodecTest, Fp64TypedAndRawAreConverted) {
  Request typed = TypedFp32(1, {});
  typed.mutable_inputs(0)->set_datatype("FP64");
  for (double v : {0.5, -1.25, 3.0, 1e-3}) {
    typed.mutable_inputs(0)->mutable_contents()->add_fp64_contents(v);
  }
  DecodedInput in;
  ASSERT_TRUE(Decode(typed, &in).ok());
  EXPECT_EQ(std::vector<float>(in.data, in.data + 4),
            (std::vector<float>{0.5f, -1.25f, 3.0f, 1e-3f}));

  DecodedInput raw;
  ASSERT_TRUE(Decode(Raw<double>("FP64", 1, {1, 2, 3, 4}), &raw).ok());
  EXPECT_TRUE(raw.raw);
  EXPECT_EQ(raw.data[2], 3.0f);
}

TEST(InferCodecTest, HalfAndBfloat16Conversions) {
  EXPECT_EQ(HalfToFloat(0x3C00), 1.0f);
  EXPECT_EQ(HalfToFloat(0xC000), -2.0f);
  EXPECT_EQ(HalfToFloat(0x7BFF), 65504.0f);
  EXPECT_EQ(HalfToFloat(0x0001), std::ldexp(1.0f, -24));     // smallest subnormal
  EXPECT_EQ(HalfToFloat(0x03FF), std::ldexp(1023.0f, -24));  // largest subnormal
  EXPECT_EQ(HalfToFloat(0x8000), -0.0f);
  EXPECT_TRUE(std::signbit(HalfToFloat(0x8000)));
  EXPECT_EQ(HalfToFloat(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7E00)));
  EXPECT_EQ(HalfToFloat(0x3555), 0.333251953125f);
  EXPECT_EQ(Bfloat16ToFloat(0x3F80), 1.0f);
  EXPECT_EQ(Bfloat16ToFloat(0xC0A0), -5.0f);
  EXPECT_EQ(Bfloat16ToFloat(0x3EAA), 0.33203125f);

  DecodedInput in;
  ASSERT_TRUE(Decode(Raw<uint16_t>("FP16", 1, {0x3C00, 0xC000, 0x3800, 0x0000}), &in).ok());
  EXPECT_EQ(std::vector<float>(in.data, in.data + 4), (std::vector<float>{1, -2, 0.5f, 0}));
  ASSERT_TRUE(Decode(Raw<uint16_t>("BF16", 1, {0x3F80, 0xC0A0, 0x3F00, 0x8000}), &in).ok());
  EXPECT_EQ(std::vector<float>(in.data, in.data + 4), (std::vector<float>{1, -5, 0.5f, 0}));
}

TEST(InferCodecTest, ModelDeclaredShapeIsAccepted) {
  const core::ModelSpec spec = Spec({-1, 2, 2});
  Request r = TypedFp32(1, {1, 2, 3, 4});
  r.mutable_inputs(0)->clear_shape();
  for (int64_t d : {1, 2, 2}) r.mutable_inputs(0)->add_shape(d);
  DecodedInput in;
  EXPECT_TRUE(Decode(r, &in, 8, spec).ok());
  r.mutable_inputs(0)->set_shape(2, 3);
  ExpectInvalid(r, {"[1,2,3]", "[N,4] or [N,2,2]"}, spec);
}

TEST(InferCodecTest, Refusals) {
  {
    Request r = TypedFp32(1, {1, 2, 3, 4});
    r.add_inputs()->set_name("x2");
    ExpectInvalid(r, {"takes 1 input", "has 2"});
  }
  {
    Request r = TypedFp32(1, {1, 2, 3, 4});
    r.mutable_inputs(0)->set_name("pixels");
    ExpectInvalid(r, {"unknown input 'pixels'", "takes input 'x'"});
  }
  {
    Request r = TypedFp32(1, {1, 2, 3, 4});
    r.mutable_inputs(0)->set_datatype("INT32");
    ExpectInvalid(r, {"'INT32'", "expected FP32"});
  }
  {
    Request r = TypedFp32(1, {1, 2, 3});
    r.mutable_inputs(0)->set_shape(1, 3);
    ExpectInvalid(r, {"shape [1,3]", "expects [N,4]"});
  }
  ExpectInvalid(TypedFp32(1, {1, 2, 3}), {"3 values", "needs 4"});
  ExpectInvalid(TypedFp32(0, {}), {"at least 1"});
  ExpectInvalid(TypedFp32(9, std::vector<float>(36)), {"batch of 9 rows", "max_batch_size of 8"});
  ExpectInvalid(Raw<float>("FP32", 2, {1, 2, 3, 4}), {"holds 16 bytes", "needs 32"});
  {
    Request r = Raw<float>("FP32", 1, {1, 2, 3, 4});
    r.mutable_inputs(0)->mutable_contents()->add_fp32_contents(1);
    ExpectInvalid(r, {"both contents and raw_input_contents"});
  }
  {
    Request r = Raw<float>("FP32", 1, {1, 2, 3, 4});
    r.add_raw_input_contents("x");
    ExpectInvalid(r, {"2 raw_input_contents entries"});
  }
  {
    Request r = TypedFp32(1, {});
    r.mutable_inputs(0)->set_datatype("FP16");
    ExpectInvalid(r, {"FP16", "raw_input_contents"});
  }
  {
    Request r = TypedFp32(1, {1, 2, 3, 4});
    r.mutable_inputs(0)->mutable_contents()->add_int_contents(7);
    ExpectInvalid(r, {"another type"});
  }
}

TEST(InferCodecTest, NonFiniteValuesNameTheIndex) {
  const float inf = std::numeric_limits<float>::infinity();
  ExpectInvalid(TypedFp32(2, {0, 0, 0, 0, 0, NAN, 0, 0}),
                {"input 'x'", "NaN", "index 5", "row 1, column 1"});
  ExpectInvalid(Raw<float>("FP32", 1, {0, 0, inf, 0}), {"+inf", "index 2"});
  ExpectInvalid(Raw<double>("FP64", 1, {0, 0, 0, -1e300}), {"-inf", "index 3"});  // overflows fp32
  ExpectInvalid(Raw<uint16_t>("FP16", 1, {0x7C00, 0, 0, 0}), {"+inf", "index 0"});
}

TEST(InferCodecTest, ResponseMirrorsTheInputForm) {
  const core::ModelSpec spec = Spec();
  Request r = TypedFp32(2, std::vector<float>(8));
  r.set_id("req-7");
  inference::ModelInferResponse typed;
  PreparedOutputs prepared;
  auto out = PrepareInferResponse(r, spec, "3", 2, /*raw=*/false, &typed, &prepared);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(typed.model_name(), "m");
  EXPECT_EQ(typed.model_version(), "3");
  EXPECT_EQ(typed.id(), "req-7");
  ASSERT_EQ(typed.outputs_size(), 1);
  EXPECT_EQ(typed.outputs(0).name(), "y");
  EXPECT_EQ(typed.outputs(0).datatype(), "FP32");
  EXPECT_THAT(typed.outputs(0).shape(), ::testing::ElementsAre(2, 3));
  EXPECT_EQ(typed.outputs(0).contents().fp32_contents_size(), 6);
  EXPECT_EQ(*out, typed.outputs(0).contents().fp32_contents().data());
  EXPECT_EQ(typed.raw_output_contents_size(), 0);

  inference::ModelInferResponse raw;
  out = PrepareInferResponse(r, spec, "3", 2, /*raw=*/true, &raw, &prepared);
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(raw.raw_output_contents_size(), 1);
  EXPECT_EQ(raw.raw_output_contents(0).size(), 6 * sizeof(float));
  EXPECT_FALSE(raw.outputs(0).has_contents());
  // One output: the engine writes into the response, nothing is staged.
  EXPECT_TRUE(prepared.packed.empty());
  EXPECT_TRUE(prepared.ports.empty());

  r.add_outputs()->set_name("logits");
  inference::ModelInferResponse bad;
  auto refused = PrepareInferResponse(r, spec, "3", 2, false, &bad, &prepared);
  EXPECT_EQ(refused.status().code(), core::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("unknown output 'logits'"));
}

}  // namespace
}  // namespace selu::grpc_transport

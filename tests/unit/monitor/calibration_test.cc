// Calibration: the CSV reader (layouts it accepts, each refusal's exact
// file:line:field text) and Calibrate() against a scalar double-precision
// reference of the same statistics, and the JSON it makes round-tripping
// through the parser the server loads references with.
#include "server/core/monitor/calibration.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cfloat>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "tests/unit/monitor/snn_reference.h"

namespace selu::core {
namespace {

class CsvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = ::testing::TempDir() + "/calibration_test.XXXXXX";
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& text) {
    const std::string path = dir_ + "/data" + std::to_string(files_++) + ".csv";
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  // The message of the refusal of `text` for a 3-feature model, with the
  // file's path replaced by "data.csv".
  std::string Refusal(const std::string& text, int64_t features = 3) {
    const std::string path = Write(text);
    auto rows = ReadFeatureCsv(path, features);
    if (rows.ok()) return "(accepted)";
    EXPECT_EQ(rows.status().code(), StatusCode::kInvalidArgument) << rows.status().ToString();
    std::string message = rows.status().message();
    if (message.starts_with(path)) message.replace(0, path.size(), "data.csv");
    return message;
  }

  std::string dir_;
  int files_ = 0;
};

TEST_F(CsvTest, ReadsRowsWithoutHeader) {
  auto rows = ReadFeatureCsv(Write("1,2,3\n4,5,6\n"), 3);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  EXPECT_FALSE(rows->has_header);
  EXPECT_EQ(rows->rows, 2);
  EXPECT_EQ(rows->features, 3);
  EXPECT_EQ(rows->values, (std::vector<float>{1, 2, 3, 4, 5, 6}));
}

TEST_F(CsvTest, SkipsHeader) {
  auto rows = ReadFeatureCsv(Write("f0,f1,f2\n1,2,3\n"), 3);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  EXPECT_TRUE(rows->has_header);
  EXPECT_EQ(rows->rows, 1);
  EXPECT_EQ(rows->values, (std::vector<float>{1, 2, 3}));
}

TEST_F(CsvTest, AcceptsCrlfWhitespaceSignsAndTrailingBlankLines) {
  auto rows = ReadFeatureCsv(
      Write("\xEF\xBB\xBF x , y ,z\r\n 1 ,\t2, 3 \r\n-4.5e1,+0.5,.25\r\n1e-400,-0,7.\r\n\r\n \n"),
      3);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  EXPECT_TRUE(rows->has_header);
  EXPECT_EQ(rows->rows, 3);
  EXPECT_EQ(rows->values, (std::vector<float>{1, 2, 3, -45, 0.5f, 0.25f, 0, 0, 7}));
}

TEST_F(CsvTest, LastLineNeedsNoNewline) {
  auto rows = ReadFeatureCsv(Write("1,2,3\n4,5,6"), 3);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  EXPECT_EQ(rows->rows, 2);
}

TEST_F(CsvTest, FirstRowOfNamesIsAHeaderButOneTextFieldIsATypo) {
  auto rows = ReadFeatureCsv(Write("width, height ,label\n4,5,6\n"), 3);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  EXPECT_TRUE(rows->has_header);
  EXPECT_EQ(rows->rows, 1);
  auto typo = ReadFeatureCsv(Write("1,2,label\n4,5,6\n"), 3);
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(typo.status().message().find(":1:3: 'label' is not a number"), std::string::npos)
      << typo.status().message();
}

TEST_F(CsvTest, RefusesNamingLineFieldAndProblem) {
  const std::string long_field(100, 'x');
  const struct {
    std::string text, message;  // for a 3-feature model
  } cases[] = {
      // Values.
      {"a,b,c\n1,2,3\n4,5,6\n7,8,9\n1,2,3\n1,2,3\n1,2,abc\n",
       "data.csv:7:3: 'abc' is not a number"},
      {"1,2,3\n4,5,nan\n", "data.csv:2:3: 'nan' is not finite"},
      {"1,2,3\n-inf,5,6\n", "data.csv:2:1: '-inf' is not finite"},
      {"1,2,3\r\n4,1e39,6\r\n", "data.csv:2:2: '1e39' is out of the float32 range"},
      {"1,2,3\n4,1e999,6\n", "data.csv:2:2: '1e999' is out of the float32 range"},
      {"1,2,3\n4,,6\n", "data.csv:2:2: empty field"},
      {"1,2,3\n4,5,+-6\n", "data.csv:2:3: '+-6' is not a number"},
      {"1,2,3\n4,5,1.5.2\n", "data.csv:2:3: '1.5.2' is not a number"},
      {"1,2,3\n4,5,\"6\"\n", "data.csv:2:3: '\"6\"' is not a number"},
      {"1,2,3\n4,5,6\x01\n", "data.csv:2:3: '6?' is not a number"},
      {"1,2,3\n4,5," + long_field + "\n",
       "data.csv:2:3: '" + long_field.substr(0, 40) + "...' is not a number"},
      // Field counts; the count comes first, so a short row with a bad value is short.
      {"1,2,3\n1,2,3\n1,2,3\n1,2,3\n1,2\n", "data.csv:5: has 2 fields, the model takes 3"},
      {"1,2,3\n1,2,3,4\n", "data.csv:2: has 4 fields, the model takes 3"},
      {"1\n", "data.csv:1: has 1 field, the model takes 3"},
      {"a,b\n1,2,3\n", "data.csv:1: the header has 2 fields, the model takes 3"},
      // A typo in the first sample is not taken for a header.
      {"1,x2,3\n4,5,6\n", "data.csv:1:2: 'x2' is not a number"},
      {"1,2,3\nabc,2\n", "data.csv:2: has 2 fields, the model takes 3"},
      // No rows; blank lines anywhere but at the end.
      {"", "data.csv: no data rows"},
      {"f0,f1,f2\n", "data.csv: no data rows"},
      {"\n\n", "data.csv: no data rows"},
      {"1,2,3\n\n4,5,6\n", "data.csv:2: empty line between rows"},
      {"\n1,2,3\n", "data.csv:1: empty line between rows"},
  };
  for (const auto& c : cases) EXPECT_EQ(Refusal(c.text), c.message) << "for: " << c.text;
}

TEST_F(CsvTest, MissingFileIsNotFoundAndNamesIt) {
  const std::string path = dir_ + "/absent.csv";
  auto rows = ReadFeatureCsv(path, 3);
  ASSERT_FALSE(rows.ok());
  EXPECT_EQ(rows.status().code(), StatusCode::kNotFound);
  EXPECT_NE(rows.status().message().find(path), std::string::npos) << rows.status().message();
}

// ---- Calibrate

// SmallSnn with biases, a second activation after layer 1's SELU, and a
// softmax on top, which the statistics must not include.
ModelSpec SmallModel() {
  ModelSpec spec = SmallSnn(7);
  std::mt19937 rng(8);
  std::normal_distribution<float> b(0.0f, 0.1f);
  for (DenseLayer& l : spec.layers) {
    for (float& v : l.bias) v = b(rng);
  }
  spec.layers[1].activations.push_back(Activation::Tanh());
  spec.softmax_output = true;
  return spec;
}

// The engine computes in fp32 (and with α, λ rounded to fp32): its tensors
// are within ~1e-6 of the double reference, so are their moments.
constexpr double kTolerance = 1e-5;

void ExpectStatsNear(const TensorStats& got, const TensorStats& want, const std::string& what) {
  SCOPED_TRACE(what);
  EXPECT_EQ(got.features, want.features);
  EXPECT_NEAR(got.mean, want.mean, kTolerance);
  EXPECT_NEAR(got.variance, want.variance, kTolerance);
  ASSERT_EQ(got.unit_mean.size(), want.unit_mean.size());
  ASSERT_EQ(got.unit_variance.size(), want.unit_variance.size());
  for (size_t j = 0; j < want.unit_mean.size(); ++j) {
    EXPECT_NEAR(got.unit_mean[j], want.unit_mean[j], kTolerance) << "unit " << j;
    EXPECT_NEAR(got.unit_variance[j], want.unit_variance[j], kTolerance) << "unit " << j;
  }
}

std::vector<float> Data(int64_t rows, int64_t features) {
  return Normal(rows * features, 11, 0.3f, 1.5f);
}

TEST(CalibrateTest, MatchesScalarReference) {
  const ModelSpec spec = SmallModel();
  auto engine = MlpEngine::Create(spec);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  const int64_t rows = 301;  // batches of 64: four full ones and a partial one
  const std::vector<float> x = Data(rows, spec.input_features);
  auto ref = Calibrate(**engine, x.data(), rows, 64);
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();

  const ReferenceStats want = ReferenceFor(spec, x, rows);
  EXPECT_EQ(ref->split, "calibration");
  EXPECT_EQ(ref->rows, rows);
  ASSERT_TRUE(ref->input.has_value());
  ExpectStatsNear(*ref->input, *want.input, "input");
  ASSERT_EQ(ref->layers.size(), spec.layers.size());
  const std::vector<std::string> activations = {"Selu", "Selu+Tanh", "Identity"};
  for (size_t k = 0; k < spec.layers.size(); ++k) {
    const LayerReference& l = ref->layers[k];
    EXPECT_EQ(l.index, int64_t(k));
    EXPECT_EQ(l.name, spec.layers[k].name);
    EXPECT_EQ(l.activation, activations[k]);
    ExpectStatsNear(l.stats, want.layers[k].stats, "layer " + std::to_string(k));
  }
}

TEST(CalibrateTest, BatchSizeDoesNotChangeTheResult) {
  const ModelSpec spec = SmallModel();
  auto engine = MlpEngine::Create(spec);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  const std::vector<float> x = Data(100, spec.input_features);
  auto one = Calibrate(**engine, x.data(), 100, 1);
  auto all = Calibrate(**engine, x.data(), 100, 100);
  ASSERT_TRUE(one.ok() && all.ok());
  for (size_t k = 0; k < spec.layers.size(); ++k) {
    ExpectStatsNear(one->layers[k].stats, all->layers[k].stats, "layer " + std::to_string(k));
  }
}

TEST(CalibrateTest, JsonRoundTripsThroughTheServersParser) {
  const ModelSpec spec = SmallModel();
  auto engine = MlpEngine::Create(spec);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  const std::vector<float> x = Data(50, spec.input_features);
  auto ref = Calibrate(**engine, x.data(), 50, 16);
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  auto parsed = ParseReferenceStats(ReferenceStatsToJson(*ref), (*engine)->spec());
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->split, "calibration");
  EXPECT_EQ(parsed->rows, 50);
  ASSERT_TRUE(parsed->input.has_value());
  EXPECT_EQ(parsed->input->unit_mean, ref->input->unit_mean);
  EXPECT_EQ(parsed->input->unit_variance, ref->input->unit_variance);
  ASSERT_EQ(parsed->layers.size(), ref->layers.size());
  for (size_t k = 0; k < ref->layers.size(); ++k) {
    const TensorStats& got = parsed->layers[k].stats;
    const TensorStats& want = ref->layers[k].stats;
    EXPECT_EQ(parsed->layers[k].name, ref->layers[k].name);
    EXPECT_EQ(parsed->layers[k].activation, ref->layers[k].activation);
    EXPECT_EQ(got.features, want.features);
    EXPECT_EQ(got.mean, want.mean);  // exact: the JSON keeps every digit
    EXPECT_EQ(got.variance, want.variance);
    EXPECT_EQ(got.unit_mean, want.unit_mean);
    EXPECT_EQ(got.unit_variance, want.unit_variance);
  }
}

TEST(CalibrateTest, RefusesTooFewRowsAndBadBatchSizes) {
  auto engine = MlpEngine::Create(SmallModel(), {.max_rows = 128});
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  const std::vector<float> x = Data(4, 5);
  auto one = Calibrate(**engine, x.data(), 1, 16);
  ASSERT_FALSE(one.ok());
  EXPECT_EQ(one.status().message(), "calibration needs at least 2 rows of data, got 1");
  auto zero = Calibrate(**engine, x.data(), 4, 0);
  ASSERT_FALSE(zero.ok());
  EXPECT_EQ(zero.status().message(), "calibration batch rows must be in [1, 128], got 0");
  auto big = Calibrate(**engine, x.data(), 4, 129);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().code(), StatusCode::kInvalidArgument);
}

TEST(CalibrateTest, RefusesDataThatOverflowALayer) {
  ModelSpec spec;
  spec.input_features = 2;
  spec.output_features = 2;
  DenseLayer l;
  l.name = "wide";
  l.in_features = 2;
  l.out_features = 2;
  l.weights = {1, 1, 1, 1};
  l.bias = {0, 0};
  spec.layers.push_back(l);
  auto engine = MlpEngine::Create(spec);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  const std::vector<float> x(8, FLT_MAX);  // finite, but their sum is not
  auto ref = Calibrate(**engine, x.data(), 4, 4);
  ASSERT_FALSE(ref.ok());
  EXPECT_EQ(ref.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ref.status().message(),
            "the data drive layer 0 ('wide') to non-finite values: are they scaled as the model "
            "expects?");
}

}  // namespace
}  // namespace selu::core

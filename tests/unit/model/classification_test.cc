// Triton's classification extension in the core: label files read from the
// model folder, the top-k order (ties, NaN, k past the classes) and the
// "<score>:<index>[:<label>]" strings formatted as Triton's std::to_string.
#include "server/core/model/classification.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

namespace selu::core {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

TEST(ClassificationTest, LabelLines) {
  EXPECT_THAT(ParseLabelLines(""), IsEmpty());
  EXPECT_THAT(ParseLabelLines("zero\none\ntwo\n"), ElementsAre("zero", "one", "two"));
  EXPECT_THAT(ParseLabelLines("zero\none"), ElementsAre("zero", "one"));  // no final newline
  EXPECT_THAT(ParseLabelLines("a\r\nb\r\n"), ElementsAre("a", "b"));      // Windows line ends
  // An empty line is an index without a label; spaces are kept.
  EXPECT_THAT(ParseLabelLines("a\n\n c d \n"), ElementsAre("a", "", " c d "));
}

TEST(ClassificationTest, TopClassesBestFirst) {
  const float scores[] = {0.1f, 0.7f, 0.05f, 0.15f};
  std::vector<int64_t> top;
  TopClasses(scores, 4, 2, &top);
  EXPECT_THAT(top, ElementsAre(1, 3));
  TopClasses(scores, 4, 4, &top);
  EXPECT_THAT(top, ElementsAre(1, 3, 0, 2));
  // k past the number of classes gives every class (Triton: min(k, count)).
  TopClasses(scores, 4, 1000, &top);
  EXPECT_THAT(top, ElementsAre(1, 3, 0, 2));
  TopClasses(scores, 4, 0, &top);
  EXPECT_THAT(top, IsEmpty());
}

TEST(ClassificationTest, TiesTakeTheLowerIndexFirstAndNanComesLast) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float scores[] = {0.25f, nan, 0.5f, 0.25f, 0.5f, -1.0f, 0.25f};
  std::vector<int64_t> top;
  TopClasses(scores, 7, 7, &top);
  EXPECT_THAT(top, ElementsAre(2, 4, 0, 3, 6, 5, 1));
  TopClasses(scores, 7, 3, &top);
  EXPECT_THAT(top, ElementsAre(2, 4, 0));
  const float all_nan[] = {nan, nan, nan};
  TopClasses(all_nan, 3, 2, &top);
  EXPECT_THAT(top, ElementsAre(0, 1));
}

TEST(ClassificationTest, StringsAreFormattedAsTritonsToString) {
  for (float score : {0.982310f, 1.0f, 0.0f, 1e-7f, -3.25f, 123456.789f, 3.0e38f}) {
    std::string s;
    AppendClassString(score, 7, "", &s);
    EXPECT_EQ(s, std::to_string(score) + ":7");
  }
  std::string s = "prefix ";
  AppendClassString(0.5f, 12, "twelve", &s);
  EXPECT_EQ(s, "prefix 0.500000:12:twelve");
  s.clear();
  AppendClassString(0.123456789f, 3, "", &s);
  EXPECT_EQ(s, "0.123457:3");
  s.clear();
  AppendClassString(-std::numeric_limits<float>::max(), 9223372036854775807, "l", &s);
  EXPECT_EQ(s, std::to_string(-std::numeric_limits<float>::max()) + ":9223372036854775807:l");
}

// A model folder <tmp>/<model> with files, removed at the end.
class LabelFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("selu_labels_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    dir_ = root_ / "m";
    fs::create_directories(dir_ / "sub");
  }
  void TearDown() override { fs::remove_all(root_); }
  void Write(const fs::path& path, const std::string& text) { std::ofstream(path) << text; }

  // Two outputs, "h" (3 features) and "y" (4).
  static ModelSpec Spec() {
    ModelSpec spec;
    spec.outputs = {{"h", {-1, 3}, 3, 0, 0}, {"y", {-1, 4}, 4, 3, 1}};
    return spec;
  }
  static inference::ModelConfig Config(const std::string& output, const std::string& file) {
    inference::ModelConfig config;
    auto* o = config.add_output();
    o->set_name(output);
    o->set_label_filename(file);
    return config;
  }

  fs::path root_;
  fs::path dir_;
};

TEST_F(LabelFilesTest, LabelsComeFromTheModelFolderByOutput) {
  Write(dir_ / "sub" / "y.txt", "zero\none\n\nthree\nfour\n");
  inference::ModelConfig config = Config("y", "sub/y.txt");
  config.add_output()->set_name("h");  // listed without labels
  auto labels = ClassLabels::Load(config, dir_.string(), Spec());
  ASSERT_TRUE(labels.ok()) << labels.status().ToString();
  EXPECT_FALSE(labels->empty());
  EXPECT_THAT(labels->Of(0), IsEmpty());
  EXPECT_THAT(labels->Of(1), ElementsAre("zero", "one", "", "three", "four"));
  EXPECT_EQ(labels->Label(1, 0), "zero");
  EXPECT_EQ(labels->Label(1, 2), "");  // an empty line: no label
  EXPECT_EQ(labels->Label(1, 9), "");  // past the file: no label
  EXPECT_EQ(labels->Label(0, 0), "");
  EXPECT_EQ(labels->Label(7, 0), "");

  auto none = ClassLabels::Load(inference::ModelConfig(), dir_.string(), Spec());
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  EXPECT_THAT(none->Of(1), IsEmpty());
}

TEST_F(LabelFilesTest, AMissingFileFailsTheLoadNamingIt) {
  auto labels = ClassLabels::Load(Config("y", "labels.txt"), dir_.string(), Spec());
  ASSERT_FALSE(labels.ok());
  EXPECT_EQ(labels.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(labels.status().message(),
              HasSubstr("the label file of output 'y' (output[0].label_filename 'labels.txt')"));
  EXPECT_THAT(labels.status().message(), HasSubstr((dir_ / "labels.txt").string()));
}

TEST_F(LabelFilesTest, AFolderIsNotALabelFile) {
  auto labels = ClassLabels::Load(Config("y", "sub"), dir_.string(), Spec());
  ASSERT_FALSE(labels.ok());
  EXPECT_EQ(labels.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(labels.status().message(), HasSubstr("is not a file"));
}

TEST_F(LabelFilesTest, ASymlinkOutOfTheModelFolderIsRefused) {
  Write(root_ / "outside.txt", "a\nb\n");
  fs::create_symlink(root_ / "outside.txt", dir_ / "labels.txt");
  auto labels = ClassLabels::Load(Config("y", "labels.txt"), dir_.string(), Spec());
  ASSERT_FALSE(labels.ok());
  EXPECT_EQ(labels.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(labels.status().message(), HasSubstr("outside the model folder"));
  // A symlink that stays inside is fine.
  Write(dir_ / "sub" / "real.txt", "a\n");
  fs::remove(dir_ / "labels.txt");
  fs::create_symlink(dir_ / "sub" / "real.txt", dir_ / "labels.txt");
  EXPECT_TRUE(ClassLabels::Load(Config("y", "labels.txt"), dir_.string(), Spec()).ok());
}

TEST_F(LabelFilesTest, AnOutputTheModelLacksIsRefused) {
  Write(dir_ / "labels.txt", "a\n");
  auto labels = ClassLabels::Load(Config("logits", "labels.txt"), dir_.string(), Spec());
  ASSERT_FALSE(labels.ok());
  EXPECT_THAT(labels.status().message(), HasSubstr("'logits'"));
}

}  // namespace
}  // namespace selu::core

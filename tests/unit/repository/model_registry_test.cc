// ModelRegistry on real files in a temporary repository: version policies,
// corrupt and missing versions, config.pbtxt, explicit load/unload, names and
// symlinks that leave the repository, polling swaps while other threads look
// models up, and the memory of an unloaded version being released. Also
// ReadStableFile. CI runs these under ASan+UBSan too.
#include "server/core/repository/model_registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

namespace selu::core {

void PrintTo(const Status& status, std::ostream* os) { *os << status.ToString(); }

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

constexpr auto kSafety = 60s;  // only reached when something hangs

std::string BundledModel() {
  const char* source = std::getenv("SELU_SOURCE_DIR");
  return std::string(source ? source : ".") + "/models/digits_snn/1/model.onnx";
}

class TempRepository {
 public:
  TempRepository() {
    char templ[] = "/tmp/selu-registry-test-XXXXXX";
    root_ = mkdtemp(templ);
  }
  ~TempRepository() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  const std::string& root() const { return root_; }

  // <root>/<model>/<version>/model.onnx: the bundled model, or `bytes`.
  void AddVersion(const std::string& model, int version, const std::string* bytes = nullptr) {
    const fs::path dir = fs::path(root_) / model / std::to_string(version);
    fs::create_directories(dir);
    if (bytes == nullptr) {
      fs::copy_file(BundledModel(), dir / "model.onnx");
    } else {
      std::ofstream(dir / "model.onnx", std::ios::binary) << *bytes;
    }
  }
  void WriteConfig(const std::string& model, const std::string& text) {
    fs::create_directories(fs::path(root_) / model);
    const fs::path tmp = fs::path(root_) / model / ".config.tmp";
    std::ofstream(tmp) << text;
    fs::rename(tmp, fs::path(root_) / model / "config.pbtxt");
  }

 private:
  std::string root_;
};

ModelRegistryOptions Options(const TempRepository& repo,
                             ModelControlMode mode = ModelControlMode::kNone) {
  ModelRegistryOptions options;
  options.root = repo.root();
  options.mode = mode;
  options.poll_period = 20ms;
  options.serving.batcher.max_batch_size = 4;  // a short warm-up
  return options;
}

std::unique_ptr<ModelRegistry> Open(ModelRegistryOptions options) {
  auto registry = ModelRegistry::Open(std::move(options));
  EXPECT_TRUE(registry.ok()) << registry.status().ToString();
  return registry.ok() ? std::move(registry).value() : nullptr;
}

// The entry of `name`/`version` in the index (version 0: the model-level one).
std::optional<ModelRegistry::Entry> IndexEntry(const ModelRegistry& registry,
                                               const std::string& name, int64_t version) {
  for (auto& e : registry.RepositoryIndex()) {
    if (e.name == name && e.version == version) return e;
  }
  return std::nullopt;
}

int64_t ServedVersion(const ModelRegistry& registry, const std::string& name) {
  auto model = registry.Find(name, "");
  return model.ok() ? (*model)->version() : -1;
}

// Runs LoadModel/UnloadModel and waits for its answer.
Status Await(const std::function<void(std::function<void(Status)>)>& call) {
  auto promise = std::make_shared<std::promise<Status>>();
  auto future = promise->get_future();
  call([promise](Status status) { promise->set_value(std::move(status)); });
  if (future.wait_for(kSafety) != std::future_status::ready) {
    return InternalError("no answer within the safety limit");
  }
  return future.get();
}

bool WaitFor(const std::function<bool()>& condition) {
  const auto until = std::chrono::steady_clock::now() + kSafety;
  while (std::chrono::steady_clock::now() < until) {
    if (condition()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

const std::string kCorrupt = "\x08\x07 this is not an ONNX model";

TEST(ReadStableFileTest, ReadsWholeFilesAndRefusesOthers) {
  TempRepository repo;
  const std::string path = repo.root() + "/f";
  std::ofstream(path, std::ios::binary) << std::string(100000, 'x');
  auto bytes = ReadStableFile(path, 1 << 20);
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  EXPECT_EQ(bytes->size(), 100000u);
  EXPECT_EQ(ReadStableFile(path, 1000).status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(ReadStableFile(repo.root(), 1000).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReadStableFile(path + ".missing", 1000).status().code(), StatusCode::kNotFound);
}

TEST(ModelRegistryTest, LatestVersionThatLoadsServesAndFailuresAreIndexed) {
  TempRepository repo;
  repo.AddVersion("m", 1);
  repo.AddVersion("m", 2);
  repo.AddVersion("m", 3, &kCorrupt);
  repo.AddVersion("broken", 1, &kCorrupt);
  auto registry = Open(Options(repo));
  ASSERT_NE(registry, nullptr);

  EXPECT_EQ(ServedVersion(*registry, "m"), 2);
  auto v3 = IndexEntry(*registry, "m", 3);
  ASSERT_TRUE(v3);
  EXPECT_EQ(v3->state, ModelState::kFailed);
  EXPECT_THAT(v3->reason, HasSubstr("m/3/model.onnx"));
  const auto v2 = IndexEntry(*registry, "m", 2);
  ASSERT_TRUE(v2);
  EXPECT_EQ(v2->state, ModelState::kReady);
  EXPECT_FALSE(IndexEntry(*registry, "m", 1)) << "latest{1} loads one version";
  EXPECT_EQ(registry->Find("m", "3").status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(registry->Find("m", "1").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(registry->Find("m", "x").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(registry->Find("nope", "").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(registry->Find("broken", "").status().code(), StatusCode::kUnavailable);
  EXPECT_FALSE(registry->AllReady());
  EXPECT_TRUE(registry->ModelReady("m"));
  EXPECT_FALSE(registry->ModelReady("broken"));
  uint64_t failures = 0;
  for (const auto& counts : registry->LoadCountsByModel()) failures += counts.failure;
  EXPECT_EQ(failures, 2u);
}

TEST(ModelRegistryTest, VersionPoliciesFromConfig) {
  TempRepository repo;
  for (const char* model : {"two", "all", "specific"}) {
    for (int v = 1; v <= 3; ++v) repo.AddVersion(model, v);
  }
  repo.WriteConfig("two", "version_policy { latest { num_versions: 2 } }");
  repo.WriteConfig("all", "version_policy { all {} }");
  repo.WriteConfig("specific", "version_policy { specific { versions: [1, 4] } }");
  auto registry = Open(Options(repo));
  ASSERT_NE(registry, nullptr);
  auto ready_versions = [&](const std::string& name) {
    std::vector<int64_t> out;
    for (const auto& e : registry->Index()) {
      if (e.name == name && e.state == ModelState::kReady) out.push_back(e.version);
    }
    return out;
  };
  EXPECT_EQ(ready_versions("two"), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(ready_versions("all"), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(ready_versions("specific"), (std::vector<int64_t>{1}));
  auto missing = IndexEntry(*registry, "specific", 4);
  ASSERT_TRUE(missing);
  EXPECT_THAT(missing->reason, HasSubstr("version_policy.specific"));
  EXPECT_EQ(ServedVersion(*registry, "specific"), 1);
}

TEST(ModelRegistryTest, ConfigAppliesAndContradictionsNameTheField) {
  TempRepository repo;
  repo.AddVersion("small", 1);
  repo.WriteConfig("small",
                   "max_batch_size: 2\n"
                   "optimization { priority: PRIORITY_MAX }\n");
  repo.AddVersion("wrong", 1);
  repo.WriteConfig("wrong", "input [ { name: \"input\" data_type: TYPE_FP32 dims: [ 63 ] } ]");
  repo.AddVersion("gpu", 1);
  repo.WriteConfig("gpu", "instance_group [ { kind: KIND_GPU } ]");
  std::vector<std::string> logged;
  std::mutex log_mu;
  auto options = Options(repo);
  options.log = [&](std::string_view, const std::string& message) {
    std::lock_guard lock(log_mu);
    logged.push_back(message);
  };
  auto registry = Open(std::move(options));
  ASSERT_NE(registry, nullptr);

  auto small = registry->Find("small", "");
  ASSERT_TRUE(small.ok()) << small.status().ToString();
  EXPECT_EQ((*small)->max_batch_size(), 2);
  EXPECT_EQ((*small)->config().max_batch_size(), 2);
  EXPECT_EQ((*small)->config().input(0).name(), "input");
  bool warned = false;
  for (const auto& line : logged) warned |= line.find("optimization") != std::string::npos;
  EXPECT_TRUE(warned) << "no warning names the unused field 'optimization'";

  // The dims are checked against the loaded file: version 1 fails. The GPU
  // kind is wrong whatever the file: the model fails before any version.
  const auto wrong = IndexEntry(*registry, "wrong", 1);
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->state, ModelState::kFailed);
  EXPECT_THAT(wrong->reason, HasSubstr("input[0].dims"));
  const auto gpu = IndexEntry(*registry, "gpu", 0);
  ASSERT_TRUE(gpu);
  EXPECT_THAT(gpu->reason, HasSubstr("instance_group[0].kind"));
  EXPECT_EQ(registry->Find("gpu", "").status().code(), StatusCode::kUnavailable);
}

TEST(ModelRegistryTest, ExplicitLoadUnloadAndRefusedNames) {
  TempRepository repo;
  repo.AddVersion("m", 1);
  repo.AddVersion("other", 1);
  repo.AddVersion("corrupt", 1, &kCorrupt);
  const fs::path outside = fs::path(repo.root()).parent_path() /
                           (fs::path(repo.root()).filename().string() + "-outside");
  fs::create_directories(outside / "1");
  fs::copy_file(BundledModel(), outside / "1" / "model.onnx");
  fs::create_directory_symlink(outside, fs::path(repo.root()) / "escape");

  auto options = Options(repo, ModelControlMode::kExplicit);
  options.startup_models = {"m"};
  auto registry = Open(std::move(options));
  ASSERT_NE(registry, nullptr);
  EXPECT_EQ(ServedVersion(*registry, "m"), 1);
  const auto other = IndexEntry(*registry, "other", 0);
  ASSERT_TRUE(other);
  EXPECT_EQ(other->state, ModelState::kUnloaded);
  EXPECT_EQ(registry->Find("other", "").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(registry->AllReady());

  std::weak_ptr<ServableModel> old = *registry->Find("m", "");
  ASSERT_TRUE(Await([&](auto done) { registry->UnloadModel("m", done); }).ok());
  EXPECT_TRUE(old.expired()) << "the unloaded version is still in memory";
  EXPECT_EQ(registry->Find("m", "").status().code(), StatusCode::kUnavailable);
  const auto unloaded = IndexEntry(*registry, "m", 0);
  ASSERT_TRUE(unloaded);
  EXPECT_EQ(unloaded->state, ModelState::kUnloaded);
  EXPECT_EQ(unloaded->reason, "unloaded");
  EXPECT_FALSE(registry->ModelReady("m"));

  EXPECT_TRUE(Await([&](auto done) { registry->LoadModel("m", std::nullopt, done); }).ok());
  EXPECT_TRUE(Await([&](auto done) { registry->LoadModel("other", std::nullopt, done); }).ok());
  EXPECT_EQ(ServedVersion(*registry, "m"), 1);
  EXPECT_EQ(ServedVersion(*registry, "other"), 1);

  ASSERT_TRUE(
      Await([&](auto done) { registry->LoadModel("m", R"({"max_batch_size": 3})", done); }).ok());
  EXPECT_EQ((*registry->Find("m", ""))->max_batch_size(), 3);
  const Status bad_json =
      Await([&](auto done) { registry->LoadModel("m", R"({"max_batch_size": )", done); });
  EXPECT_EQ(bad_json.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_json.message(), HasSubstr("parameter 'config'"));
  EXPECT_EQ((*registry->Find("m", ""))->max_batch_size(), 3) << "a refused load changed the model";

  const Status corrupt =
      Await([&](auto done) { registry->LoadModel("corrupt", std::nullopt, done); });
  EXPECT_EQ(corrupt.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(corrupt.message(), HasSubstr("corrupt/1/model.onnx"));
  const Status escape =
      Await([&](auto done) { registry->LoadModel("escape", std::nullopt, done); });
  EXPECT_EQ(escape.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(escape.message(), HasSubstr("outside the model repository"));
  EXPECT_FALSE(registry->ModelReady("escape"));
  for (const char* name : {"../m", "/etc", "a/b", ".", "..", "", ".hidden"}) {
    EXPECT_EQ(Await([&](auto done) { registry->LoadModel(name, std::nullopt, done); }).code(),
              StatusCode::kInvalidArgument)
        << name;
  }
  EXPECT_EQ(Await([&](auto done) { registry->LoadModel("nope", std::nullopt, done); }).code(),
            StatusCode::kNotFound);
  EXPECT_EQ(Await([&](auto done) { registry->UnloadModel("nope", done); }).code(),
            StatusCode::kNotFound);
  std::error_code ec;
  fs::remove_all(outside, ec);
}

TEST(ModelRegistryTest, LoadAndUnloadNeedExplicitMode) {
  TempRepository repo;
  repo.AddVersion("m", 1);
  for (auto mode : {ModelControlMode::kNone, ModelControlMode::kPoll}) {
    auto registry = Open(Options(repo, mode));
    ASSERT_NE(registry, nullptr);
    EXPECT_EQ(Await([&](auto done) { registry->LoadModel("m", std::nullopt, done); }).code(),
              StatusCode::kFailedPrecondition);
    EXPECT_EQ(Await([&](auto done) { registry->UnloadModel("m", done); }).code(),
              StatusCode::kFailedPrecondition);
    EXPECT_TRUE(registry->ModelReady("m"));
  }
}

TEST(ModelRegistryTest, EmptyRepositoryBecomesReadyWithItsFirstModel) {
  TempRepository repo;
  auto registry = Open(Options(repo, ModelControlMode::kPoll));
  ASSERT_NE(registry, nullptr);
  EXPECT_FALSE(registry->AllReady());
  repo.AddVersion("m", 1);
  EXPECT_TRUE(WaitFor([&] { return registry->AllReady(); }));
  EXPECT_EQ(ServedVersion(*registry, "m"), 1);
}

// A reference_stats.json written (or replaced) beside a serving version is
// picked up by the next poll: the version reloads with the new reference.
TEST(ModelRegistryTest, NewReferenceBesideAVersionReloadsIt) {
  TempRepository repo;
  repo.AddVersion("m", 1);
  auto registry = Open(Options(repo, ModelControlMode::kPoll));
  ASSERT_NE(registry, nullptr);
  ASSERT_TRUE(WaitFor([&] { return registry->AllReady(); }));
  auto first = registry->Find("m", "");
  ASSERT_TRUE(first.ok());
  // The bundled model carries its reference in its metadata.
  EXPECT_EQ((*first)->monitor().Snapshot().reference_source, "metadata_props selu.reference_stats");

  const fs::path ref = fs::path(repo.root()) / "m" / "1" / "reference_stats.json";
  const fs::path tmp = fs::path(repo.root()) / "m" / "1" / ".ref.tmp";
  std::ofstream(tmp) << R"({"format":1,"rows":10,"layers":[]})";
  fs::rename(tmp, ref);
  ASSERT_TRUE(WaitFor([&] {
    auto m = registry->Find("m", "");
    return m.ok() && m->get() != first->get();
  }));
  auto second = registry->Find("m", "");
  ASSERT_TRUE(second.ok());
  const MonitorSnapshot snapshot = (*second)->monitor().Snapshot();
  EXPECT_EQ(snapshot.state, MonitorState::kBadReference);
  EXPECT_EQ(snapshot.reference_source, ref.string());
  EXPECT_THAT(snapshot.problem, HasSubstr("'layers' has 0 entries, the model has 4 dense layers"));
  EXPECT_TRUE((*second)->ready());  // a bad reference never stops a model serving
}

// Poll mode: a new label file reloads the version with its labels; one
// removed fails the reload, and the version loaded before keeps serving.
TEST(ModelRegistryTest, ChangedLabelFileReloadsTheVersion) {
  TempRepository repo;
  repo.AddVersion("m", 1);
  const fs::path labels = fs::path(repo.root()) / "m" / "labels.txt";
  auto write_labels = [&](const std::string& text) {
    const fs::path tmp = fs::path(repo.root()) / "m" / ".labels.tmp";
    std::ofstream(tmp) << text;
    fs::rename(tmp, labels);
  };
  write_labels("zero\none\n");
  repo.WriteConfig("m", R"(output [ { name: "probabilities" data_type: TYPE_FP32 dims: [ 10 ] )"
                        R"(label_filename: "labels.txt" } ])");
  auto registry = Open(Options(repo, ModelControlMode::kPoll));
  ASSERT_NE(registry, nullptr);
  ASSERT_TRUE(WaitFor([&] { return registry->AllReady(); }));
  auto first = registry->Find("m", "");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ((*first)->labels().Label(0, 1), "one");
  EXPECT_EQ((*first)->config().output(0).label_filename(), "labels.txt");

  write_labels("null\neins\nzwei\n");
  ASSERT_TRUE(WaitFor([&] {
    auto m = registry->Find("m", "");
    return m.ok() && m->get() != first->get();
  }));
  auto second = registry->Find("m", "");
  ASSERT_TRUE(second.ok());
  EXPECT_EQ((*second)->labels().Label(0, 1), "eins");
  EXPECT_EQ((*second)->labels().Of(0).size(), 3u);

  fs::remove(labels);
  ASSERT_TRUE(WaitFor([&] {
    auto entry = IndexEntry(*registry, "m", 1);
    return entry && entry->reason.find("labels.txt") != std::string::npos;
  }));
  auto third = registry->Find("m", "");
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->get(), second->get());  // the good version keeps serving
}

TEST(ModelRegistryTest, StartupModelThatIsNoFolderIsAnError) {
  TempRepository repo;
  repo.AddVersion("m", 1);
  auto options = Options(repo, ModelControlMode::kExplicit);
  options.startup_models = {"m", "missing"};
  auto registry = ModelRegistry::Open(options);
  EXPECT_EQ(registry.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(registry.status().message(), HasSubstr("missing"));
}

// Poll mode: versions come and go while threads keep looking the model up;
// a lookup never fails, and the newest good version ends up served.
TEST(ModelRegistryTest, PollSwapsWhileReadersLookUp) {
  TempRepository repo;
  repo.AddVersion("m", 1);
  std::atomic<int> changes{0};
  auto options = Options(repo, ModelControlMode::kPoll);
  options.on_change = [&] { changes.fetch_add(1); };
  auto registry = Open(std::move(options));
  ASSERT_NE(registry, nullptr);

  std::atomic<bool> stop{false};
  std::atomic<int64_t> lookups{0}, failures{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 2; ++i) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        auto model = registry->Find("m", "");
        if (!model.ok()) failures.fetch_add(1);
        (void)registry->Index();
        lookups.fetch_add(1);
      }
    });
  }
  repo.AddVersion("m", 2);
  EXPECT_TRUE(WaitFor([&] { return ServedVersion(*registry, "m") == 2; }));
  repo.AddVersion("m", 3, &kCorrupt);
  EXPECT_TRUE(WaitFor([&] {
    auto e = IndexEntry(*registry, "m", 3);
    return e && e->state == ModelState::kFailed;
  }));
  EXPECT_EQ(ServedVersion(*registry, "m"), 2);
  std::weak_ptr<ServableModel> v2 = *registry->Find("m", "");
  fs::remove_all(fs::path(repo.root()) / "m" / "2");
  EXPECT_TRUE(WaitFor([&] { return ServedVersion(*registry, "m") == 1; }));
  EXPECT_TRUE(WaitFor([&] { return v2.expired(); })) << "version 2 was never freed";
  // A model added later that does not load shows as not ready, but does not
  // make the server unready.
  EXPECT_TRUE(registry->AllReady());
  repo.AddVersion("bad", 1, &kCorrupt);
  EXPECT_TRUE(WaitFor([&] {
    auto e = IndexEntry(*registry, "bad", 1);
    return e && e->state == ModelState::kFailed;
  }));
  EXPECT_FALSE(registry->ModelReady("bad"));
  EXPECT_TRUE(registry->AllReady());
  // A removed model folder unloads the model.
  repo.AddVersion("late", 1);
  EXPECT_TRUE(WaitFor([&] { return registry->ModelReady("late"); }));
  fs::remove_all(fs::path(repo.root()) / "late");
  EXPECT_TRUE(
      WaitFor([&] { return registry->Find("late", "").status().code() == StatusCode::kNotFound; }));
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(failures.load(), 0) << "of " << lookups.load() << " lookups";
  EXPECT_GT(lookups.load(), 0);
  EXPECT_GE(changes.load(), 4);
  registry->DrainAll(Clock::now() + 5s);
}

}  // namespace
}  // namespace selu::core

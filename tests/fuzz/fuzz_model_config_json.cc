// libFuzzer target: the JSON "config" parameter of RepositoryModelLoad ->
// core::ParseModelConfigJson (as ModelRegistry::LoadModel calls it), and what
// parses through the rest of the config's path (config_pipeline.h).
// A refusal is INVALID_ARGUMENT "config JSON: ..." and quotes at most
// 2 * kClientTextLimit bytes of the client's text.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "server/core/base/client_text.h"
#include "server/core/model/model_config.h"
#include "tests/fuzz/config_pipeline.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  selu::fuzz::QuietProtobuf();
  selu::fuzz::DigitsSpec();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> warnings;
  auto config = selu::core::ParseModelConfigJson(json, &warnings);
  if (!config.ok()) {
    // "config JSON: " + the quote + "… (N bytes)".
    constexpr size_t kLimit = 13 + 2 * selu::core::kClientTextLimit + 32;
    selu::fuzz::CheckRefusal(config.status(), {selu::core::StatusCode::kInvalidArgument}, kLimit,
                             "ParseModelConfigJson");
    FUZZ_CHECK(config.status().message().starts_with("config JSON: "),
               "the refusal does not say it is the config JSON: " + config.status().message());
    return 0;
  }
  for (const std::string& warning : warnings) {
    FUZZ_CHECK(warning.size() <= selu::fuzz::kMaxClientMessageBytes,
               "a warning of " + std::to_string(warning.size()) + " bytes");
  }
  selu::fuzz::CheckParsedConfig(*config);
  return 0;
}

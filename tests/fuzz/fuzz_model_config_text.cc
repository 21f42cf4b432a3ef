// libFuzzer target: config.pbtxt text -> core::ParseModelConfigText, and what
// parses through the rest of the config's path (config_pipeline.h).
// A refusal is INVALID_ARGUMENT, starts with the source name and is short.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "server/core/model/model_config.h"
#include "tests/fuzz/config_pipeline.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  selu::fuzz::QuietProtobuf();
  selu::fuzz::DigitsSpec();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  constexpr std::string_view kSource = "digits_snn/config.pbtxt";
  std::vector<std::string> warnings;
  auto config = selu::core::ParseModelConfigText(text, kSource, &warnings);
  if (!config.ok()) {
    selu::fuzz::CheckRefusal(config.status(), {selu::core::StatusCode::kInvalidArgument},
                             selu::fuzz::kMaxClientMessageBytes, "ParseModelConfigText");
    FUZZ_CHECK(config.status().message().starts_with(kSource),
               "the refusal does not name the file: " + config.status().message());
    return 0;
  }
  selu::fuzz::CheckParsedConfig(*config);
  return 0;
}

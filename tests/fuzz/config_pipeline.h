// The steps after a config.pbtxt or a RepositoryModelLoad JSON config parses,
// run by both config fuzz targets with their invariants checked (aborting on
// a broken one):
// - the config prints to text and JSON and reads back equal, the JSON
//   without an "unknown field" warning (every field it has is known);
// - ReadModelConfigSettings accepts it or refuses it with INVALID_ARGUMENT
//   and a short message, refuses it under another model name when it names
//   one, and what it accepts is within the documented bounds;
// - against the bundled model and the rank-3 spec, CheckModelConfigAgainstModel
//   accepts or refuses likewise; when both accept, the config the ModelConfig
//   rpc would report (CompleteModelConfig) is itself accepted and reads back
//   as the same serving settings.
#pragma once

#include "proto/model_config.pb.h"

namespace selu::fuzz {

void CheckParsedConfig(const inference::ModelConfig& config);

}  // namespace selu::fuzz

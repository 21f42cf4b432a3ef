// Private to server/core/model (not included outside it): the one way the
// config readers report a warning, shared by model_config_parse.cc and
// model_config.cc.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace selu::core::model_config_internal {

// Appends `message` to *warnings; a null vector drops it (model_config.h).
inline void Warn(std::vector<std::string>* warnings, std::string message) {
  if (warnings != nullptr) warnings->push_back(std::move(message));
}

}  // namespace selu::core::model_config_internal

// Protocol messages as the JSON Triton's HTTP endpoints answer: field names
// as in the .proto (snake_case), 64-bit integers as JSON numbers (not the
// strings of protobuf's canonical JSON mapping), every scalar and repeated
// field present (defaults included), messages and oneof members only when
// set, maps as objects, enums by name.
//
// Thread safety: stateless.
#pragma once

#include <google/protobuf/message.h>

#include <nlohmann/json.hpp>

namespace selu::http {

nlohmann::ordered_json ProtoToJson(const google::protobuf::Message& message);

}  // namespace selu::http

#include "server/http/rest_routes.h"

#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <vector>

#include "server/grpc/protocol_answers.h"
#include "server/grpc/shutdown_gate.h"
#include "server/http/http_status.h"
#include "server/http/proto_json.h"
#include "server/http/rest_codec.h"
#include "server/http/rest_server.h"

namespace selu::http {

namespace {

using core::Clock;
using grpc_transport::ProtocolGroup;

std::vector<std::string_view> Segments(std::string_view path) {
  std::vector<std::string_view> out;
  while (!path.empty()) {
    const size_t slash = path.find('/');
    const std::string_view part = path.substr(0, slash);
    if (!part.empty()) out.push_back(part);
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

RestAnswer JsonAnswer(const nlohmann::ordered_json& json) {
  RestAnswer answer;
  answer.body = json.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  return answer;
}

// Health and readiness answer by code only, as Triton's: 200 true, 400 false.
RestAnswer BoolAnswer(bool yes) {
  RestAnswer answer;
  answer.code = yes ? 200 : 400;
  return answer;
}

core::StatusOr<core::ModelRegistry*> Registry(const RouteContext& c) {
  core::ModelRegistry* registry = c.path->registry.load(std::memory_order_acquire);
  if (registry == nullptr) return core::UnavailableError("models are still loading");
  return registry;
}

// One REST inference: the core request, waited for by the worker thread
// that read it.
class RestInferJob final : public grpc_transport::InferJob {
 public:
  void Done(core::Status status) override {
    status = Complete(status, &response);
    std::lock_guard lock(mu_);
    status_ = std::move(status);
    done_ = true;
    cv_.notify_one();
  }
  core::Status Wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return done_; });
    return status_;
  }
  inference::ModelInferResponse response;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;  // guarded by mu_
  core::Status status_;
};

RestAnswer Infer(const RouteContext& c, const Route& route, std::string_view body,
                 const char* header_length, Clock::time_point start) {
  if (!c.path->gate.open()) {
    return ErrorAnswer(core::UnavailableError(grpc_transport::kShuttingDownMessage));
  }
  std::optional<size_t> json_length;
  if (header_length != nullptr) {
    char* end = nullptr;
    const unsigned long long n = std::strtoull(header_length, &end, 10);
    if (*header_length == '\0' || *end != '\0' || header_length[0] == '-') {
      return ErrorAnswer(core::InvalidArgumentError(
          "Inference-Header-Content-Length must be a non-negative integer"));
    }
    json_length = static_cast<size_t>(n);
  }
  RestInferRequest rest;
  core::Status status = ParseInferRequest(body, json_length, route.model, route.version, &rest);
  if (!status.ok()) return ErrorAnswer(status);
  RestInferJob job;
  c.in_flight->fetch_add(1, std::memory_order_relaxed);
  status = grpc_transport::SubmitInfer(*c.path, rest.request, start, Clock::time_point::max(), &job,
                                       &job.response);
  if (status.ok()) status = job.Wait();
  c.in_flight->fetch_sub(1, std::memory_order_release);
  if (!status.ok()) return ErrorAnswer(status);
  RestAnswer answer;
  size_t json_size = 0;
  status = RenderInferResponse(rest, job.response, &answer.body, &json_size);
  if (!status.ok()) return ErrorAnswer(status);
  if (json_size != answer.body.size()) {
    answer.header_length = json_size;
    answer.content_type = "application/octet-stream";
  }
  return answer;
}

// The body of a repository load/unload ({"parameters": {...}}; may be empty).
core::StatusOr<nlohmann::json> RepositoryParameters(std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return nlohmann::json::object();
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(body.begin(), body.end());
  } catch (const nlohmann::json::exception& e) {
    return core::InvalidArgumentError(std::string("malformed JSON request: ") + e.what());
  }
  if (!doc.is_object()) return core::InvalidArgumentError("the request must be a JSON object");
  const auto params = doc.find("parameters");
  if (params == doc.end()) return nlohmann::json::object();
  if (!params->is_object()) return core::InvalidArgumentError("'parameters' must be an object");
  return *params;
}

RestAnswer Repository(const RouteContext& c, const Route& route, std::string_view body) {
  auto registry = Registry(c);
  if (!registry.ok()) return ErrorAnswer(registry.status());
  if (route.endpoint == Endpoint::kRepositoryIndex) {
    inference::RepositoryIndexRequest request;
    if (!body.empty()) {
      try {
        const auto doc = nlohmann::json::parse(body.begin(), body.end());
        if (doc.is_object() && doc.contains("ready") && doc["ready"].is_boolean()) {
          request.set_ready(doc["ready"].get<bool>());
        }
      } catch (const nlohmann::json::exception& e) {
        return ErrorAnswer(
            core::InvalidArgumentError(std::string("malformed JSON request: ") + e.what()));
      }
    }
    inference::RepositoryIndexResponse response;
    const core::Status status =
        grpc_transport::AnswerRepositoryIndex(**registry, request, &response);
    if (!status.ok()) return ErrorAnswer(status);
    // Triton answers the list itself.
    nlohmann::ordered_json list = nlohmann::ordered_json::array();
    for (const auto& model : response.models()) list.push_back(ProtoToJson(model));
    return JsonAnswer(list);
  }
  auto params = RepositoryParameters(body);
  if (!params.ok()) return ErrorAnswer(params.status());
  std::promise<core::Status> done;
  auto finished = done.get_future();
  auto callback = [&done](core::Status status) { done.set_value(std::move(status)); };
  if (route.endpoint == Endpoint::kRepositoryModelLoad) {
    inference::RepositoryModelLoadRequest request;
    request.set_model_name(route.model);
    for (const auto& [key, value] : params->items()) {
      auto& p = (*request.mutable_parameters())[key];
      if (value.is_string()) {
        p.set_string_param(value.get<std::string>());
      } else if (value.is_boolean()) {
        p.set_bool_param(value.get<bool>());
      } else if (value.is_number_integer()) {
        p.set_int64_param(value.get<int64_t>());
      } else {
        return ErrorAnswer(core::InvalidArgumentError("parameter '" + key +
                                                      "' must be a string, a bool or an integer"));
      }
    }
    auto config = grpc_transport::CheckModelLoad(**registry, request);
    if (!config.ok()) return ErrorAnswer(config.status());
    (*registry)->LoadModel(route.model, std::move(config).value(), callback);
  } else {
    // Triton's "unload_dependents" has no meaning here (no ensembles): ignored.
    (*registry)->UnloadModel(route.model, callback);
  }
  const core::Status status = finished.get();
  if (!status.ok()) return ErrorAnswer(status);
  return RestAnswer{};
}

}  // namespace

std::string_view EndpointName(Endpoint endpoint) {
  static constexpr std::string_view kNames[] = {"health_live",
                                                "health_ready",
                                                "server_metadata",
                                                "model_metadata",
                                                "model_ready",
                                                "model_infer",
                                                "model_config",
                                                "model_statistics",
                                                "repository_index",
                                                "repository_model_load",
                                                "repository_model_unload",
                                                "unknown"};
  return kNames[static_cast<size_t>(endpoint)];
}

Route RouteOf(std::string_view path) {
  const std::vector<std::string_view> s = Segments(path);
  Route r;
  if (s.empty() || s[0] != "v2") return r;
  const size_t n = s.size();
  if (n == 1) {
    r.endpoint = Endpoint::kServerMetadata;
  } else if (n == 3 && s[1] == "health" && (s[2] == "live" || s[2] == "ready")) {
    r.endpoint = s[2] == "live" ? Endpoint::kHealthLive : Endpoint::kHealthReady;
  } else if (n == 3 && s[1] == "models" && s[2] == "stats") {
    r.endpoint = Endpoint::kModelStatistics;
  } else if (n >= 3 && s[1] == "models") {
    r.model = std::string(s[2]);
    size_t i = 3;
    if (n >= 5 && s[3] == "versions") {
      r.version = std::string(s[4]);
      i = 5;
    }
    if (i == n) {
      r.endpoint = Endpoint::kModelMetadata;
    } else if (i + 1 == n) {
      const std::string_view tail = s[i];
      if (tail == "ready") {
        r.endpoint = Endpoint::kModelReady;
      } else if (tail == "infer") {
        r.endpoint = Endpoint::kModelInfer;
      } else if (tail == "config") {
        r.endpoint = Endpoint::kModelConfig;
      } else if (tail == "stats") {
        r.endpoint = Endpoint::kModelStatistics;
      }
    }
  } else if (n == 3 && s[1] == "repository" && s[2] == "index") {
    r.endpoint = Endpoint::kRepositoryIndex;
  } else if (n == 5 && s[1] == "repository" && s[2] == "models" &&
             (s[4] == "load" || s[4] == "unload")) {
    r.model = std::string(s[3]);
    r.endpoint = s[4] == "load" ? Endpoint::kRepositoryModelLoad : Endpoint::kRepositoryModelUnload;
  }
  if (r.endpoint == Endpoint::kModelInfer || r.endpoint == Endpoint::kRepositoryIndex ||
      r.endpoint == Endpoint::kRepositoryModelLoad ||
      r.endpoint == Endpoint::kRepositoryModelUnload) {
    r.method = "POST";
    r.has_body = true;
  }
  return r;
}

ProtocolGroup GroupOf(Endpoint endpoint) {
  switch (endpoint) {
    case Endpoint::kHealthLive:
    case Endpoint::kHealthReady:
    case Endpoint::kModelReady:
      return ProtocolGroup::kHealth;
    case Endpoint::kServerMetadata:
    case Endpoint::kModelMetadata:
      return ProtocolGroup::kMetadata;
    case Endpoint::kModelConfig:
      return ProtocolGroup::kModelConfig;
    case Endpoint::kModelStatistics:
      return ProtocolGroup::kStatistics;
    case Endpoint::kRepositoryIndex:
    case Endpoint::kRepositoryModelLoad:
    case Endpoint::kRepositoryModelUnload:
      return ProtocolGroup::kModelRepository;
    default:
      return ProtocolGroup::kInference;
  }
}

RestAnswer ErrorAnswer(const core::Status& status) {
  RestAnswer answer;
  answer.code = HttpCodeOf(status.code());
  answer.body = ErrorBody(status.message());
  return answer;
}

RestAnswer Serve(const RouteContext& c, const Route& route, std::string_view body,
                 const char* header_length, Clock::time_point start) {
  try {
    switch (route.endpoint) {
      case Endpoint::kHealthLive:
        return BoolAnswer(true);
      case Endpoint::kHealthReady: {
        auto registry = Registry(c);
        return BoolAnswer(c.path->gate.open() && registry.ok() && (*registry)->AllReady());
      }
      case Endpoint::kServerMetadata: {
        inference::ServerMetadataResponse response;
        response.set_name(c.options->server_name);
        response.set_version(c.options->server_version);
        return JsonAnswer(ProtoToJson(response));
      }
      case Endpoint::kModelReady: {
        auto registry = Registry(c);
        if (!registry.ok()) return BoolAnswer(false);
        auto model = (*registry)->Find(route.model, route.version);
        if (!model.ok() && model.status().code() == core::StatusCode::kInvalidArgument) {
          return ErrorAnswer(model.status());
        }
        // Like Triton: an unknown or unavailable model is simply not ready.
        return BoolAnswer(model.ok() && c.path->gate.open());
      }
      case Endpoint::kModelMetadata: {
        auto registry = Registry(c);
        if (!registry.ok()) return ErrorAnswer(registry.status());
        inference::ModelMetadataRequest request;
        request.set_name(route.model);
        request.set_version(route.version);
        inference::ModelMetadataResponse response;
        const core::Status s = grpc_transport::AnswerModelMetadata(**registry, request, &response);
        return s.ok() ? JsonAnswer(ProtoToJson(response)) : ErrorAnswer(s);
      }
      case Endpoint::kModelConfig: {
        auto registry = Registry(c);
        if (!registry.ok()) return ErrorAnswer(registry.status());
        inference::ModelConfigRequest request;
        request.set_name(route.model);
        request.set_version(route.version);
        inference::ModelConfigResponse response;
        const core::Status s = grpc_transport::AnswerModelConfig(**registry, request, &response);
        // Triton answers the configuration itself, not {"config": ...}.
        return s.ok() ? JsonAnswer(ProtoToJson(response.config())) : ErrorAnswer(s);
      }
      case Endpoint::kModelStatistics: {
        auto registry = Registry(c);
        if (!registry.ok()) return ErrorAnswer(registry.status());
        inference::ModelStatisticsRequest request;
        request.set_name(route.model);
        request.set_version(route.version);
        inference::ModelStatisticsResponse response;
        const core::Status s =
            grpc_transport::AnswerModelStatistics(**registry, request, &response);
        return s.ok() ? JsonAnswer(ProtoToJson(response)) : ErrorAnswer(s);
      }
      case Endpoint::kModelInfer:
        return Infer(c, route, body, header_length, start);
      case Endpoint::kRepositoryIndex:
      case Endpoint::kRepositoryModelLoad:
      case Endpoint::kRepositoryModelUnload:
        return Repository(c, route, body);
      default:
        break;
    }
  } catch (const std::exception& e) {
    return ErrorAnswer(core::InternalError(std::string("unexpected error: ") + e.what()));
  }
  return ErrorAnswer(core::NotFoundError("no such endpoint"));
}

}  // namespace selu::http

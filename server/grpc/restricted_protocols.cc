#include "server/grpc/restricted_protocols.h"

#include <cctype>

namespace selu::grpc_transport {

namespace {

constexpr size_t kGroups = static_cast<size_t>(ProtocolGroup::kCount);
constexpr std::string_view kSpecForm = "<group>[,<group>...]:<header>=<value>";

std::string GroupList() {
  std::string list;
  for (size_t g = 0; g < kGroups; ++g) {
    if (g > 0) list += ", ";
    list += ProtocolGroupName(static_cast<ProtocolGroup>(g));
  }
  return list;
}

// The spec as messages may show it: nothing after its first '='.
std::string Redacted(std::string_view spec) {
  const size_t eq = spec.find('=');
  if (eq == std::string_view::npos) return std::string(spec);
  return std::string(spec.substr(0, eq)) + "=…";
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  return text;
}

bool ParseGroup(std::string_view name, ProtocolGroup* group) {
  for (size_t g = 0; g < kGroups; ++g) {
    if (ProtocolGroupName(static_cast<ProtocolGroup>(g)) == name) {
      *group = static_cast<ProtocolGroup>(g);
      return true;
    }
  }
  return false;
}

// gRPC metadata keys: lowercase letters, digits, '-', '_' and '.'; "grpc-"
// is reserved for gRPC itself.
bool ValidHeader(std::string_view header) {
  if (header.empty() || header.rfind("grpc-", 0) == 0) return false;
  for (const char c : header) {
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) {
      return false;
    }
  }
  return true;
}

core::Status SpecError(std::string_view spec, const std::string& problem) {
  return core::InvalidArgumentError("'" + Redacted(spec) + "': " + problem);
}

}  // namespace

std::string_view ProtocolGroupName(ProtocolGroup group) {
  switch (group) {
    case ProtocolGroup::kHealth:
      return "health";
    case ProtocolGroup::kMetadata:
      return "metadata";
    case ProtocolGroup::kInference:
      return "inference";
    case ProtocolGroup::kModelConfig:
      return "model-config";
    case ProtocolGroup::kModelRepository:
      return "model-repository";
    case ProtocolGroup::kStatistics:
      return "statistics";
    case ProtocolGroup::kMonitor:
      return "monitor";
    case ProtocolGroup::kCount:
      break;
  }
  return "unknown";
}

ProtocolGroup ProtocolGroupOf(Rpc rpc) {
  switch (rpc) {
    case Rpc::kServerLive:
    case Rpc::kServerReady:
    case Rpc::kModelReady:
      return ProtocolGroup::kHealth;
    case Rpc::kServerMetadata:
    case Rpc::kModelMetadata:
      return ProtocolGroup::kMetadata;
    case Rpc::kModelInfer:
    case Rpc::kModelStreamInfer:
      return ProtocolGroup::kInference;
    case Rpc::kModelStatistics:
      return ProtocolGroup::kStatistics;
    case Rpc::kModelConfig:
      return ProtocolGroup::kModelConfig;
    case Rpc::kRepositoryIndex:
    case Rpc::kRepositoryModelLoad:
    case Rpc::kRepositoryModelUnload:
      return ProtocolGroup::kModelRepository;
    case Rpc::kCount:
      break;
  }
  // Unreachable for a valid Rpc; the strictest answer if it ever is not.
  return ProtocolGroup::kModelRepository;
}

bool ConstantTimeEquals(std::string_view received, std::string_view expected) {
  // No early exit: every byte of `expected` is compared whatever differs, so
  // the time says nothing about how much of a guess was right. volatile keeps
  // the compiler from turning the loop back into one that stops early.
  volatile unsigned char diff = received.size() != expected.size() ? 1 : 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const unsigned char got = i < received.size() ? static_cast<unsigned char>(received[i]) : 0;
    diff = diff | (got ^ static_cast<unsigned char>(expected[i]));
  }
  return diff == 0;
}

core::StatusOr<RestrictedProtocols> RestrictedProtocols::Parse(
    const std::vector<std::string>& specs) {
  RestrictedProtocols result;
  for (const std::string& text : specs) {
    const std::string_view spec = Trim(text);
    const size_t colon = spec.find(':');
    const size_t first_eq = spec.find('=');
    if (colon == std::string_view::npos || first_eq < colon) {
      return SpecError(spec, "no ':' after the groups (expected " + std::string(kSpecForm) + ")");
    }
    const size_t eq = spec.find('=', colon + 1);
    if (eq == std::string_view::npos) {
      return SpecError(spec, "no '=' after the header (expected " + std::string(kSpecForm) + ")");
    }
    std::string header(Trim(spec.substr(colon + 1, eq - colon - 1)));
    for (char& c : header) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const std::string_view value = spec.substr(eq + 1);
    if (header.empty()) return SpecError(spec, "empty header name");
    if (!ValidHeader(header)) {
      return SpecError(spec, "header '" + header +
                                 "' is not a gRPC metadata key (letters, digits, '-', '_', "
                                 "'.'; not starting with 'grpc-')");
    }
    if (value.empty()) return SpecError(spec, "empty value for header '" + header + "'");
    std::string_view groups = spec.substr(0, colon);
    while (true) {
      const size_t comma = groups.find(',');
      const std::string_view name = Trim(groups.substr(0, comma));
      ProtocolGroup group;
      if (name.empty()) return SpecError(spec, "empty protocol group");
      if (!ParseGroup(name, &group)) {
        return SpecError(spec, "unknown protocol group '" + std::string(name) +
                                   "' (groups: " + GroupList() + ")");
      }
      Restriction& r = result.restrictions_[static_cast<size_t>(group)];
      if (r.active && (r.header != header || r.value != value)) {
        return SpecError(
            spec,
            "protocol group '" + std::string(name) + "' is already restricted with " +
                (r.header != header ? "header '" + r.header + "'" : std::string("another value")));
      }
      r.active = true;
      r.header = header;
      r.value = std::string(value);
      // PERMISSION_DENIED, not Triton's UNAVAILABLE: the server is up and the
      // call is well-formed, it lacks a credential. UNAVAILABLE tells clients
      // to retry (and retry policies do), which can never succeed here.
      r.denial = grpc::Status(
          grpc::StatusCode::PERMISSION_DENIED,
          "protocol '" + std::string(name) + "' is restricted: expecting header '" + header + "'");
      if (comma == std::string_view::npos) break;
      groups.remove_prefix(comma + 1);
    }
  }
  return result;
}

bool RestrictedProtocols::HasCredential(const Restriction& r,
                                        const grpc::CallbackServerContext& context) {
  const auto& metadata = context.client_metadata();
  const auto found = metadata.find(grpc::string_ref(r.header));
  if (found == metadata.end()) return false;
  const grpc::string_ref& received = found->second;
  return ConstantTimeEquals(std::string_view(received.data(), received.size()), r.value);
}

}  // namespace selu::grpc_transport

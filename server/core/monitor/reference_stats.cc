#include "server/core/monitor/reference_stats.h"

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "server/core/base/stable_file.h"

namespace selu::core {
namespace {

using Json = nlohmann::json;

constexpr int64_t kMaxReferenceBytes = 64 << 20;

Status Bad(const std::string& where, const std::string& what) {
  return InvalidArgumentError(where + " " + what);
}

StatusOr<double> Number(const Json& obj, const std::string& key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) return Bad(where, "has no '" + key + "'");
  if (!it->is_number()) return Bad(where + "." + key, "is not a number");
  const double v = it->get<double>();
  if (!std::isfinite(v)) return Bad(where + "." + key, "is not finite");
  return v;
}

StatusOr<std::vector<double>> Numbers(const Json& obj, const std::string& key,
                                      const std::string& where, int64_t want, bool variance) {
  auto it = obj.find(key);
  if (it == obj.end()) return Bad(where, "has no '" + key + "'");
  if (!it->is_array()) return Bad(where + "." + key, "is not an array");
  if (static_cast<int64_t>(it->size()) != want) {
    return Bad(where + "." + key, "has " + std::to_string(it->size()) + " values, the tensor has " +
                                      std::to_string(want) + " units");
  }
  std::vector<double> out;
  out.reserve(it->size());
  for (size_t i = 0; i < it->size(); ++i) {
    const std::string at = where + "." + key + "[" + std::to_string(i) + "]";
    const Json& v = (*it)[i];
    if (!v.is_number()) return Bad(at, "is not a number");
    const double d = v.get<double>();
    if (!std::isfinite(d)) return Bad(at, "is not finite");
    if (variance && d < 0) return Bad(at, "is negative");
    out.push_back(d);
  }
  return out;
}

StatusOr<TensorStats> ReadTensor(const Json& obj, const std::string& where, int64_t features) {
  if (!obj.is_object()) return Bad(where, "is not an object");
  TensorStats t;
  auto f = obj.find("features");
  if (f != obj.end()) {
    if (!f->is_number_integer() || f->get<int64_t>() != features) {
      return Bad(where + ".features", "is not " + std::to_string(features) + ", the model's width");
    }
  }
  t.features = features;
  SELU_ASSIGN_OR_RETURN(t.mean, Number(obj, "mean", where));
  SELU_ASSIGN_OR_RETURN(t.variance, Number(obj, "variance", where));
  if (t.variance < 0) return Bad(where + ".variance", "is negative");
  SELU_ASSIGN_OR_RETURN(t.unit_mean, Numbers(obj, "unit_mean", where, features, false));
  SELU_ASSIGN_OR_RETURN(t.unit_variance, Numbers(obj, "unit_variance", where, features, true));
  return t;
}

Json TensorJson(const TensorStats& t) {
  return Json{{"features", t.features},
              {"mean", t.mean},
              {"variance", t.variance},
              {"unit_mean", t.unit_mean},
              {"unit_variance", t.unit_variance}};
}

}  // namespace

StatusOr<ReferenceStats> ParseReferenceStats(std::string_view json, const ModelSpec& spec) {
  Json doc = Json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return InvalidArgumentError("not valid JSON");
  if (!doc.is_object()) return InvalidArgumentError("is not a JSON object");
  auto format = doc.find("format");
  if (format == doc.end() || !format->is_number_integer() || format->get<int64_t>() != 1) {
    return InvalidArgumentError("'format' must be 1");
  }
  ReferenceStats ref;
  if (auto split = doc.find("split"); split != doc.end() && split->is_string()) {
    ref.split = split->get<std::string>();
  }
  auto rows = doc.find("rows");
  if (rows == doc.end() || !rows->is_number_integer() || rows->get<int64_t>() < 2) {
    return InvalidArgumentError("'rows' must be an integer of at least 2");
  }
  ref.rows = rows->get<int64_t>();
  if (auto input = doc.find("input"); input != doc.end()) {
    SELU_ASSIGN_OR_RETURN(ref.input, ReadTensor(*input, "input", spec.input_features));
  }
  auto layers = doc.find("layers");
  if (layers == doc.end() || !layers->is_array()) {
    return InvalidArgumentError("'layers' must be an array");
  }
  const std::vector<ObservedLayer> observed = ObservedLayers(spec);
  if (layers->size() != observed.size()) {
    return InvalidArgumentError("'layers' has " + std::to_string(layers->size()) +
                                " entries, the model has " + std::to_string(observed.size()) +
                                " dense layers");
  }
  for (size_t i = 0; i < layers->size(); ++i) {
    const std::string where = "layers[" + std::to_string(i) + "]";
    const Json& l = (*layers)[i];
    LayerReference layer;
    layer.index = static_cast<int64_t>(i);
    SELU_ASSIGN_OR_RETURN(layer.stats, ReadTensor(l, where, observed[i].features));
    if (auto name = l.find("name"); name != l.end() && name->is_string()) {
      layer.name = name->get<std::string>();
    }
    if (auto act = l.find("activation"); act != l.end() && act->is_string()) {
      layer.activation = act->get<std::string>();
    }
    ref.layers.push_back(std::move(layer));
  }
  return ref;
}

std::string ReferenceStatsToJson(const ReferenceStats& stats) {
  Json layers = Json::array();
  for (const LayerReference& l : stats.layers) {
    Json j = TensorJson(l.stats);
    j["index"] = l.index;
    j["name"] = l.name;
    j["activation"] = l.activation;
    layers.push_back(std::move(j));
  }
  Json doc{{"format", 1}, {"split", stats.split}, {"rows", stats.rows}};
  if (stats.input) doc["input"] = TensorJson(*stats.input);
  doc["layers"] = std::move(layers);
  return doc.dump();
}

namespace {
std::string ActivationsName(const std::vector<Activation>& activations) {
  if (activations.empty()) return "Identity";
  std::string name;
  for (const Activation& a : activations) {
    if (!name.empty()) name += "+";
    name += ActivationName(a.kind);
  }
  return name;
}
}  // namespace

std::string LayerActivationName(const DenseLayer& layer) {
  return ActivationsName(layer.activations);
}

std::string LayerActivationName(const ObservedLayer& layer) { return layer.activation; }

LoadedReference LoadReferenceStats(const std::string& version_dir, const ModelSpec& spec) {
  LoadedReference out;
  const std::string file = (std::filesystem::path(version_dir) / kReferenceStatsFile).string();
  std::error_code ec;
  std::string text;
  if (std::filesystem::exists(file, ec)) {
    out.source = file;
    auto bytes = ReadStableFile(file, kMaxReferenceBytes);
    if (!bytes.ok()) {
      out.problem = bytes.status().message();
      return out;
    }
    text = std::move(bytes).value();
  } else if (auto it = spec.metadata.find(kReferenceStatsMetadataKey); it != spec.metadata.end()) {
    out.source = std::string("metadata_props ") + kReferenceStatsMetadataKey;
    text = it->second;
  } else {
    return out;
  }
  auto parsed = ParseReferenceStats(text, spec);
  if (!parsed.ok()) {
    out.problem = out.source + ": " + parsed.status().message();
    return out;
  }
  out.stats = std::move(parsed).value();
  return out;
}

}  // namespace selu::core

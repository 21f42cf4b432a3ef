#include "server/core/monitor/self_normalization.h"

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "server/core/monitor/unit_moments.h"

namespace selu::core {
namespace {

class ProbeObserver final : public LayerObserver {
 public:
  explicit ProbeObserver(const ModelSpec& spec) {
    for (const ObservedLayer& l : ObservedLayers(spec)) layers.emplace_back(l.features);
  }
  void OnInput(const float*, int64_t, int64_t) override {}
  void OnLayer(int layer, const float* output, int64_t rows, int64_t) override {
    layers[static_cast<size_t>(layer)].Add(output, rows);
  }
  std::vector<UnitMoments> layers;
};

}  // namespace

StatusOr<SelfNormalizationReport> ProbeSelfNormalization(const MlpEngine& engine) {
  const ModelSpec& spec = engine.spec();
  const int64_t rows = std::min<int64_t>(kProbeRows, engine.options().max_rows);
  std::vector<float> input(static_cast<size_t>(rows * spec.input_features));
  std::mt19937_64 rng(20261201);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (float& v : input) v = normal(rng);
  std::vector<float> output(static_cast<size_t>(rows * spec.output_features));
  ProbeObserver observer(spec);
  auto workspace = engine.CreateWorkspace();
  SELU_RETURN_IF_ERROR(engine.Run(*workspace, input.data(), rows, output.data(), observer));

  SelfNormalizationReport report;
  report.ran = true;
  report.rows = rows;
  bool any_selu = false;
  bool all_near = true;
  std::string figures;
  const std::vector<ObservedLayer> observed = ObservedLayers(spec);
  for (size_t k = 0; k < observed.size(); ++k) {
    const double mean = observer.layers[k].TensorMean();
    const double var = observer.layers[k].TensorVariance();
    report.layer_mean.push_back(mean);
    report.layer_variance.push_back(var);
    bool selu = false;
    // A sum with a residual is not expected at the fixed point: judged are
    // the layers whose result is a SELU's output.
    if (!observed[k].residual) {
      for (const Activation& a : observed[k].activations) selu |= a.kind == ActivationKind::kSelu;
    }
    char line[96];
    std::snprintf(line, sizeof(line), "%s%zu:%s mean %.3f var %.3f", k ? ", " : "", k,
                  selu ? "selu" : "", mean, var);
    figures += line;
    if (!selu) continue;
    any_selu = true;
    const bool near = std::abs(mean) <= kProbeMeanTolerance && var >= 1.0 / kProbeVarianceFactor &&
                      var <= kProbeVarianceFactor;
    all_near &= near;
  }
  report.self_normalizing = any_selu && all_near;
  report.summary = "N(0,1) inputs (" + std::to_string(rows) + " rows): layers " + figures +
                   (!any_selu                 ? "; no SELU layer"
                    : report.self_normalizing ? "; SELU layers stay near the fixed point (0, 1)"
                                              : "; SELU layers leave the fixed point (0, 1): not "
                                                "self-normalizing on standardized inputs");
  return report;
}

}  // namespace selu::core

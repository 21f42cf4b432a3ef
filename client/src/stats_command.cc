#include "client/src/stats_command.h"

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "proto/monitor.grpc.pb.h"

namespace selu::client {

namespace {

using selu::monitor::v1::ModelMonitorResponse;
using selu::monitor::v1::MonitoredTensor;

std::string Number(double value, const char* format = "%.4f") {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char text[64];
  std::snprintf(text, sizeof(text), format, value);
  return text;
}

std::string ScoreLine(const ModelMonitorResponse& r) {
  if (r.has_score()) {
    const bool drift = r.drift_score() >= r.drift_threshold();
    return "drift score " + Number(r.drift_score()) + (drift ? " >= " : " < ") + "threshold " +
           Number(r.drift_threshold(), "%g") + (drift ? ": DRIFT" : ": ok");
  }
  switch (r.state()) {
    case ModelMonitorResponse::ACTIVE:
      return "drift score: none yet (no window closed)";
    case ModelMonitorResponse::OFF:
      return "drift score: none (monitor off)";
    default:
      return "drift score: none (no usable reference)";
  }
}

std::string ProbeLine(const ModelMonitorResponse& r) {
  if (!r.probe_ran()) return "probe: not run";
  return std::string("probe: ") +
         (r.self_normalizing() ? "self-normalizing" : "NOT self-normalizing") +
         " on N(0,1) inputs (" + std::to_string(r.probe_rows()) + " rows)";
}

std::vector<std::string> TensorRow(const MonitoredTensor& t) {
  const auto live = [&](double v) { return t.has_live() ? Number(v) : std::string("-"); };
  const auto ref = [&](double v) { return t.has_reference() ? Number(v) : std::string("-"); };
  return {t.layer() < 0 ? "input" : std::to_string(t.layer()),
          t.name().empty() ? "-" : t.name(),
          t.activation().empty() ? "-" : t.activation(),
          std::to_string(t.features()),
          live(t.live_mean()),
          live(t.live_variance()),
          ref(t.reference_mean()),
          ref(t.reference_variance()),
          t.has_live() && t.has_reference() ? Number(t.divergence()) : "-",
          t.has_reference() ? Number(t.weight(), "%g") : "-"};
}

void PrintStats(const ModelMonitorResponse& r) {
  std::printf("model %s version %s: monitor %s\n", r.model().c_str(), r.version().c_str(),
              ModelMonitorResponse::State_Name(r.state()).c_str());
  if (!r.reference_source().empty()) {
    std::printf("reference: %s\n", r.reference_source().c_str());
  }
  if (!r.problem().empty()) std::printf("problem: %s\n", r.problem().c_str());
  std::printf("%s\n", ScoreLine(r).c_str());
  std::printf(
      "windows %llu, alarms %llu; sampled rows %llu in %llu batches, last window %lld rows%s\n",
      static_cast<unsigned long long>(r.windows()), static_cast<unsigned long long>(r.alarms()),
      static_cast<unsigned long long>(r.sampled_rows()),
      static_cast<unsigned long long>(r.sampled_batches()),
      static_cast<long long>(r.last_window_rows()),
      r.windows() > 0
          ? (", closed " + Number(r.last_window_age_seconds(), "%.1f") + " s ago").c_str()
          : "");
  std::printf("sample rate %s, window %lld rows\n", Number(r.sample_rate(), "%g").c_str(),
              static_cast<long long>(r.window_rows()));
  std::printf("%s\n\n", ProbeLine(r).c_str());
  std::vector<std::vector<std::string>> rows = {{"LAYER", "NAME", "ACTIVATION", "FEATURES",
                                                 "LIVE_MEAN", "LIVE_VAR", "REF_MEAN", "REF_VAR",
                                                 "DIVERGENCE", "WEIGHT"}};
  for (const MonitoredTensor& t : r.tensors()) rows.push_back(TensorRow(t));
  PrintTable(rows, {3, 4, 5, 6, 7, 8, 9});
}

}  // namespace

int RunStats(const ConnectionOptions& connection, const std::string& model,
             const std::string& version, bool json) {
  auto stub = selu::monitor::v1::ModelMonitor::NewStub(MakeChannel(connection));
  grpc::ClientContext context;
  PrepareContext(&context, connection);
  selu::monitor::v1::ModelMonitorRequest request;
  request.set_name(model);
  request.set_version(version);
  ModelMonitorResponse response;
  const grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) return ReportRpcError("ModelMonitor Check " + model, status);
  if (json) return PrintAsJson(response, /*all_fields=*/true);
  PrintStats(response);
  return kExitOk;
}

}  // namespace selu::client

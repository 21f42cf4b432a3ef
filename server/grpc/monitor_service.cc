#include "server/grpc/monitor_service.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <exception>
#include <string>

#include "server/grpc/finish_now.h"
#include "server/grpc/status_mapping.h"

namespace selu::grpc_transport {

namespace {

using selu::monitor::v1::ModelMonitorResponse;

ModelMonitorResponse::State ToProto(core::MonitorState state) {
  switch (state) {
    case core::MonitorState::kOff:
      return ModelMonitorResponse::OFF;
    case core::MonitorState::kNoReference:
      return ModelMonitorResponse::NO_REFERENCE;
    case core::MonitorState::kBadReference:
      return ModelMonitorResponse::BAD_REFERENCE;
    case core::MonitorState::kActive:
      return ModelMonitorResponse::ACTIVE;
  }
  return ModelMonitorResponse::UNKNOWN;
}

void FillMonitorResponse(const core::MonitorSnapshot& s, ModelMonitorResponse* out) {
  out->set_state(ToProto(s.state));
  out->set_problem(s.problem);
  out->set_reference_source(s.reference_source);
  out->set_sample_rate(s.sample_rate);
  out->set_window_rows(static_cast<int32_t>(s.window_rows));
  out->set_sampled_batches(s.sampled_batches);
  out->set_sampled_rows(s.sampled_rows);
  out->set_windows(s.windows);
  out->set_alarms(s.alarms);
  out->set_has_score(s.has_score);
  out->set_drift_score(s.drift_score);
  out->set_drift_threshold(core::kDriftThreshold);
  out->set_last_window_rows(static_cast<int32_t>(s.last_window_rows));
  if (s.last_window_unix_seconds > 0) {
    const double now =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    out->set_last_window_age_seconds(std::max(0.0, now - s.last_window_unix_seconds));
  }
  out->set_probe_ran(s.probe.ran);
  out->set_probe_rows(static_cast<int32_t>(s.probe.rows));
  out->set_self_normalizing(s.probe.self_normalizing);
  out->set_probe_summary(s.probe.summary);
  for (const core::MonitoredTensor& t : s.tensors) {
    auto* m = out->add_tensors();
    m->set_layer(static_cast<int32_t>(t.layer));
    m->set_name(t.name);
    m->set_activation(t.activation);
    m->set_features(static_cast<int32_t>(t.features));
    m->set_weight(t.weight);
    m->set_has_live(t.has_live);
    m->set_live_mean(t.live_mean);
    m->set_live_variance(t.live_variance);
    m->set_divergence(t.divergence);
    m->set_has_reference(t.has_reference);
    m->set_reference_mean(t.reference_mean);
    m->set_reference_variance(t.reference_variance);
    m->set_has_probe(t.has_probe);
    m->set_probe_mean(t.probe_mean);
    m->set_probe_variance(t.probe_variance);
  }
}

}  // namespace

MonitorCallStats::MonitorCallStats()
    : site_{.service = kMonitorServiceName,
            .method = "Check",
            .type = "unary",
            .counters = &check_} {}

grpc::ServerUnaryReactor* MonitorService::Check(
    grpc::CallbackServerContext* context, const selu::monitor::v1::ModelMonitorRequest* request,
    ModelMonitorResponse* response) {
  const auto start = std::chrono::steady_clock::now();
  core::CallCounters& counters = call_stats_.check();
  counters.Start();
  if (!restricted_.Allowed(ProtocolGroup::kMonitor, *context)) {
    return FinishNow(counters, start, context, restricted_.Denial(ProtocolGroup::kMonitor));
  }
  const core::ModelRegistry* registry = registry_.load(std::memory_order_acquire);
  if (registry == nullptr) {
    return FinishNow(counters, start, context,
                     ToGrpcStatus(core::UnavailableError("models are still loading")));
  }
  auto model = registry->Find(request->name(), request->version());
  if (!model.ok()) return FinishNow(counters, start, context, ToGrpcStatus(model.status()));
  try {
    response->set_model((*model)->name());
    response->set_version((*model)->version_string());
    FillMonitorResponse((*model)->monitor().Snapshot(), response);
  } catch (const std::exception& e) {
    response->Clear();
    return FinishNow(
        counters, start, context,
        ToGrpcStatus(core::InternalError(std::string("unexpected error: ") + e.what())));
  }
  return FinishNow(counters, start, context, grpc::Status::OK);
}

}  // namespace selu::grpc_transport

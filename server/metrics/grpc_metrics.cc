#include "server/metrics/grpc_metrics.h"

#include <google/protobuf/descriptor.h>

#include <chrono>

#include "proto/grpc_service.pb.h"
#include "server/metrics/metric_families.h"

namespace selu::metrics {
namespace {

using Clock = std::chrono::steady_clock;

class MetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit MetricsInterceptor(GrpcServerMetrics::Method* method)
      : method_(method), start_(Clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using Hook = grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(Hook::POST_RECV_INITIAL_METADATA)) {
      method_->started.fetch_add(1, std::memory_order_relaxed);
    }
    if (methods->QueryInterceptionHookPoint(Hook::PRE_SEND_STATUS)) {
      const int code = static_cast<int>(methods->GetSendStatus().error_code());
      if (code >= 0 && code < core::kStatusCodeCount) {
        method_->handled[code].fetch_add(1, std::memory_order_relaxed);
      }
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start_);
      method_->handling_ns.Observe(static_cast<uint64_t>(std::max<int64_t>(0, ns.count())));
    }
    methods->Proceed();
  }

 private:
  GrpcServerMetrics::Method* method_;
  Clock::time_point start_;
};

class MetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(const GrpcServerMetrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    GrpcServerMetrics::Method* method = metrics_->Find(info->method());
    return method ? new MetricsInterceptor(method) : nullptr;
  }

 private:
  const GrpcServerMetrics* metrics_;
};

const char* RpcType(bool client_streaming, bool server_streaming) {
  if (client_streaming && server_streaming) return "bidi_stream";
  if (client_streaming) return "client_stream";
  if (server_streaming) return "server_stream";
  return "unary";
}

}  // namespace

GrpcServerMetrics::GrpcServerMetrics() {
  // Make sure the generated descriptors are linked in and registered.
  inference::ModelInferRequest::descriptor();
  const auto* service = google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
      "inference.GRPCInferenceService");
  if (service != nullptr) {
    for (int i = 0; i < service->method_count(); ++i) {
      const auto* m = service->method(i);
      Add(service->full_name(), m->name(), RpcType(m->client_streaming(), m->server_streaming()));
    }
  }
  Add("grpc.health.v1.Health", "Check", "unary");
  Add("grpc.health.v1.Health", "Watch", "server_stream");
  Add("grpc.reflection.v1alpha.ServerReflection", "ServerReflectionInfo", "bidi_stream");
  unknown_ = std::make_unique<Method>("unknown", "unknown", "unknown");
}

void GrpcServerMetrics::Add(const std::string& service, const std::string& method,
                            const std::string& type) {
  methods_.push_back(std::make_unique<Method>(service, method, type));
  paths_.reserve(64);  // keys are string_views into paths_: no reallocation
  paths_.push_back("/" + service + "/" + method);
  by_path_[paths_.back()] = methods_.back().get();
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
GrpcServerMetrics::InterceptorFactory() {
  return std::make_unique<MetricsInterceptorFactory>(this);
}

GrpcServerMetrics::Method* GrpcServerMetrics::Find(std::string_view full_method) const {
  auto it = by_path_.find(full_method);
  return it != by_path_.end() ? it->second : unknown_.get();
}

std::vector<prometheus::MetricFamily> GrpcServerMetrics::Collect() const {
  auto started = CounterFamily("grpc_server_started_total",
                               "Total number of RPCs started on the server.");
  auto handled = CounterFamily("grpc_server_handled_total",
                               "Total number of RPCs completed on the server, regardless of "
                               "success or failure.");
  auto handling = HistogramFamily("grpc_server_handling_seconds",
                                  "Histogram of response latency (seconds) of gRPC that had been "
                                  "application-level handled by the server.");
  std::vector<const Method*> all;
  for (const auto& m : methods_) all.push_back(m.get());
  if (unknown_->started.load(std::memory_order_relaxed) > 0) all.push_back(unknown_.get());
  for (const Method* m : all) {
    const Labels labels = {
        {"grpc_method", m->method}, {"grpc_service", m->service}, {"grpc_type", m->type}};
    AddCounter(started, labels, double(m->started.load(std::memory_order_relaxed)));
    for (int code = 0; code < core::kStatusCodeCount; ++code) {
      const uint64_t n = m->handled[code].load(std::memory_order_relaxed);
      // Like go-grpc-prometheus, OK is always present; other codes once seen.
      if (n == 0 && code != 0) continue;
      Labels with_code = labels;
      with_code.push_back(
          {"grpc_code", GrpcCodeName(static_cast<core::StatusCode>(code))});
      AddCounter(handled, with_code, double(n));
    }
    AddHistogram(handling, labels, m->handling_ns.Read(), 1e9);
  }
  return {std::move(started), std::move(handled), std::move(handling)};
}

}  // namespace selu::metrics

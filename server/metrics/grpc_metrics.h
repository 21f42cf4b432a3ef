// gRPC server metrics with the names and labels of go-grpc-prometheus, which
// existing dashboards expect: grpc_server_started_total,
// grpc_server_handled_total{grpc_code}, grpc_server_handling_seconds, each
// labelled grpc_type, grpc_service, grpc_method.
//
// Counted by a server interceptor for every rpc of every service (inference,
// health, reflection). The method table is built once before the server
// starts; recording is relaxed atomic adds, no lock.
//
// Thread safety: the interceptors run on gRPC's threads; Collect() may run
// concurrently with them.
#pragma once

#include <grpcpp/support/server_interceptor.h>
#include <prometheus/collectable.h>

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "server/core/atomic_histogram.h"
#include "server/core/status.h"

namespace selu::metrics {

class GrpcServerMetrics final : public prometheus::Collectable {
 public:
  struct Method {
    Method(std::string service_name, std::string method_name, std::string rpc_type)
        : service(std::move(service_name)), method(std::move(method_name)),
          type(std::move(rpc_type)) {}
    std::string service, method, type;  // type: unary, server_stream, ...
    std::atomic<uint64_t> started{0};
    std::atomic<uint64_t> handled[core::kStatusCodeCount] = {};
    core::AtomicHistogram handling_ns{core::LatencyBucketsNs()};
  };

  // Knows the inference, health and reflection services' methods.
  GrpcServerMetrics();

  // The interceptor factory to install with ServerBuilder::experimental().
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> InterceptorFactory();

  // Null for a method not in the table (counted as "unknown").
  Method* Find(std::string_view full_method) const;

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  void Add(const std::string& service, const std::string& method, const std::string& type);
  std::vector<std::unique_ptr<Method>> methods_;
  std::unordered_map<std::string_view, Method*> by_path_;
  std::vector<std::string> paths_;  // storage for by_path_ keys
  std::unique_ptr<Method> unknown_;
};

}  // namespace selu::metrics

#include "server/grpc/infer_job.h"

#include <exception>
#include <string>
#include <thread>

#include "server/core/base/client_text.h"

namespace selu::grpc_transport {

core::Clock::time_point SteadyDeadline(const grpc::CallbackServerContext& context) {
  using core::Clock;
  const auto wall = context.deadline();
  if (wall == std::chrono::system_clock::time_point::max()) return Clock::time_point::max();
  const auto remaining = wall - std::chrono::system_clock::now();
  if (remaining > std::chrono::hours(24 * 365)) return Clock::time_point::max();
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(remaining);
}

core::Status InferJob::Start(std::shared_ptr<core::ServableModel> model,
                             const inference::ModelInferRequest& request,
                             inference::ModelInferResponse* response,
                             core::Clock::time_point arrival, core::Clock::time_point deadline) {
  model_ = std::move(model);
  arrival_ = arrival;
  const core::ModelSpec& spec = model_->spec();
  SELU_RETURN_IF_ERROR(DecodeInferInput(request, spec, model_->max_batch_size(), &input_));
  auto out = PrepareInferResponse(request, spec, model_->version_string(), input_.rows, input_.raw,
                                  response, &outputs_);
  if (!out.ok()) return out.status();
  this->input = input_.data;
  this->output = *out;
  this->rows = input_.rows;
  this->deadline = deadline;
  if (model_->queue_timeout().count() > 0) {
    // config.pbtxt default_queue_policy.default_timeout_microseconds.
    this->deadline = std::min(this->deadline, arrival + model_->queue_timeout());
  }
  return model_->batcher().Submit(this);
}

core::Status InferJob::Complete(core::Status status, inference::ModelInferResponse* response) {
  // Several outputs or classification: cut the packed answer rows into the
  // outputs (before the request's time is recorded, which then includes the
  // copy).
  if (status.ok()) FinishInferResponse(model_->spec(), model_->labels(), outputs_, response);
  model_->stats().RecordRequest(status, arrival_, *this);
  if (!status.ok()) {
    response->Clear();
    status = status.WithPrefix("model '" + core::QuoteClientText(model_->name()) + "'");
  }
  return status;
}

core::Status SubmitInfer(InferPath& path, const inference::ModelInferRequest& request,
                         core::Clock::time_point arrival, core::Clock::time_point deadline,
                         InferJob* job, inference::ModelInferResponse* response) {
  core::ModelRegistry* registry = path.registry.load(std::memory_order_acquire);
  if (registry == nullptr) return core::UnavailableError("models are still loading");
  for (int attempt = 1;; ++attempt) {
    auto model = registry->Find(request.model_name(), request.model_version());
    if (!model.ok()) return model.status();
    if (path.test_submit_delay.count() > 0) std::this_thread::sleep_for(path.test_submit_delay);
    core::Status status;
    try {
      status = job->Start(*model, request, response, arrival, deadline);
    } catch (const std::exception& e) {
      status = core::InternalError(std::string("unexpected error: ") + e.what());
    }
    if (status.ok()) return status;
    response->Clear();
    job->Release();
    // The version found was swapped out (its batcher drains) between Find
    // and Submit: look again, so that a swap fails no request.
    if (status.code() == core::StatusCode::kUnavailable && !(*model)->ready() && path.gate.open() &&
        attempt < 4) {
      path.swap_resends.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    (*model)->stats().RecordRefused(status.code(), arrival);
    return status;
  }
}

}  // namespace selu::grpc_transport

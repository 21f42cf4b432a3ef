#include "server/http/rest_server.h"

#include <httplib.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>

#include "server/http/rest_codec.h"
#include "server/http/rest_routes.h"
#include "server/http/rest_tls.h"

namespace selu::http {

namespace {

using core::Clock;

// How long an idle keep-alive connection keeps its worker.
constexpr time_t kKeepAliveSeconds = 2;
// Requests one connection may send before the server closes it (a bound on
// how long one client can keep a worker, too).
constexpr size_t kKeepAliveMaxRequests = 10000;

// httplib's ThreadPool queues accepted connections without bound; this one
// holds at most `max_waiting`, then blocks the accepting thread, so further
// connections wait in the kernel's listen backlog.
class BoundedThreadPool final : public httplib::TaskQueue {
 public:
  BoundedThreadPool(size_t threads, size_t max_waiting) : max_waiting_(max_waiting) {
    for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
  }
  void enqueue(std::function<void()> fn) override {
    std::unique_lock lock(mu_);
    room_.wait(lock, [this] { return jobs_.size() < max_waiting_ || shutdown_; });
    jobs_.push_back(std::move(fn));
    work_.notify_one();
  }
  void shutdown() override {
    {
      std::lock_guard lock(mu_);
      shutdown_ = true;
    }
    work_.notify_all();
    room_.notify_all();
    for (auto& t : threads_) t.join();
  }

 private:
  void Work() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock lock(mu_);
        work_.wait(lock, [this] { return !jobs_.empty() || shutdown_; });
        if (jobs_.empty()) return;  // shut down, queue drained
        fn = std::move(jobs_.front());
        jobs_.pop_front();
        room_.notify_one();
      }
      fn();
    }
  }
  const size_t max_waiting_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable work_, room_;
  std::deque<std::function<void()>> jobs_;  // guarded by mu_
  bool shutdown_ = false;                   // guarded by mu_
};

const char* ReasonOf(int code) {
  switch (code) {
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 411:
      return "Length Required";
    case 413:
      return "Payload Too Large";
    case 414:
      return "URI Too Long";
    case 416:
      return "Range Not Satisfiable";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "HTTP error";
  }
}

void Send(httplib::Response& res, const RestAnswer& answer, bool close, const char* allow) {
  res.status = answer.code;
  if (answer.header_length) {
    res.set_header("Inference-Header-Content-Length", std::to_string(*answer.header_length));
  }
  if (allow != nullptr) res.set_header("Allow", allow);
  if (close) res.set_header("Connection", "close");
  if (!answer.body.empty()) res.set_content(answer.body, answer.content_type);
}

}  // namespace

RestServer::RestServer(RestServerOptions options, grpc_transport::InferPath* path)
    : options_(std::move(options)), path_(path) {}

core::StatusOr<std::unique_ptr<RestServer>> RestServer::Start(RestServerOptions options,
                                                              grpc_transport::InferPath* path) {
  std::unique_ptr<RestServer> server(new RestServer(std::move(options), path));
  RestServer* self = server.get();
  const RestServerOptions& o = self->options_;
  const size_t colon = o.address.rfind(':');
  if (colon == std::string::npos || colon + 1 == o.address.size()) {
    return core::InvalidArgumentError("--http-address '" + o.address + "' must be host:port");
  }
  std::string host = o.address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  int port = -1;
  try {
    port = std::stoi(o.address.substr(colon + 1));
  } catch (const std::exception&) {
  }
  if (port < 0 || port > 65535) {
    return core::InvalidArgumentError("--http-address '" + o.address + "': bad port");
  }
  if (!o.tls_cert.empty()) {
    SELU_ASSIGN_OR_RETURN(self->tls_, TlsFiles::Load(o.tls_cert, o.tls_key, o.tls_client_ca));
    TlsFiles* tls = self->tls_.get();
    self->server_ =
        std::make_unique<httplib::SSLServer>([tls](SSL_CTX& ctx) { return tls->Configure(ctx); });
  } else {
    self->server_ = std::make_unique<httplib::Server>();
  }
  httplib::Server& http = *self->server_;
  if (!http.is_valid()) return core::InternalError("cannot set up the REST server's TLS context");
  const size_t threads = static_cast<size_t>(o.threads);
  http.new_task_queue = [threads] { return new BoundedThreadPool(threads, threads); };
  const auto timeout = std::chrono::duration_cast<std::chrono::microseconds>(o.read_timeout);
  http.set_read_timeout(timeout.count() / 1000000, timeout.count() % 1000000);
  http.set_write_timeout(timeout.count() / 1000000, timeout.count() % 1000000);
  http.set_keep_alive_timeout(kKeepAliveSeconds);
  http.set_keep_alive_max_count(kKeepAliveMaxRequests);
  http.set_tcp_nodelay(true);
  // Our own check answers first (with the flag's name); this one covers
  // chunked bodies too.
  http.set_payload_max_length(static_cast<size_t>(o.max_body_bytes));
  auto plain = [self](const httplib::Request& req, httplib::Response& res) {
    self->Handle(req, res, nullptr);
  };
  auto with_body = [self](const httplib::Request& req, httplib::Response& res,
                          const httplib::ContentReader& reader) {
    self->Handle(req, res, &reader);
  };
  http.Get(".*", plain);
  http.Post(".*", with_body);
  http.Put(".*", with_body);
  http.Patch(".*", with_body);
  http.Delete(".*", with_body);
  http.Options(".*", plain);
  // Answers httplib makes itself (a malformed request line, a body over the
  // limit) get a JSON body too.
  http.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.body.empty()) {
      res.set_content(ErrorBody(ReasonOf(res.status)), "application/json");
    }
  });
  http.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        res.status = 500;
        res.set_content(ErrorBody("unexpected error"), "application/json");
      });
  if (port == 0) {
    self->port_ = http.bind_to_any_port(host);
  } else {
    self->port_ = http.bind_to_port(host, port) ? port : -1;
  }
  if (self->port_ <= 0) {
    return core::UnavailableError("cannot listen on --http-address " + o.address +
                                  " (address in use or not permitted?)");
  }
  self->listener_ = std::thread([self] { self->server_->listen_after_bind(); });
  if (self->tls_) self->reloader_ = std::thread([self] { self->ReloadLoop(); });
  return server;
}

RestServer::~RestServer() { Stop(); }

void RestServer::Stop() {
  if (stopping_.exchange(true)) return;
  if (reloader_.joinable()) reloader_.join();
  if (server_) server_->stop();
  if (listener_.joinable()) listener_.join();
}

void RestServer::ReloadLoop() {
  auto next = Clock::now() + std::chrono::seconds(options_.tls_reload_seconds);
  while (!stopping_.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (Clock::now() < next) continue;
    next = Clock::now() + std::chrono::seconds(options_.tls_reload_seconds);
    tls_->Reload();
  }
}

void RestServer::Handle(const httplib::Request& req, httplib::Response& res,
                        const httplib::ContentReader* reader) {
  const Clock::time_point start = Clock::now();
  const Route route = RouteOf(req.path);
  EndpointCounters& counters = stats_[route.endpoint];
  auto answer_with = [&](const RestAnswer& answer, bool close, const char* allow = nullptr) {
    Send(res, answer, close, allow);
    counters.Record(answer.code, start);
  };
  const bool has_body = reader != nullptr;
  if (route.endpoint == Endpoint::kUnknown) {
    return answer_with(ErrorAnswer(core::NotFoundError("no such endpoint")), has_body);
  }
  const bool head = req.method == "HEAD";
  if (req.method != route.method && !(head && std::strcmp(route.method, "GET") == 0)) {
    RestAnswer a;
    a.code = 405;
    a.body = ErrorBody("Method Not Allowed");
    // The body of a refused request is not read: close the connection.
    return answer_with(a, has_body, route.method);
  }
  const grpc_transport::ProtocolGroup group = GroupOf(route.endpoint);
  if (options_.restricted.restricted(group)) {
    const std::string& header = options_.restricted.header(group);
    const bool present = req.has_header(header.c_str());
    const std::string value = present ? req.get_header_value(header.c_str()) : std::string();
    if (!options_.restricted.AllowedValue(group, present ? value.c_str() : nullptr)) {
      return answer_with(
          ErrorAnswer(core::Status(core::StatusCode::kPermissionDenied,
                                   options_.restricted.Denial(group).error_message())),
          has_body);
    }
  }
  std::string body;
  if (has_body) {
    const size_t max = static_cast<size_t>(options_.max_body_bytes);
    const std::string length_text = req.get_header_value("Content-Length");
    const long long length = length_text.empty() ? -1 : std::atoll(length_text.c_str());
    if (length > options_.max_body_bytes) {
      RestAnswer a;
      a.code = 413;
      a.body = ErrorBody("request body of " + std::to_string(length) + " bytes exceeds " +
                         std::to_string(max) + " (--http-max-body-bytes)");
      return answer_with(a, true);
    }
    const bool chunked =
        req.get_header_value("Transfer-Encoding").find("chunked") != std::string::npos;
    if (length > 0) body.reserve(static_cast<size_t>(length));
    const Clock::time_point deadline = start + options_.read_timeout;
    bool too_big = false, too_slow = false;
    auto receive = [&](const char* data, size_t n) {
      if (body.size() + n > max) return !(too_big = true);
      body.append(data, n);
      if (Clock::now() > deadline) return !(too_slow = true);
      return true;
    };
    // No Content-Length and not chunked: an empty body (curl -X POST).
    const bool complete = (length <= 0 && !chunked) || (*reader)(receive);
    if (too_big) {
      RestAnswer a;
      a.code = 413;
      a.body = ErrorBody("request body exceeds " + std::to_string(max) +
                         " bytes (--http-max-body-bytes)");
      return answer_with(a, true);
    }
    if (!complete || too_slow) {
      RestAnswer a;
      a.code = 408;
      a.body = ErrorBody("request body incomplete: " + std::to_string(body.size()) +
                         (length >= 0 ? " of " + std::to_string(length) : std::string()) +
                         " bytes within " + std::to_string(options_.read_timeout.count()) +
                         " ms (--http-read-timeout-ms)");
      return answer_with(a, true);
    }
  }
  const RouteContext context{path_, &options_, &in_flight_};
  const bool has_binary_header = req.has_header("Inference-Header-Content-Length");
  const std::string binary_header =
      has_binary_header ? req.get_header_value("Inference-Header-Content-Length") : std::string();
  RestAnswer answer =
      Serve(context, route, body, has_binary_header ? binary_header.c_str() : nullptr, start);
  answer_with(answer, false);
}

}  // namespace selu::http

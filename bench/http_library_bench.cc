// http_library_bench: the HTTP server libraries Debian packages, serving the
// same small POST (a KServe v2 JSON inference body of 64 numbers, echoed back
// as the answer), measured with the same raw-socket keep-alive client: the
// measurement behind server/http's choice of cpp-httplib (bench/README.md).
//
//   http_library_bench [--requests N] [--connections C] [--rounds R]
//
// Each round runs every library once, in turn (civetweb, cpp-httplib), so a
// neighbour's load on a shared machine hits both alike; prints each run's
// requests/s and, at the end, the median of each library and their ratio.
#include <arpa/inet.h>
#include <civetweb.h>
#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace {

std::string Body() {
  std::string body = R"({"inputs":[{"name":"input","datatype":"FP32","shape":[1,64],"data":[)";
  for (int i = 0; i < 64; ++i) body += (i ? "," : "") + std::to_string(0.25 * i);
  return body + "]}]}";
}

// One keep-alive connection sending `n` POSTs one after the other.
bool RunClient(int port, int n, const std::string& body) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return false;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const std::string request = "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                              std::to_string(body.size()) +
                              "\r\nContent-Type: application/json\r\n\r\n" + body;
  std::string in;
  char buf[8192];
  for (int i = 0; i < n; ++i) {
    if (send(fd, request.data(), request.size(), 0) != static_cast<ssize_t>(request.size())) {
      close(fd);
      return false;
    }
    for (;;) {
      const size_t head = in.find("\r\n\r\n");
      if (head != std::string::npos) {
        const size_t cl = in.find("Content-Length: ");
        if (cl != std::string::npos && cl < head) {
          const size_t length = std::strtoul(in.c_str() + cl + 16, nullptr, 10);
          if (in.size() >= head + 4 + length) {
            in.erase(0, head + 4 + length);
            break;
          }
        }
      }
      const ssize_t got = recv(fd, buf, sizeof buf, 0);
      if (got <= 0) {
        close(fd);
        return false;
      }
      in.append(buf, static_cast<size_t>(got));
    }
  }
  close(fd);
  return true;
}

double Measure(int port, int requests, int connections, const std::string& body) {
  std::atomic<bool> ok{true};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> clients;
  for (int c = 0; c < connections; ++c) {
    clients.emplace_back([&] {
      if (!RunClient(port, requests / connections, body)) ok = false;
    });
  }
  for (auto& t : clients) t.join();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!ok) {
    std::fprintf(stderr, "a client failed\n");
    std::exit(1);
  }
  return (requests / connections) * connections / s;
}

int CivetHandler(mg_connection* conn, void*) {
  std::string body;
  char buf[8192];
  int n;
  while ((n = mg_read(conn, buf, sizeof buf)) > 0) body.append(buf, static_cast<size_t>(n));
  mg_send_http_ok(conn, "application/json", static_cast<long long>(body.size()));
  mg_write(conn, body.data(), body.size());
  return 200;
}

double RunCivetweb(int requests, int connections, const std::string& body) {
  const char* options[] = {
      "listening_ports", "127.0.0.1:0", "num_threads", "32", "enable_keep_alive", "yes",
      "tcp_nodelay",     "1",           nullptr};
  mg_callbacks callbacks{};
  mg_context* ctx = mg_start(&callbacks, nullptr, options);
  mg_set_request_handler(ctx, "/v2", CivetHandler, nullptr);
  mg_server_port ports[1];
  mg_get_server_ports(ctx, 1, ports);
  const double rate = Measure(ports[0].port, requests, connections, body);
  mg_stop(ctx);
  return rate;
}

double RunHttplib(int requests, int connections, const std::string& body) {
  httplib::Server server;
  server.new_task_queue = [] { return new httplib::ThreadPool(32); };
  server.set_tcp_nodelay(true);
  server.set_keep_alive_max_count(1000000);
  server.Post(".*", [](const httplib::Request& req, httplib::Response& res) {
    res.set_content(req.body, "application/json");
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  std::thread listener([&] { server.listen_after_bind(); });
  const double rate = Measure(port, requests, connections, body);
  server.stop();
  listener.join();
  return rate;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int requests = 20000, connections = 4, rounds = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const int value = std::atoi(argv[i + 1]);
    if (flag == "--requests") requests = value;
    if (flag == "--connections") connections = value;
    if (flag == "--rounds") rounds = value;
  }
  const std::string body = Body();
  std::map<std::string, std::vector<double>> rates;
  const std::vector<std::pair<std::string, std::function<double()>>> libraries = {
      {"civetweb 1.15", [&] { return RunCivetweb(requests, connections, body); }},
      {"cpp-httplib 0.11", [&] { return RunHttplib(requests, connections, body); }},
  };
  std::printf("%d requests of %zu bytes over %d keep-alive connections, %d rounds\n", requests,
              body.size(), connections, rounds);
  for (int r = 0; r < rounds; ++r) {
    for (const auto& [name, run] : libraries) {
      const double rate = run();
      rates[name].push_back(rate);
      std::printf("round %d  %-17s %9.0f req/s\n", r + 1, name.c_str(), rate);
    }
  }
  const double civet = Median(rates["civetweb 1.15"]);
  const double httplib_rate = Median(rates["cpp-httplib 0.11"]);
  std::printf("median: civetweb %.0f req/s, cpp-httplib %.0f req/s, cpp-httplib/civetweb %.2f\n",
              civet, httplib_rate, httplib_rate / civet);
  return 0;
}

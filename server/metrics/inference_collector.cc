#include "server/metrics/inference_collector.h"

#include <dirent.h>
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "server/metrics/metric_families.h"

namespace selu::metrics {

InferenceCollector::InferenceCollector(BuildInfo build, TransportReadings transport)
    : build_(std::move(build)), transport_(std::move(transport)) {}

std::vector<prometheus::MetricFamily> InferenceCollector::Collect() const {
  auto requests = CounterFamily("selu_inference_requests_total",
                                "Inference requests answered, by final gRPC status code.");
  auto rows = CounterFamily("selu_inference_rows_total", "Rows inferred successfully.");
  auto duration = HistogramFamily("selu_inference_request_duration_seconds",
                                  "Inference request time from arrival to response ready.");
  auto queue = HistogramFamily("selu_inference_queue_duration_seconds",
                               "Time a computed request waited in the batching queue.");
  auto compute =
      HistogramFamily("selu_inference_compute_duration_seconds", "Engine time per batch.");
  auto batch = HistogramFamily("selu_inference_batch_size", "Rows per engine call.");
  auto depth = GaugeFamily("selu_inference_queue_depth", "Requests waiting in the queue.");
  auto in_flight =
      GaugeFamily("selu_inference_in_flight", "Inference calls accepted and not yet completed.");
  auto resends = CounterFamily(
      "selu_inference_swap_resends_total",
      "Requests that reached a model version as it was being replaced and were re-sent to "
      "the version replacing it.");
  auto stream_max = GaugeFamily(
      "selu_stream_unanswered_max",
      "Most ModelStreamInfer messages one stream has had read and unanswered at once (the "
      "server stops reading a stream at 1024).");
  auto stream_pauses = CounterFamily(
      "selu_stream_read_pauses_total",
      "Times a ModelStreamInfer stream stopped reading because 1024 of its messages were "
      "unanswered.");
  auto ready = GaugeFamily("selu_model_ready", "1 when the model version serves requests.");
  auto loads = CounterFamily("selu_model_loads_total", "Model loads, by result.");
  auto load_duration =
      HistogramFamily("selu_model_load_duration_seconds", "Time to load and warm up a model.");
  auto build = GaugeFamily("selu_build_info", "Build information; the value is always 1.");

  AddGauge(in_flight, {}, double(transport_.in_flight()));
  AddCounter(resends, {}, double(transport_.swap_resends()));
  AddGauge(stream_max, {}, double(transport_.stream_unanswered_max()));
  AddCounter(stream_pauses, {}, double(transport_.stream_read_pauses()));
  AddGauge(build,
           {{"grpc", build_.grpc},
            {"isa", build_.isa},
            {"onednn", build_.onednn},
            {"version", build_.version}},
           1.0);

  if (const core::ModelRegistry* registry = registry_.load(std::memory_order_acquire)) {
    for (const auto& entry : registry->Index()) {
      const std::string version = entry.version > 0 ? std::to_string(entry.version) : "";
      const Labels labels = {{"model", entry.name}, {"version", version}};
      AddGauge(ready, labels, entry.state == core::ModelState::kReady ? 1.0 : 0.0);
      if (!entry.model) continue;
      const core::ModelStatsSnapshot s = entry.model->stats().Snapshot();
      for (int code = 0; code < core::kStatusCodeCount; ++code) {
        if (s.requests_by_code[code] == 0 && code != 0) continue;
        Labels with_code = labels;
        with_code.push_back(
            {"code", std::string(core::StatusCodeName(static_cast<core::StatusCode>(code)))});
        AddCounter(requests, with_code, double(s.requests_by_code[code]));
      }
      AddCounter(rows, labels, double(s.inference_count));
      AddHistogram(duration, labels, s.request_duration_ns, 1e9);
      AddHistogram(queue, labels, s.queue_duration_ns, 1e9);
      AddHistogram(compute, labels, s.compute_duration_ns, 1e9);
      AddHistogram(batch, labels, s.batch_rows, 1.0);
      AddGauge(depth, labels, double(entry.model->batcher().stats().queue_depth));
    }
    for (const auto& counts : registry->LoadCountsByModel()) {
      AddCounter(loads, {{"model", counts.name}, {"result", "success"}}, double(counts.success));
      AddCounter(loads, {{"model", counts.name}, {"result", "failure"}}, double(counts.failure));
    }
    AddHistogram(load_duration, {}, registry->LoadDurations(), 1e9);
  }
  std::vector<prometheus::MetricFamily> out;
  for (auto* f : {&requests, &rows, &duration, &queue, &compute, &batch, &depth, &in_flight,
                  &resends, &stream_max, &stream_pauses, &ready, &loads, &load_duration, &build}) {
    out.push_back(std::move(*f));
  }
  return out;
}

namespace {

// Seconds since the epoch at which the machine booted (/proc/stat btime).
double BootTime() {
  std::ifstream in("/proc/stat");
  std::string key;
  double value = 0;
  while (in >> key) {
    if (key == "btime") {
      in >> value;
      return value;
    }
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

}  // namespace

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  const double ticks = double(sysconf(_SC_CLK_TCK));
  const double page = double(sysconf(_SC_PAGESIZE));
  double cpu = 0, start = 0, vsize = 0, rss = 0;
  {
    std::ifstream in("/proc/self/stat");
    std::string line;
    std::getline(in, line);
    // Fields after the parenthesised command name, which may hold spaces.
    std::istringstream rest(line.substr(line.rfind(')') + 2));
    std::vector<std::string> f;
    for (std::string x; rest >> x;) f.push_back(x);
    // rest[0] is field 3 (state): utime 14, stime 15, starttime 22, vsize 23, rss 24.
    if (f.size() > 21) {
      cpu = (std::stod(f[11]) + std::stod(f[12])) / ticks;
      start = BootTime() + std::stod(f[19]) / ticks;
      vsize = std::stod(f[20]);
      rss = std::stod(f[21]) * page;
    }
  }
  double fds = 0;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (dirent* e = readdir(dir)) {
      if (e->d_name[0] != '.') ++fds;
    }
    closedir(dir);
    --fds;  // the one opendir holds
  }
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);

  // The C allocator's view (glibc): what is in use, and what it holds free.
  const struct mallinfo2 heap = mallinfo2();
  auto heap_use_f = GaugeFamily("selu_heap_in_use_bytes",
                                "Bytes the C allocator has handed out and not got back.");
  AddGauge(heap_use_f, {}, double(heap.uordblks + heap.hblkhd));
  auto heap_free_f = GaugeFamily("selu_heap_free_bytes",
                                 "Bytes the C allocator holds free (fragmentation, reuse).");
  AddGauge(heap_free_f, {}, double(heap.fordblks));
  auto cpu_f = CounterFamily("process_cpu_seconds_total",
                             "Total user and system CPU time spent in seconds.");
  AddCounter(cpu_f, {}, cpu);
  auto rss_f = GaugeFamily("process_resident_memory_bytes", "Resident memory size in bytes.");
  AddGauge(rss_f, {}, rss);
  auto vsize_f = GaugeFamily("process_virtual_memory_bytes", "Virtual memory size in bytes.");
  AddGauge(vsize_f, {}, vsize);
  auto fds_f = GaugeFamily("process_open_fds", "Number of open file descriptors.");
  AddGauge(fds_f, {}, fds);
  auto max_fds_f = GaugeFamily("process_max_fds", "Maximum number of open file descriptors.");
  AddGauge(max_fds_f, {}, double(limit.rlim_cur));
  auto start_f = GaugeFamily("process_start_time_seconds",
                             "Start time of the process since unix epoch in seconds.");
  AddGauge(start_f, {}, start);
  return {std::move(cpu_f),     std::move(rss_f),   std::move(vsize_f),    std::move(fds_f),
          std::move(max_fds_f), std::move(start_f), std::move(heap_use_f), std::move(heap_free_f)};
}

}  // namespace selu::metrics

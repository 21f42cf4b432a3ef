#include "client/src/bench_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>

namespace selu::client {

namespace {

struct Bucket {
  double mark_s;
  uint64_t count;
  double frequency;
};

struct Stats {
  uint64_t count = 0, average = 0, fastest = 0, slowest = 0;
  double rps = 0;
  std::vector<std::pair<double, uint64_t>> percentiles;  // percentage, latency ns
  std::vector<Bucket> histogram;
};

// Nearest-rank percentile of sorted latencies.
uint64_t Percentile(const std::vector<uint64_t>& sorted, double percentage) {
  const auto rank =
      static_cast<size_t>(std::ceil(percentage / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

// ghz's histogram: 10 equal buckets from fastest to slowest plus one at
// slowest; each latency counts in the first bucket whose mark is >= it.
std::vector<Bucket> Histogram(const std::vector<uint64_t>& sorted) {
  constexpr int kBuckets = 10;
  const double fastest = static_cast<double>(sorted.front()) / 1e9;
  const double slowest = static_cast<double>(sorted.back()) / 1e9;
  const double width = (slowest - fastest) / kBuckets;
  std::vector<Bucket> buckets;
  for (int i = 0; i < kBuckets; ++i) buckets.push_back({fastest + width * i, 0, 0});
  buckets.push_back({slowest, 0, 0});
  size_t b = 0;
  for (uint64_t ns : sorted) {
    const double s = static_cast<double>(ns) / 1e9;
    while (b + 1 < buckets.size() && s > buckets[b].mark_s) ++b;
    ++buckets[b].count;
  }
  for (auto& bucket : buckets) {
    bucket.frequency = static_cast<double>(bucket.count) / static_cast<double>(sorted.size());
  }
  return buckets;
}

Stats Compute(BenchResult* result) {
  Stats stats;
  auto& lat = result->latencies_ns;
  std::sort(lat.begin(), lat.end());
  stats.count = lat.size();
  if (result->total_ns > 0) {
    stats.rps = static_cast<double>(stats.count) / (static_cast<double>(result->total_ns) / 1e9);
  }
  if (lat.empty()) return stats;
  long double sum = 0;
  for (uint64_t v : lat) sum += v;
  stats.average = static_cast<uint64_t>(sum / lat.size());
  stats.fastest = lat.front();
  stats.slowest = lat.back();
  for (double p : {10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9}) {
    stats.percentiles.emplace_back(p, Percentile(lat, p));
  }
  stats.histogram = Histogram(lat);
  return stats;
}

std::string Rfc3339(std::chrono::system_clock::time_point t) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(t);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

std::string Millis(uint64_t ns) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f ms", static_cast<double>(ns) / 1e6);
  return text;
}

}  // namespace

nlohmann::json BenchReportJson(BenchResult result) {
  const Stats stats = Compute(&result);
  nlohmann::json doc;
  if (!result.name.empty()) doc["name"] = result.name;
  doc["date"] = Rfc3339(result.date);
  doc["endReason"] = result.end_reason;
  doc["options"] = result.options;
  doc["count"] = stats.count;
  doc["total"] = result.total_ns;
  doc["average"] = stats.average;
  doc["fastest"] = stats.fastest;
  doc["slowest"] = stats.slowest;
  doc["rps"] = stats.rps;
  doc["errorDistribution"] = result.errors;
  doc["statusCodeDistribution"] = result.status_codes;
  doc["latencyDistribution"] = nlohmann::json::array();
  for (const auto& [p, ns] : stats.percentiles) {
    nlohmann::json percentage = p;
    if (p == std::floor(p)) percentage = static_cast<int>(p);
    doc["latencyDistribution"].push_back({{"percentage", percentage}, {"latency", ns}});
  }
  doc["histogram"] = nlohmann::json::array();
  for (const auto& b : stats.histogram) {
    doc["histogram"].push_back(
        {{"mark", b.mark_s}, {"count", b.count}, {"frequency", b.frequency}});
  }
  return doc;
}

std::string BenchReportSummary(BenchResult result) {
  const Stats stats = Compute(&result);
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line,
                "\nSummary:\n  Count:\t%llu\n  Total:\t%s\n  Slowest:\t%s\n  Fastest:\t%s\n"
                "  Average:\t%s\n  Requests/sec:\t%.2f\n\n",
                static_cast<unsigned long long>(stats.count), Millis(result.total_ns).c_str(),
                Millis(stats.slowest).c_str(), Millis(stats.fastest).c_str(),
                Millis(stats.average).c_str(), stats.rps);
  out += line;
  uint64_t most = 1;
  for (const auto& b : stats.histogram) most = std::max(most, b.count);
  out += "Response time histogram:\n";
  for (const auto& b : stats.histogram) {
    std::snprintf(line, sizeof line, "  %.3f [%llu]\t|", b.mark_s * 1e3,
                  static_cast<unsigned long long>(b.count));
    out += line;
    out += std::string(static_cast<size_t>(40 * b.count / most), '#') + "\n";
  }
  out += "\nLatency distribution:\n";
  for (const auto& [p, ns] : stats.percentiles) {
    std::snprintf(line, sizeof line, "  %g %% in %s \n", p, Millis(ns).c_str());
    out += line;
  }
  out += "\nStatus code distribution:\n";
  for (const auto& [code, n] : result.status_codes) {
    std::snprintf(line, sizeof line, "  [%s]\t%llu responses\n", code.c_str(),
                  static_cast<unsigned long long>(n));
    out += line;
  }
  if (!result.errors.empty()) {
    out += "\nError distribution:\n";
    for (const auto& [error, n] : result.errors) {
      out += "  [" + std::to_string(n) + "]\t" + error + "\n";
    }
  }
  out += "\nEnd reason: " + result.end_reason + "\n";
  return out;
}

}  // namespace selu::client

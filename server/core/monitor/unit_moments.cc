#include "server/core/monitor/unit_moments.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace selu::core {

UnitMoments::UnitMoments(int64_t features)
    : features_(features),
      shift_(static_cast<size_t>(features)),
      s1_(static_cast<size_t>(features)),
      s2_(static_cast<size_t>(features)),
      s3_(static_cast<size_t>(features)),
      s4_(static_cast<size_t>(features)) {}

namespace {

// ThreadSanitizer instruments the resolver that target_clones makes, and that
// resolver runs while the program is being loaded, before TSan is set up: the
// process crashes at start. The tsan preset defines SELU_NO_TARGET_CLONES
// (it has to undefine __SANITIZE_THREAD__), and gets the baseline version.
#ifdef SELU_NO_TARGET_CLONES
#define SELU_CPU_CLONES
#else
#define SELU_CPU_CLONES [[gnu::target_clones("avx512f", "avx2", "default")]]
#endif

// The sampled path's one hot loop: per unit, four running sums of the
// deviation from the window's first sample. Built for AVX-512, AVX2 and
// baseline x86-64 and chosen at load by the CPU (the binary itself targets
// baseline x86-64); this file is compiled with -O3 so each clone vectorizes.
SELU_CPU_CLONES void AddRows(const float* data, int64_t rows, size_t f, const double* shift,
                             double* s1, double* s2, double* s3, double* s4) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = data + static_cast<size_t>(r) * f;
    for (size_t j = 0; j < f; ++j) {
      const double x = double(row[j]) - shift[j];
      const double x2 = x * x;
      s1[j] += x;
      s2[j] += x2;
      s3[j] += x2 * x;
      s4[j] += x2 * x2;
    }
  }
}

}  // namespace

void UnitMoments::Add(const float* data, int64_t rows) {
  if (rows <= 0) return;
  const size_t f = static_cast<size_t>(features_);
  if (rows_ == 0) {
    // Moments about the window's first sample: exact for features far from
    // zero relative to their spread, where raw sums of x² would cancel.
    for (size_t j = 0; j < f; ++j) shift_[j] = std::isfinite(data[j]) ? data[j] : 0.0;
  }
  AddRows(data, rows, f, shift_.data(), s1_.data(), s2_.data(), s3_.data(), s4_.data());
  rows_ += rows;
}

void UnitMoments::Reset() {
  std::fill(s1_.begin(), s1_.end(), 0.0);
  std::fill(s2_.begin(), s2_.end(), 0.0);
  std::fill(s3_.begin(), s3_.end(), 0.0);
  std::fill(s4_.begin(), s4_.end(), 0.0);
  rows_ = 0;
}

double UnitMoments::Mean(int64_t j) const {
  const size_t u = static_cast<size_t>(j);
  return shift_[u] + s1_[u] / double(rows_);
}

double UnitMoments::Variance(int64_t j) const {
  const size_t u = static_cast<size_t>(j);
  const double m = s1_[u] / double(rows_);  // about the shift
  return std::max(0.0, s2_[u] / double(rows_) - m * m);
}

double UnitMoments::Kurtosis(int64_t j) const {
  const size_t u = static_cast<size_t>(j);
  const double n = double(rows_);
  const double m = s1_[u] / n;  // about the shift
  const double e2 = s2_[u] / n, e3 = s3_[u] / n, e4 = s4_[u] / n;
  const double var = e2 - m * m;
  if (!(var > 1e-12)) return 3.0;
  const double m4 = e4 - 4 * m * e3 + 6 * m * m * e2 - 3 * m * m * m * m;
  return std::max(0.0, m4) / (var * var);
}

double UnitMoments::TensorMean() const {
  double s = 0;
  for (int64_t j = 0; j < features_; ++j) s += Mean(j);
  return s / double(features_);
}

double UnitMoments::TensorVariance() const {
  // Over units and rows: the mean of the units' variances plus the variance
  // of their means (every unit has the same rows).
  const double mean = TensorMean();
  double within = 0, between = 0;
  for (int64_t j = 0; j < features_; ++j) {
    const double d = Mean(j) - mean;
    within += Variance(j);
    between += d * d;
  }
  return (within + between) / double(features_);
}

namespace {

// Σ over units of (Jeffreys divergence − sampling noise), from the raw sums;
// three divisions a unit, vectorized per CPU as AddRows is.
SELU_CPU_CLONES double ExcessSum(size_t f, double n, const double* shift, const double* s1,
                                 const double* s2, const double* s3, const double* s4,
                                 const double* ref_mean, const double* ref_var, double floor,
                                 double sampling) {
  const double inv_n = 1.0 / n;
  double total = 0;
  for (size_t j = 0; j < f; ++j) {
    const double a = s1[j] * inv_n;  // mean, about the shift
    const double e2 = s2[j] * inv_n, e3 = s3[j] * inv_n, e4 = s4[j] * inv_n;
    const double var = e2 - a * a;
    const double v = var > floor ? var : floor;
    const double rv = ref_var[j] > floor ? ref_var[j] : floor;
    const double inv_v = 1.0 / v, inv_rv = 1.0 / rv;
    const double d = shift[j] + a - ref_mean[j];
    const double jeffreys = 0.5 * (v * inv_rv + rv * inv_v - 2.0) + 0.5 * d * d * (inv_rv + inv_v);
    const double m4 = e4 - 4 * a * e3 + 6 * a * a * e2 - 3 * a * a * a * a;
    double kurtosis = 3.0;  // a unit without variance: a normal's
    if (var > 1e-12) kurtosis = (m4 > 0 ? m4 : 0.0) / (var * var);
    kurtosis = kurtosis < 1.0 ? 1.0 : (kurtosis > 50.0 ? 50.0 : kurtosis);
    total += jeffreys - sampling * (kurtosis + 1.0) * 0.5;
  }
  return total;
}

}  // namespace

double ExcessDivergence(const UnitMoments& live, const TensorStats& reference,
                        int64_t reference_rows) {
  const int64_t f = live.features();
  if (f == 0 || live.rows() == 0) return 0.0;
  double mean_ref_var = 0;
  for (double v : reference.unit_variance) mean_ref_var += v;
  mean_ref_var /= double(f);
  const double floor = std::max(1e-3 * mean_ref_var, 1e-12);
  const double sampling = 1.0 / double(live.rows()) + 1.0 / double(reference_rows);
  const double total =
      ExcessSum(static_cast<size_t>(f), double(live.rows()), live.shift_.data(), live.s1_.data(),
                live.s2_.data(), live.s3_.data(), live.s4_.data(), reference.unit_mean.data(),
                reference.unit_variance.data(), floor, sampling);
  const double mean = total / double(f);
  return std::isfinite(mean) ? mean : std::numeric_limits<double>::infinity();
}

TensorStats StatsOf(const UnitMoments& moments) {
  TensorStats t;
  t.features = moments.features();
  t.mean = moments.TensorMean();
  t.variance = moments.TensorVariance();
  for (int64_t j = 0; j < moments.features(); ++j) {
    t.unit_mean.push_back(moments.Mean(j));
    t.unit_variance.push_back(moments.Variance(j));
  }
  return t;
}

}  // namespace selu::core

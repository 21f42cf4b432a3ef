// Per-unit moments of a tensor over the rows of a window, and what the
// monitor derives from them: mean, variance and kurtosis per unit, mean and
// variance over units and rows, and the divergence from a reference.
//
// Thread safety: not thread-safe; a UnitMoments belongs to one monitor slot
// (one engine worker) at a time.
#pragma once

#include <cstdint>
#include <vector>

#include "server/core/monitor/reference_stats.h"

namespace selu::core {

class UnitMoments {
 public:
  explicit UnitMoments(int64_t features = 0);

  // Adds `rows` rows of `features()` floats (row-major). Allocates nothing.
  void Add(const float* data, int64_t rows);
  void Reset();

  int64_t rows() const { return rows_; }
  int64_t features() const { return features_; }
  // Population statistics of unit j (rows() ≥ 1).
  double Mean(int64_t j) const;
  double Variance(int64_t j) const;
  // E[(x-μ)⁴]/σ⁴ of unit j; 3 (a normal's) when the unit has no variance.
  double Kurtosis(int64_t j) const;
  // Over all units and rows.
  double TensorMean() const;
  double TensorVariance() const;

 private:
  friend double ExcessDivergence(const UnitMoments&, const TensorStats&, int64_t);
  int64_t features_ = 0;
  int64_t rows_ = 0;
  // Per unit: the window's first sample, and Σd, Σd², Σd³, Σd⁴ of d = x − it.
  std::vector<double> shift_, s1_, s2_, s3_, s4_;
};

// The drift statistic of one tensor: the mean over units of the Jeffreys
// (symmetrised Kullback-Leibler) divergence, in nats, between a normal with
// the unit's live mean and variance and one with its reference mean and
// variance, minus what sampling alone gives on average (a window of n rows
// against a reference of n_ref rows: (1/n + 1/n_ref)·(κ+1)/2 per unit, κ the
// unit's live kurtosis). ≈ 0 for traffic like the reference's, whatever the
// window; grows with any shift of mean or scale. Variances are floored at
// 1e-3 of the reference's mean unit variance, so a dead unit does not
// divide by zero. +inf when the live moments are not finite.
double ExcessDivergence(const UnitMoments& live, const TensorStats& reference,
                        int64_t reference_rows);

// Moments of a whole data set, for `calibrate` and the load-time probe.
TensorStats StatsOf(const UnitMoments& moments);

}  // namespace selu::core

// QuantileSketch: a mergeable quantile sketch with relative accuracy
// (DDSketch, Masson et al., VLDB 2019).
//
//   QuantileSketch s;               // alpha = 0.01, at most 2048 buckets per sign
//   for (double v : latencies) s.Add(v);
//   double p99 = s.Quantile(0.99);  // NaN when empty
//
// Guarantee. Sort the n finite values added so far, x[0] <= ... <= x[n-1],
// and let k = floor(q * (n - 1)). Quantile(q) returns y with
// |y - x[k]| <= alpha * |x[k]|, for positive and negative values alike; zero
// comes back as exactly 0. Merging sketches keeps the guarantee for the union
// of their values.
//
// How: a value v != 0 goes to bucket i = ceil(log_gamma |v|) of the store of
// its sign, with gamma = (1 + alpha) / (1 - alpha), so bucket i holds
// (gamma^(i-1), gamma^i] and one value inside it, 2 gamma^i / (gamma + 1), is
// within alpha of all of them. Zeros are counted apart. The sketch also keeps
// the exact min and max: ranks 0 and n-1 return them, and other answers are
// clamped to [min, max], which only ever brings them closer.
//
// Bounded memory. Each store keeps at most `max_buckets` consecutive buckets
// (2048 covers 17.8 orders of magnitude at alpha = 0.01). When values span
// more, the lowest buckets are folded into the lowest kept one: the positive
// store loses its smallest magnitudes, the negative store its most negative
// values. After that (collapsed() is true) the guarantee holds only for ranks
// whose exact value lies above the folded range; values inside it come back
// as the folded range's upper edge. This is DDSketch's collapsing-lowest
// store: high quantiles, the ones telemetry alerts on, stay exact to alpha.
// So a sketch never holds more than kRegionHeaderBytes + 2 * max_buckets * 8
// bytes (32.8 KB at the defaults), however many values it sees; counters take
// 1, 2, 4 or 8 bytes, widening on demand, so it is usually far less.
//
// Non-finite values (NaN, infinities) are ignored.
//
// Not thread-safe; a const sketch may be read from several threads.
#ifndef SLUICE_OPERATORS_SKETCH_H_
#define SLUICE_OPERATORS_SKETCH_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "platform/status.h"

namespace sluice::operators {

class QuantileSketch {
 public:
  static constexpr double kDefaultRelativeAccuracy = 0.01;
  static constexpr int kDefaultMaxBuckets = 2048;
  // Accepted ranges; the constructor clamps into them, DecodeFrom rejects
  // anything outside.
  static constexpr double kMinRelativeAccuracy = 1e-4;
  static constexpr double kMaxRelativeAccuracy = 0.5;
  static constexpr int kMinMaxBuckets = 16;
  static constexpr int kMaxMaxBuckets = 1 << 16;

  explicit QuantileSketch(double relative_accuracy = kDefaultRelativeAccuracy,
                          int max_buckets = kDefaultMaxBuckets);

  void Add(double v);
  // Adds every value of `other`. kInvalidArgument (and no change) when the
  // relative accuracies differ; bucket limits may differ (ours applies).
  [[nodiscard]] Status Merge(const QuantileSketch& other);
  // The value at rank floor(q * (count() - 1)) within relative_accuracy()
  // (see the file comment); q is clamped to [0, 1]. NaN when empty or q is NaN.
  double Quantile(double q) const;

  uint64_t count() const;
  double relative_accuracy() const;
  int max_buckets() const;
  // True once a store has folded buckets, so the lowest values lost accuracy.
  bool collapsed() const;

  // Appends a compact encoding: varints, only non-empty bucket runs.
  void EncodeTo(std::string* out) const;
  // Reads one encoded sketch from the front of `*in` and consumes it.
  // kDataLoss on truncated or malformed input (`*in` is then unspecified).
  static StatusOr<QuantileSketch> DecodeFrom(std::string_view* in);

  // Bytes held, including this object.
  size_t MemoryBytes() const;

  friend bool operator==(const QuantileSketch& a, const QuantileSketch& b) {
    return a.rep_ == b.rep_;
  }

 private:
  std::string rep_;  // one sketch region, see sketch_region below
};

// A sketch laid out as one flat run of bytes inside a larger buffer, so a
// flat aggregate state (aggregate.h) can hold sketches without pointers and
// add to them in place. A region is a fixed header followed by the bucket
// counters; its size changes when its range grows or its counters widen, and
// the bytes after it in the buffer move. Native byte order, like the rest of
// the aggregate state. QuantileSketch is one region in a string of its own.
namespace sketch_region {

inline constexpr size_t kRegionHeaderBytes = 80;

// Appends an empty region. The arguments are clamped as in QuantileSketch.
void Append(std::string& buf, double relative_accuracy, int max_buckets);

// The functions below take a region written by this module or accepted by
// Check; they do not re-check it.

// The region's size in bytes.
size_t Size(std::string_view buf, size_t offset);
uint64_t Count(std::string_view region);
void Add(std::string& buf, size_t offset, double v);
// Adds the values of the region `other` (which must not point into `buf`).
// kInvalidArgument when the relative accuracies differ.
[[nodiscard]] Status Merge(std::string& buf, size_t offset, std::string_view other);
double Quantile(std::string_view region, double q);

// Checks the region at the front of `bytes` (which may run on past it) and
// returns its size; kDataLoss if it is malformed or was built with another
// relative accuracy or bucket limit.
StatusOr<size_t> Check(std::string_view bytes, double relative_accuracy, int max_buckets);

}  // namespace sketch_region

}  // namespace sluice::operators

#endif  // SLUICE_OPERATORS_SKETCH_H_

// Aggregates of one window and key: count sum avg min max first last stddev
// and percentiles.
//
//   ASSIGN_OR_RETURN(auto agg, Aggregator::Create(specs));
//   std::string state = agg.NewState();         // one per open window and key
//   agg.Add(state, record);
//   std::vector<Field> values = agg.Results(state);   // in spec order
//
// State is a flat byte string so a window operator can keep millions of them
// compactly and snapshot them as they are. Per distinct input field there is
// one accumulator (count, sum, Welford mean and M2, min, max, first, last with
// their event times); a field that feeds a percentile adds a mergeable
// quantile sketch (sketch.h). Five basic aggregates over one field take well
// under 256 bytes.
#ifndef SLUICE_OPERATORS_AGGREGATE_H_
#define SLUICE_OPERATORS_AGGREGATE_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "operators/record.h"
#include "platform/status.h"

namespace sluice::operators {

enum class AggregateKind { kCount, kSum, kAvg, kMin, kMax, kFirst, kLast, kStddev, kPercentile };

struct AggregateSpec {
  std::string name;    // the output member name, e.g. "temp_avg"
  AggregateKind kind;
  std::string field;   // empty for count()
  double quantile = 0; // for kPercentile, 0 < q < 1
};

class Aggregator {
 public:
  // kInvalidArgument for a spec that makes no sense (a percentile outside
  // (0,1), a field missing where one is needed, duplicate names).
  static StatusOr<Aggregator> Create(std::vector<AggregateSpec> specs);

  // A fresh, empty state.
  std::string NewState() const;
  // Adds one record. Records missing a field, or holding a non-numeric value
  // in it, are skipped for the aggregates of that field (count() counts
  // every record); so are NaN and infinities. first/last follow event time
  // (ties: arrival_ms, then the order of Add calls).
  void Add(std::string& state, const Record& record) const;
  // Folds `other` into `state` (session windows that merge). The result is
  // what adding other's records after state's would give: a value tied with
  // one of state's on both event and arrival time ranks after it.
  void Merge(std::string& state, std::string_view other) const;
  // One field per spec, in spec order. An aggregate with no input is null
  // (count() is 0); stddev is the population standard deviation. A
  // percentile is within 1% relative error of the sorted input at rank
  // floor(q * (n - 1)) (sketch.h).
  std::vector<Field> Results(std::string_view state) const;

  // The fields the aggregates read (for decoding projections).
  std::vector<std::string> InputFields() const;
  const std::vector<AggregateSpec>& specs() const { return specs_; }

  // Checks that `state` is a well-formed state of this aggregator (snapshots
  // read back from disk); kDataLoss if not.
  Status Validate(std::string_view state) const;

 private:
  std::vector<AggregateSpec> specs_;
  std::vector<std::string> inputs_;         // distinct input fields
  std::vector<bool> input_needs_sketch_;    // per input
  std::vector<int> spec_input_;             // per spec: index into inputs_, -1 for count()
};

}  // namespace sluice::operators

#endif  // SLUICE_OPERATORS_AGGREGATE_H_

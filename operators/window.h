// Windowed aggregation in event time: tumbling, hopping and session windows.
//
//   WindowSpec spec;
//   spec.kind = WindowKind::kTumbling;
//   spec.size_ms = 60000;
//   spec.lateness_ms = 5000;
//   spec.group_by = {"site", "device"};
//   spec.aggregator = *Aggregator::Create({{"temp_avg", AggregateKind::kAvg, "temp"}});
//   auto op = NewWindow({"gw-1", "temp_1m"}, std::move(spec));
//
// Time rules (DESIGN.md):
// - The watermark is the highest event time seen minus `lateness_ms`, one
//   per pipeline (not per key), and never goes back.
// - Windows are half-open, [start, end). A window is emitted once, when the
//   watermark reaches its end (watermark >= end), with its aggregates.
// - A record whose windows have all been emitted already is late: it is
//   counted and rejected (dead-lettered) with the reason, never folded into
//   a window that was already reported.
// - Tumbling windows are aligned to the epoch (start = t - t mod size);
//   hopping windows start at multiples of `step_ms` and a record belongs to
//   every one that covers it; a session window per key runs from its first
//   record to its last plus `gap_ms`, and sessions that come within `gap_ms`
//   of each other merge.
// - When no record has arrived for `idle_ms` of processing time (OnTick),
//   event time is taken to move on with processing time: the watermark
//   advances as if records were still arriving, so the windows of a quiet
//   source still close. 0 disables it.
// - Emission order is deterministic: by window end, then key, then start.
//
// Output (DESIGN.md, aggregate kind):
//   {"id","agent","pipeline","kind":"aggregate","key":{<group_by fields>},
//    "window":{"start":ms,"end":ms},"values":{<one member per aggregate>}}
// with id "<pipeline>:<hash of key>:<window start>". A pipeline reading this
// one sees each aggregate as a record at the window's start time whose
// fields are the key fields followed by the values.
//
// A key's state is released as soon as it has no open window.
#ifndef SLUICE_OPERATORS_WINDOW_H_
#define SLUICE_OPERATORS_WINDOW_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "operators/aggregate.h"
#include "operators/operator.h"

namespace sluice::operators {

enum class WindowKind { kTumbling, kHopping, kSession };

struct WindowSpec {
  WindowKind kind = WindowKind::kTumbling;
  int64_t size_ms = 0;   // tumbling, hopping
  int64_t step_ms = 0;   // hopping (0 < step <= size)
  int64_t gap_ms = 0;    // session
  int64_t lateness_ms = 0;
  int64_t idle_ms = 0;   // processing-time idle advance; 0: off
  std::vector<std::string> group_by;
  Aggregator aggregator;
};

// kInvalidArgument for sizes, steps or gaps that are not positive.
StatusOr<std::unique_ptr<Operator>> NewWindow(OutputContext context, WindowSpec spec);

}  // namespace sluice::operators

#endif  // SLUICE_OPERATORS_WINDOW_H_

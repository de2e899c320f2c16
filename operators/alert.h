// Alert rules: per key, ok -> pending -> firing -> resolved, in event time.
//
//   AlertSpec spec{when, clear, /*for_ms=*/10000, /*renotify_ms=*/600000, "critical",
//                  {"device"}, {{"team", "cold-chain"}}};
//   auto op = NewAlert({"gw-1", "overheat"}, std::move(spec));
//
// For each record, the key is the values of `key` fields (a missing one is
// null). `when` true starts `pending` at the record's event time; if `when`
// is still true on a record at least `for_ms` later, the alert fires (with
// for_ms = 0, on the first such record). While pending, `when` false returns
// to ok with no output. While firing, the alert resolves on the first record
// where `clear` is true (default: `when` is false) — hysteresis. While it
// fires, a record at least `renotify_ms` after the last notification repeats
// the firing record. Event time never runs backwards for a key: an older
// record counts as happening at the latest time seen (a forgotten ok key
// starts afresh).
//
// A record on which the condition evaluates to kMissing or kTypeError (the
// field is absent or mistyped) says nothing about it: it is counted in
// Stats().unmatched and changes nothing, in any state. It does not start or
// cancel pending, does not resolve (without `clear`, only `when` evaluating
// to false resolves), and does not trigger a repeat; it does advance the
// key's time.
//
// Alerts act on records only: `for` completes, and a repeat goes out, on the
// next record of the key; watermarks and ticks do nothing. A for_ms below 0
// counts as 0; a renotify_ms of 0 or less turns repeats off.
//
// Each transition to firing, each repeat and each resolution is one output
// record (DESIGN.md, alert kind):
//   {"id","agent","pipeline","kind":"alert","key":{...},"state":"firing"|"resolved",
//    "severity","value":{<the fields of the record that caused it>},"at":<event ms>,
//    "since":<event ms when it began firing>, "labels":{...} (only if configured)}
// `at` is the (never-backwards) event time of the record that caused the
// output; `since` is that of the record that made it fire, the same on its
// repeats and on its resolution. "key" lists the key fields in `key` order;
// its JSON text is also the Envelope's ordering key.
// The id is "<pipeline>:<HashHex(key JSON)>:<since>:<firing|renotify-N|resolved>",
// the same after a restart from a snapshot. The output's Record (for
// pipelines reading this one) holds the key fields plus "state", "severity",
// "at" and "since".
//
// Keys in state ok are forgotten; only pending and firing keys take memory.
// Snapshot() is a checksummed binary encoding of every pending and firing key;
// Restore() refuses anything else (including "") with kDataLoss and leaves
// the operator empty. Stats counters are not part of it.
#ifndef SLUICE_OPERATORS_ALERT_H_
#define SLUICE_OPERATORS_ALERT_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "operators/expression.h"
#include "operators/operator.h"

namespace sluice::operators {

struct AlertSpec {
  Expression when;
  std::optional<Expression> clear;  // default: not `when`
  int64_t for_ms = 0;
  std::optional<int64_t> renotify_ms;
  std::string severity = "warning";
  std::vector<std::string> key;
  std::map<std::string, std::string> labels;
};

std::unique_ptr<Operator> NewAlert(OutputContext context, AlertSpec spec);

}  // namespace sluice::operators

#endif  // SLUICE_OPERATORS_ALERT_H_

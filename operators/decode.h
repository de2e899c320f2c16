// Decoding an MQTT payload into a Record.
//
//   JsonDecoder decoder(options);
//   Record r;
//   Status s = decoder.Decode(topic, payload, arrival_ms, &r);
//   if (!s.ok()) DeadLetter(s.message());   // kInvalidArgument, a reason in words
//
// Only projected fields are kept (Projection): a reading passes through the
// agent without building fields nobody reads.
#ifndef SLUICE_OPERATORS_DECODE_H_
#define SLUICE_OPERATORS_DECODE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "operators/record.h"
#include "operators/topic_pattern.h"
#include "platform/status.h"

namespace sluice::operators {

// Which payload fields to keep.
struct Projection {
  bool all = true;                 // keep every top-level field
  std::vector<std::string> names;  // when !all: only these
  // Dotted names read from inside objects: "sensor.temp" is the member
  // "temp" of the payload's object "sensor" (a top-level key spelt
  // "sensor.temp" is that field too). Whether or not `all`.
  std::vector<std::string> nested;

  bool Wants(std::string_view name) const;
  bool WantsNested(std::string_view path) const;
  // Some nested name lies inside `path` (an object's dotted path).
  bool NestedUnder(std::string_view path) const;
  static Projection All() { return {}; }
  static Projection Only(std::vector<std::string> names) { return {false, std::move(names), {}}; }
};

enum class TimeUnit { kSeconds, kMillis, kMicros, kNanos, kRfc3339 };

struct DecodeOptions {
  std::optional<std::string> time_field;  // absent: event time = arrival time
  TimeUnit time_unit = TimeUnit::kMillis;
  // An event time more than this ahead of the arrival is refused; 0: any.
  int64_t max_ahead_ms = 0;
  std::optional<TopicPattern> topic_fields;
  Projection projection;
};

class JsonDecoder {
 public:
  explicit JsonDecoder(DecodeOptions options) : options_(std::move(options)) {}

  // Fills *out (cleared first). kInvalidArgument with the reason when the
  // payload is not a JSON object (or nests deeper than 64 levels), lacks a
  // usable time field, or the topic does not fit topic_fields. Never throws;
  // does not allocate for fields outside the projection.
  Status Decode(std::string_view topic, std::string_view payload, int64_t arrival_ms,
                Record* out) const;

 private:
  DecodeOptions options_;
};

// Epoch ms from "2026-11-26T03:16:27.123Z" / "+01:00" offsets; nullopt if malformed.
std::optional<int64_t> ParseRfc3339Millis(std::string_view text);

}  // namespace sluice::operators

#endif  // SLUICE_OPERATORS_DECODE_H_

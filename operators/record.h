// Record: one decoded sensor reading, the unit every operator works on.
//
// It holds only the fields some pipeline reads (the decoder's Projection),
// topic captures first, then payload fields by name. Field lookup is a linear scan:
// readings carry a handful of fields, and a scan of short strings beats a
// hash map that would allocate per record.
#ifndef SLUICE_OPERATORS_RECORD_H_
#define SLUICE_OPERATORS_RECORD_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace sluice::operators {

// A nested object or array, kept as its JSON text.
struct RawJson {
  std::string text;
  friend bool operator==(const RawJson&, const RawJson&) = default;
};

// null, true/false, an integer, a float, a string, or nested JSON.
using Value = std::variant<std::monostate, bool, int64_t, double, std::string, RawJson>;

// The value as a number, if it is one (integers widen to double).
std::optional<double> AsNumber(const Value& v);

struct Field {
  std::string name;
  Value value;
  // Taken out of a nested object ("sensor.temp" of {"sensor":{"temp":…}}):
  // the object itself is the payload's field, so a reading passed through
  // as it came does not show this copy.
  bool nested = false;
  friend bool operator==(const Field&, const Field&) = default;
};

struct Record {
  std::string topic;
  int64_t event_time_ms = 0;  // from the payload, or the arrival time
  int64_t arrival_ms = 0;     // wall clock when the agent received it
  std::vector<Field> fields;

  // The first field called `name`, or null.
  const Value* Find(std::string_view name) const;
};

// Appends `v` as JSON text.
void AppendValueJson(std::string& out, const Value& v);

// Snapshot encoding of values and field lists (operators/codec.h format).
// Decoders return false on malformed input.
void EncodeValue(std::string& out, const Value& v);
bool DecodeValue(std::string_view& in, Value* v);
void EncodeFields(std::string& out, const std::vector<Field>& fields);
bool DecodeFields(std::string_view& in, std::vector<Field>* fields);

}  // namespace sluice::operators

#endif  // SLUICE_OPERATORS_RECORD_H_

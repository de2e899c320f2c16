// TopicPattern: turns MQTT topic levels into record fields.
//
//   auto p = TopicPattern::Parse("sensors/{site}/{device}");
//   p->Match("sensors/north/dev-7", &fields);  // site=north, device=dev-7
//
// A level is a literal (must match), `{name}` (captured), `+` (any, not
// captured), or a final `#` (any number of remaining levels).
#ifndef SLUICE_OPERATORS_TOPIC_PATTERN_H_
#define SLUICE_OPERATORS_TOPIC_PATTERN_H_

#include <string>
#include <string_view>
#include <vector>

#include "operators/record.h"
#include "platform/status.h"

namespace sluice::operators {

class TopicPattern {
 public:
  static StatusOr<TopicPattern> Parse(std::string_view pattern);

  // Appends the captures to *fields when `topic` matches; false otherwise
  // (*fields untouched).
  bool Match(std::string_view topic, std::vector<Field>* fields) const;

  const std::string& text() const { return text_; }
  std::vector<std::string> CaptureNames() const;

 private:
  enum class Kind { kLiteral, kCapture, kAnyLevel, kRest };
  struct Level {
    Kind kind;
    std::string text;  // literal text or capture name
  };
  std::string text_;
  std::vector<Level> levels_;
};

// MQTT subscription matching: does `topic` match `filter` ('+' one level,
// a final '#' any number of levels, including none)?
bool TopicMatchesFilter(std::string_view filter, std::string_view topic);

}  // namespace sluice::operators

#endif  // SLUICE_OPERATORS_TOPIC_PATTERN_H_

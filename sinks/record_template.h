// RecordTemplate: a topic or key such as "telemetry.{site}" filled from a record.
//
//   auto t = RecordTemplate::Parse("plant/{site}/{device}");
//   StatusOr<std::string> topic = t->Render(envelope.body);
//
// A placeholder names a field of the record's JSON body, looked up where the
// record shapes keep it: the top level (id, agent, pipeline, kind, state,
// severity), then `key` (aggregates, alerts), then `fields` (readings), then
// `value` (alerts). A dotted name ({key.site}) is a path from the top. Strings
// are inserted unquoted, numbers and booleans as written.
#ifndef SLUICE_SINKS_RECORD_TEMPLATE_H_
#define SLUICE_SINKS_RECORD_TEMPLATE_H_

#include <string>
#include <string_view>
#include <vector>

#include "platform/status.h"

namespace sluice::sinks {

class RecordTemplate {
 public:
  // kInvalidArgument for an unbalanced brace or an empty placeholder (the
  // config loader has refused those already; this guards other callers).
  static StatusOr<RecordTemplate> Parse(std::string_view text);

  // kInvalidArgument naming the placeholder when the record lacks the field
  // or holds an object, array or null there: a record that cannot be routed
  // is dead-lettered, never sent somewhere unintended.
  StatusOr<std::string> Render(std::string_view json_body) const;

  bool has_placeholders() const { return parts_.size() > 1 || (!parts_.empty() && parts_[0].field); }
  const std::string& text() const { return text_; }

 private:
  struct Part {
    bool field = false;
    std::string text;  // literal text, or the field name
  };
  std::string text_;
  std::vector<Part> parts_;
};

}  // namespace sluice::sinks

#endif  // SLUICE_SINKS_RECORD_TEMPLATE_H_

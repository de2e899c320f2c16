#include "operators/output.h"

#include <cstdio>

#include "platform/fnv1a.h"
#include "platform/json_text.h"

namespace sluice::operators {

std::string HashHex(std::string_view bytes) {
  const uint64_t h = Fnv1a(bytes);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

Envelope MakeReadingEnvelope(const OutputContext& context, const Record& record) {
  std::string fields;
  fields.reserve(32 * record.fields.size() + 2);
  fields += '{';
  bool first = true;
  for (const Field& f : record.fields) {
    if (f.nested) continue;  // its object is there, as it came
    if (!first) fields += ',';
    first = false;
    AppendJsonString(fields, f.name);
    fields += ':';
    AppendValueJson(fields, f.value);
  }
  fields += '}';

  std::string time = std::to_string(record.event_time_ms);
  std::string identity;
  identity.reserve(record.topic.size() + time.size() + fields.size() + 2);
  identity.append(record.topic).append(1, '\0').append(time).append(1, '\0').append(fields);

  Envelope e;
  e.id = context.pipeline + ":" + HashHex(identity);
  e.key = record.topic;
  std::string& b = e.body;
  b.reserve(fields.size() + record.topic.size() + e.id.size() + context.agent_id.size() +
            context.pipeline.size() + 96);
  b += "{\"id\":";
  AppendJsonString(b, e.id);
  b += ",\"agent\":";
  AppendJsonString(b, context.agent_id);
  b += ",\"pipeline\":";
  AppendJsonString(b, context.pipeline);
  b += ",\"kind\":\"reading\",\"topic\":";
  AppendJsonString(b, record.topic);
  b += ",\"time\":";
  b += time;
  b += ",\"fields\":";
  b += fields;
  b += '}';
  return e;
}

}  // namespace sluice::operators

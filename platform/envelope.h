// Envelope: one output record on its way to a sink, already serialized.
//
// Operators build the JSON body once; the outbox stores it and every sink
// sends it as is (a line for file/stdout, an array element for HTTP, a
// message for Kafka), so no record is formatted twice.
#ifndef SLUICE_PLATFORM_ENVELOPE_H_
#define SLUICE_PLATFORM_ENVELOPE_H_

#include <string>

namespace sluice {

struct Envelope {
  std::string id;    // stable record id: receivers drop duplicates by it
  std::string key;   // ordering key (the group-by key or the topic); may be empty
  std::string body;  // the record as one JSON object, no trailing newline
};

}  // namespace sluice

#endif  // SLUICE_PLATFORM_ENVELOPE_H_

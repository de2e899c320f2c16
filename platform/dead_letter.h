// Dead letters: input the agent could not use, kept with the reason.
//
// Nothing accepted is thrown away: a payload that does not decode, a record a
// sink refused for good, a reading too late for its window all end here, so
// an operator can see what went wrong and replay it. The agent keeps them
// in its store (Store::dead_letters(), a table of sluice.db); `sluice buffer
// peek --dead-letters` prints them with DeadLetterJson.
//
//   DeadLetter letter{now_ms, "source", "plant", topic, "payload is not valid JSON", payload};
//   RETURN_IF_ERROR(store.dead_letters().Put(letter));
//   std::cout << DeadLetterJson(letter) << "\n";
#ifndef SLUICE_PLATFORM_DEAD_LETTER_H_
#define SLUICE_PLATFORM_DEAD_LETTER_H_

#include <cstdint>
#include <string>

#include "platform/status.h"

namespace sluice {

struct DeadLetter {
  int64_t time_ms = 0;   // when it was dead-lettered (epoch ms)
  std::string origin;    // "source", "pipeline" or "sink"
  std::string name;      // the source, pipeline or sink's name
  std::string topic;     // MQTT topic, when there is one
  std::string reason;    // why, in words
  std::string payload;   // the bytes as received (any bytes)
};

// Safe for concurrent use.
class DeadLetterStore {
 public:
  virtual ~DeadLetterStore() = default;
  [[nodiscard]] virtual Status Put(const DeadLetter& letter) = 0;
};

// One JSON object on one line (no newline): {"time":..,"origin":..,
// "source"|"pipeline"|"sink":<name>,"topic":..,"reason":..,"payload":".."}.
// "topic" is left out when empty. A payload that is not UTF-8 is written
// base64-encoded with "payload_encoding":"base64" (a topic that is not UTF-8
// is written base64-encoded too).
std::string DeadLetterJson(const DeadLetter& letter);

}  // namespace sluice

#endif  // SLUICE_PLATFORM_DEAD_LETTER_H_

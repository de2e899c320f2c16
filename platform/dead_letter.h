// Dead letters: input the agent could not use, kept with the reason.
//
// Nothing accepted is thrown away: a payload that does not decode, a record a
// sink refused for good, a reading too late for its window all end here, so
// an operator can see what went wrong and replay it.
#ifndef SLUICE_PLATFORM_DEAD_LETTER_H_
#define SLUICE_PLATFORM_DEAD_LETTER_H_

#include <cstdint>
#include <memory>
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

// A JSON-lines file: {"time":..,"origin":..,"source"|"pipeline"|"sink":..,
// "topic":..,"reason":..,"payload":".."} — a payload that is not UTF-8 is
// written base64-encoded with "payload_encoding":"base64". Creates the file.
StatusOr<std::unique_ptr<DeadLetterStore>> OpenDeadLetterFile(const std::string& path);

}  // namespace sluice

#endif  // SLUICE_PLATFORM_DEAD_LETTER_H_

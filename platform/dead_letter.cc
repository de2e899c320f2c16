#include "platform/dead_letter.h"

#include "platform/json_text.h"

namespace sluice {

std::string DeadLetterJson(const DeadLetter& letter) {
  std::string line;
  line.reserve(letter.payload.size() + letter.reason.size() + 128);
  line += "{\"time\":";
  line += std::to_string(letter.time_ms);
  line += ",\"origin\":";
  AppendJsonString(line, IsValidUtf8(letter.origin) ? letter.origin : Base64Encode(letter.origin));
  // The name's key is the origin ("source", "pipeline", "sink"); "name" if
  // the origin read back is not UTF-8 (a damaged row), so the line stays JSON.
  line += ',';
  AppendJsonString(line, IsValidUtf8(letter.origin) ? letter.origin : "name");
  line += ':';
  AppendJsonString(line, IsValidUtf8(letter.name) ? letter.name : Base64Encode(letter.name));
  if (!letter.topic.empty()) {
    line += ",\"topic\":";
    AppendJsonString(line, IsValidUtf8(letter.topic) ? letter.topic : Base64Encode(letter.topic));
  }
  line += ",\"reason\":";
  AppendJsonString(line, IsValidUtf8(letter.reason) ? letter.reason : Base64Encode(letter.reason));
  line += ",\"payload\":";
  if (IsValidUtf8(letter.payload)) {
    AppendJsonString(line, letter.payload);
  } else {
    AppendJsonString(line, Base64Encode(letter.payload));
    line += ",\"payload_encoding\":\"base64\"";
  }
  line += '}';
  return line;
}

}  // namespace sluice

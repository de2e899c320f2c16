// The output record format (DESIGN.md, "Output records"): the public
// interface every sink carries. Change it only with a version note.
#ifndef SLUICE_OPERATORS_OUTPUT_H_
#define SLUICE_OPERATORS_OUTPUT_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "operators/operator.h"
#include "operators/record.h"
#include "platform/envelope.h"

namespace sluice::operators {

// {"id","agent","pipeline","kind":"reading","topic","time","fields":{...}}.
// The id is derived from the content (pipeline, topic, time, fields), so a
// reading the broker redelivers after a crash keeps its id and a receiver can
// drop the duplicate.
Envelope MakeReadingEnvelope(const OutputContext& context, const Record& record);

// 64-bit FNV-1a, as 16 lowercase hex digits: short, stable across platforms.
std::string HashHex(std::string_view bytes);

}  // namespace sluice::operators

#endif  // SLUICE_OPERATORS_OUTPUT_H_

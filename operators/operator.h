// Operator: one stage of a pipeline, pure logic.
//
// Operators never touch a socket, a file or the system clock: time reaches
// them only as record timestamps and watermarks, so a test drives them
// exactly. Outputs leave through an Emitter as finished Envelopes.
//
// Not thread-safe: one pipeline worker calls an operator at a time.
#ifndef SLUICE_OPERATORS_OPERATOR_H_
#define SLUICE_OPERATORS_OPERATOR_H_

#include <cstdint>
#include <memory>
#include <string>

#include "operators/record.h"
#include "platform/envelope.h"
#include "platform/status.h"

namespace sluice::operators {

class Emitter {
 public:
  virtual ~Emitter() = default;
  virtual void Emit(Envelope envelope) = 0;
};

class Operator {
 public:
  virtual ~Operator() = default;
  [[nodiscard]] virtual Status OnRecord(const Record& record, Emitter& out) = 0;
  // Event time has reached `watermark_ms`: emit everything that closes at or before it.
  [[nodiscard]] virtual Status OnWatermark(int64_t watermark_ms, Emitter& out) = 0;
};

// Who is emitting: stamped on every output record.
struct OutputContext {
  std::string agent_id;
  std::string pipeline;
};

// Emits every record as a `reading` output record (DESIGN.md, "Output records").
std::unique_ptr<Operator> NewPassthrough(OutputContext context);

}  // namespace sluice::operators

#endif  // SLUICE_OPERATORS_OPERATOR_H_

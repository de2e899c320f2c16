#include "operators/operator.h"
#include "operators/output.h"

namespace sluice::operators {
namespace {

class Passthrough final : public Operator {
 public:
  explicit Passthrough(OutputContext context) : context_(std::move(context)) {}

  Status OnRecord(const Record& record, Emitter& out) override {
    out.Emit(MakeReadingEnvelope(context_, record), record);
    return Status::Ok();
  }

  Status OnWatermark(int64_t, Emitter&) override { return Status::Ok(); }

  // Stateless.
  std::string Snapshot() const override { return {}; }
  Status Restore(std::string_view) override { return Status::Ok(); }

 private:
  const OutputContext context_;
};

}  // namespace

std::unique_ptr<Operator> NewPassthrough(OutputContext context) {
  return std::make_unique<Passthrough>(std::move(context));
}

}  // namespace sluice::operators

// Filter: the `where` clause of a pipeline, in front of its next operator.
#include <cassert>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "operators/expression.h"
#include "operators/operator.h"

namespace sluice::operators {
namespace {

class Filter final : public Operator {
 public:
  Filter(Expression where, std::unique_ptr<Operator> next)
      : where_(std::move(where)), next_(std::move(next)) {
    assert(next_ != nullptr);
  }

  Status OnRecord(const Record& record, Emitter& out) override {
    switch (where_.Evaluate(record)) {
      case Truth::kTrue:
        return next_->OnRecord(record, out);
      case Truth::kFalse:
        ++filtered_;
        break;
      case Truth::kMissing:
      case Truth::kTypeError:
        // Dropped like a false record, and also counted apart: a rising
        // `unmatched` means the `where` reads fields the records lack or
        // mistypes them, not that it is doing its job.
        ++filtered_;
        ++unmatched_;
        break;
    }
    return Status::Ok();
  }

  Status OnWatermark(int64_t watermark_ms, Emitter& out) override {
    return next_->OnWatermark(watermark_ms, out);
  }
  Status OnTick(int64_t now_ms, Emitter& out) override { return next_->OnTick(now_ms, out); }

  // The counters are metrics, not state: a restart starts them from zero,
  // and the snapshot is exactly next's, so adding or removing a `where`
  // keeps old snapshots readable.
  std::string Snapshot() const override { return next_->Snapshot(); }
  Status Restore(std::string_view snapshot) override { return next_->Restore(snapshot); }

  OperatorStats Stats() const override {
    OperatorStats stats = next_->Stats();
    stats.filtered += filtered_;
    stats.unmatched += unmatched_;
    return stats;
  }

 private:
  const Expression where_;
  const std::unique_ptr<Operator> next_;
  uint64_t filtered_ = 0;   // every record not passed on
  uint64_t unmatched_ = 0;  // of those, the ones with a missing or mistyped field
};

}  // namespace

std::unique_ptr<Operator> NewFilter(Expression where, std::unique_ptr<Operator> next) {
  return std::make_unique<Filter>(std::move(where), std::move(next));
}

}  // namespace sluice::operators

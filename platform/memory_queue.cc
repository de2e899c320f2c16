#include <condition_variable>
#include <deque>
#include <mutex>

#include "platform/outbox.h"

namespace sluice {
namespace {

class MemoryQueue final : public SinkQueue {
 public:
  MemoryQueue(size_t max_records, const Clock& clock) : max_records_(max_records), clock_(clock) {}

  Status Append(std::vector<Envelope> batch) override {
    std::unique_lock<std::mutex> lock(mu_);
    for (Envelope& e : batch) {
      not_full_.wait(lock, [&] { return closed_ || queue_.size() < max_records_; });
      if (closed_) return Status::Cancelled("queue closed");
      queue_.push_back(QueuedEnvelope{next_seq_++, std::move(e)});
      not_empty_.notify_one();
    }
    return Status::Ok();
  }

  StatusOr<std::vector<QueuedEnvelope>> Peek(size_t max, Millis wait) override {
    std::unique_lock<std::mutex> lock(mu_);
    SteadyTime deadline = clock_.Now() + wait;
    while (queue_.empty() && !closed_) {
      if (!clock_.WaitUntil(lock, not_empty_, deadline) && clock_.Now() >= deadline) break;
    }
    std::vector<QueuedEnvelope> out;
    size_t n = std::min(max, queue_.size());
    out.reserve(n);
    for (size_t i = 0; i < n; ++i) out.push_back(queue_[i]);
    return out;
  }

  Status Remove(uint64_t through_seq) override {
    std::lock_guard<std::mutex> lock(mu_);
    while (!queue_.empty() && queue_.front().seq <= through_seq) queue_.pop_front();
    not_full_.notify_all();
    return Status::Ok();
  }

  void Close() override {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    not_full_.notify_all();
    not_empty_.notify_all();
  }

  size_t size() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return queue_.size();
  }

 private:
  const size_t max_records_;
  const Clock& clock_;
  mutable std::mutex mu_;
  std::condition_variable not_full_;
  std::condition_variable not_empty_;
  std::deque<QueuedEnvelope> queue_;
  uint64_t next_seq_ = 1;
  bool closed_ = false;
};

}  // namespace

std::unique_ptr<SinkQueue> NewMemoryQueue(size_t max_records, const Clock& clock) {
  return std::make_unique<MemoryQueue>(max_records, clock);
}

}  // namespace sluice

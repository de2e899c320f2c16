#include "sinks/delivery.h"

#include <algorithm>

#include "platform/log.h"

namespace sluice::sinks {

DeliveryLoop::DeliveryLoop(std::string sink_name, Sink& sink, SinkQueue& queue,
                           DeadLetterStore& dead_letters, const Clock& clock,
                           DeliveryOptions options)
    : name_(std::move(sink_name)),
      sink_(sink),
      queue_(queue),
      dead_letters_(dead_letters),
      clock_(clock),
      options_(options),
      limits_(sink.batch_limits()),
      jitter_state_(0x9E3779B97F4A7C15ull ^ std::hash<std::string>{}(name_)) {}

void DeliveryLoop::Stop(SteadyTime drain_deadline) {
  std::lock_guard<std::mutex> lock(mu_);
  stop_ = true;
  drain_deadline_ = drain_deadline;
  wake_.notify_all();
}

bool DeliveryLoop::StopRequested() {
  std::lock_guard<std::mutex> lock(mu_);
  return stop_;
}

bool DeliveryLoop::Backoff(Millis delay) {
  std::unique_lock<std::mutex> lock(mu_);
  SteadyTime until = clock_.Now() + delay;
  while (clock_.Now() < until) {
    if (stop_ && clock_.Now() >= drain_deadline_) return false;
    SteadyTime wake_at = stop_ ? std::min(until, drain_deadline_) : until;
    clock_.WaitUntil(lock, wake_, wake_at);
  }
  return !(stop_ && clock_.Now() >= drain_deadline_);
}

void DeliveryLoop::Linger(Millis delay, size_t records) {
  // Polls the queue's size in small steps: the queue has no "N records"
  // signal, and a size() is an in-memory read.
  const Millis step = std::clamp(delay / 8, Millis(1), Millis(20));
  std::unique_lock<std::mutex> lock(mu_);
  SteadyTime until = clock_.Now() + delay;
  while (!stop_ && clock_.Now() < until && queue_.size() < records) {
    clock_.WaitUntil(lock, wake_, std::min(until, clock_.Now() + step));
  }
}

void DeliveryLoop::TrimToBytes(std::vector<QueuedEnvelope>& batch) const {
  if (limits_.max_bytes == 0) return;
  uint64_t bytes = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    bytes += batch[i].envelope.body.size() + 1;  // a separator per record
    if (bytes > limits_.max_bytes && i > 0) {
      batch.resize(i);
      return;
    }
  }
}

SinkHealth DeliveryLoop::health() const {
  std::lock_guard<std::mutex> lock(health_mu_);
  SinkHealth h = health_;
  h.connected = sink_.connected();
  return h;
}

void DeliveryLoop::NoteSuccess() {
  std::lock_guard<std::mutex> lock(health_mu_);
  health_.last_success_ms = ToEpochMillis(clock_.WallNow());
  health_.failing = false;
  health_.refusing = false;
}

void DeliveryLoop::NoteFailure(const Status& status) {
  std::lock_guard<std::mutex> lock(health_mu_);
  health_.last_error_ms = ToEpochMillis(clock_.WallNow());
  health_.last_error = status.ToString();
  health_.failing = IsTransient(status);
  health_.refusing = !health_.failing;
}

Millis DeliveryLoop::NextDelay() {
  backoff_ = backoff_.count() == 0 ? options_.initial_backoff
                                   : std::min(options_.max_backoff, backoff_ * 2);
  // Full jitter on the upper half: gateways that lost the same uplink do
  // not all come back in the same millisecond.
  jitter_state_ ^= jitter_state_ << 13;
  jitter_state_ ^= jitter_state_ >> 7;
  jitter_state_ ^= jitter_state_ << 17;
  int64_t half = backoff_.count() / 2;
  int64_t jitter = half > 0 ? static_cast<int64_t>(jitter_state_ % static_cast<uint64_t>(half + 1)) : 0;
  return Millis(half + jitter);
}

Status DeliveryLoop::DeadLetterBatch(std::span<const QueuedEnvelope> batch, size_t index,
                                     const Status& reason) {
  const Envelope& e = batch[index].envelope;
  DeadLetter letter;
  letter.time_ms = ToEpochMillis(clock_.WallNow());
  letter.origin = "sink";
  letter.name = name_;
  letter.reason = reason.ToString();
  letter.payload = e.body;
  RETURN_IF_ERROR(dead_letters_.Put(letter));
  counters_.dead_lettered.fetch_add(1, std::memory_order_relaxed);
  return Status::Ok();
}

void DeliveryLoop::Run() {
  const size_t max_batch = std::max<size_t>(1, limits_.max_records);
  // A batch that failed for a transient reason is retried as it was (less
  // what an overflow policy dropped meanwhile), so an upstream that keys
  // duplicates by batch (HTTP's Idempotency-Key) sees the same batch again,
  // not a longer one.
  std::vector<QueuedEnvelope> batch;
  while (true) {
    if (StopRequested()) {
      std::lock_guard<std::mutex> lock(mu_);
      if (clock_.Now() >= drain_deadline_) break;
    }
    if (batch.empty()) {
      auto peeked = queue_.Peek(max_batch, options_.idle_poll);
      if (!peeked.ok()) {
        LogError("sink '", name_, "': reading its queue failed: ", peeked.status().ToString());
        if (!Backoff(NextDelay())) break;
        continue;
      }
      if (peeked->empty()) {
        if (StopRequested()) break;
        sink_.Idle();
        continue;
      }
      if (peeked->size() < max_batch && limits_.max_delay.count() > 0 && !StopRequested()) {
        Linger(limits_.max_delay, max_batch);
        peeked = queue_.Peek(max_batch, Millis(0));
        if (!peeked.ok()) continue;
      }
      batch = std::move(*peeked);
      TrimToBytes(batch);
    } else {
      // Retrying: drop_oldest may have evicted the head of the batch meanwhile.
      // Only the records still queued are sent, and no newer ones.
      auto peeked = queue_.Peek(batch.size(), Millis(0));
      if (!peeked.ok()) {
        if (!Backoff(NextDelay())) break;
        continue;
      }
      const uint64_t last = batch.back().seq;
      batch.clear();
      for (QueuedEnvelope& q : *peeked) {
        if (q.seq <= last) batch.push_back(std::move(q));
      }
      if (batch.empty()) continue;
    }
    std::vector<Envelope> envelopes;
    envelopes.reserve(batch.size());
    for (const QueuedEnvelope& q : batch) envelopes.push_back(q.envelope);

    WriteResult result = sink_.Write(envelopes);
    if (IsTransient(result.status)) {
      counters_.retried.fetch_add(1, std::memory_order_relaxed);
      NoteFailure(result.status);
      if (!failing_) {
        LogWarn("sink '", name_, "': delivery failing, will retry: ", result.status.ToString());
        failing_ = true;
      }
      // The upstream's Retry-After is a floor, never a reason to retry
      // sooner: "0" or a date the server thinks is past (its clock behind
      // ours) would otherwise become thousands of requests a second.
      Millis delay = NextDelay();
      if (result.retry_after) delay = std::max(delay, *result.retry_after);
      if (!Backoff(delay)) break;
      continue;
    }

    Status dead_letter_status;
    if (!result.status.ok()) {
      NoteFailure(result.status);
      LogError("sink '", name_, "': ", batch.size(), " records refused for good, dead-lettered: ",
               result.status.ToString());
      for (size_t i = 0; i < batch.size() && dead_letter_status.ok(); ++i) {
        dead_letter_status = DeadLetterBatch(batch, i, result.status);
      }
    } else {
      for (const Rejection& r : result.rejected) {
        if (!dead_letter_status.ok()) break;
        if (r.index < batch.size()) dead_letter_status = DeadLetterBatch(batch, r.index, r.reason);
      }
      if (!result.rejected.empty()) {
        LogWarn("sink '", name_, "': ", result.rejected.size(),
                " records refused for good, dead-lettered; first: ",
                result.rejected.front().reason.ToString());
      }
      counters_.delivered.fetch_add(batch.size() - result.rejected.size(),
                                    std::memory_order_relaxed);
      if (result.rejected.empty()) {
        NoteSuccess();
      } else {
        NoteFailure(result.rejected.front().reason);
      }
    }
    if (!dead_letter_status.ok()) {
      // Keep the batch queued rather than lose it: try the whole thing again.
      LogError("sink '", name_, "': cannot dead-letter refused records, keeping them queued: ",
               dead_letter_status.ToString());
      if (!Backoff(NextDelay())) break;
      continue;
    }
    uint64_t refused = batch.size();
    if (result.status.ok()) {  // the distinct records dead-lettered above
      std::vector<bool> seen(batch.size(), false);
      refused = 0;
      for (const Rejection& r : result.rejected) {
        if (r.index < batch.size() && !seen[r.index]) {
          seen[r.index] = true;
          ++refused;
        }
      }
    }
    if (Status s = queue_.Remove(batch.back().seq, refused); !s.ok()) {
      remove_log_.Log("sink '" + name_ + "': removing delivered records failed: " + s.ToString());
    }
    batch.clear();
    if (failing_) {
      LogInfo("sink '", name_, "': delivering again");
      failing_ = false;
    }
    backoff_ = Millis(0);
  }
  if (Status s = sink_.Flush(); !s.ok()) {
    LogError("sink '", name_, "': final flush failed: ", s.ToString());
  }
}

}  // namespace sluice::sinks

#include "agent/pipeline_runner.h"

#include "operators/output.h"
#include "platform/clock.h"
#include "platform/log.h"

namespace sluice::agent {

// One pipeline's Emitter: envelopes to the pipeline's sinks, records on to
// the pipelines that read this one, rejections to the dead-letter store.
class PipelineRunner::Router final : public operators::Emitter {
 public:
  Router(PipelineRunner& runner, PipelineRuntime& pipeline) : runner_(runner), p_(pipeline) {}

  void Emit(Envelope envelope, const operators::Record& record) override {
    p_.counters.records_out.fetch_add(1, std::memory_order_relaxed);
    auto& per_sink = runner_.commit_.outputs;
    const std::vector<int>& sinks = p_.sinks;
    for (size_t i = 0; i + 1 < sinks.size(); ++i) per_sink[sinks[i]].push_back(envelope);
    if (!sinks.empty()) per_sink[sinks.back()].push_back(std::move(envelope));
    for (int d : p_.downstream) runner_.Run(*runner_.pipelines_[d], record);
  }

  void Reject(const operators::Record& record, std::string_view reason) override {
    DeadLetter letter;
    letter.time_ms = ToEpochMillis(RealClock().WallNow());
    letter.origin = "pipeline";
    letter.name = p_.name;
    letter.topic = record.topic;
    letter.reason = std::string(reason);
    letter.payload = operators::MakeReadingEnvelope({"", p_.name}, record).body;
    if (Status s = runner_.dead_letters_.Put(letter); !s.ok()) {
      runner_.dead_letter_log_.Log("pipeline '" + p_.name +
                                   "': cannot write a dead letter: " + s.ToString());
    }
  }

 private:
  PipelineRunner& runner_;
  PipelineRuntime& p_;
};

PipelineRunner::PipelineRunner(std::vector<std::unique_ptr<PipelineRuntime>> pipelines,
                               Store& store, DeadLetterStore& dead_letters, const Clock& clock)
    : store_(store), dead_letters_(dead_letters), clock_(clock), pipelines_(std::move(pipelines)) {
  commit_.outputs.resize(store_.queue_count());
  for (size_t i = 0; i < pipelines_.size(); ++i) {
    int up = pipelines_[i]->upstream;
    if (up >= 0) pipelines_[up]->downstream.push_back(static_cast<int>(i));
  }
}

void PipelineRunner::Run(PipelineRuntime& p, const operators::Record& record) {
  p.counters.records_in.fetch_add(1, std::memory_order_relaxed);
  Router router(*this, p);
  Status s = p.op->OnRecord(record, router);
  if (!s.ok()) {
    p.counters.errors.fetch_add(1, std::memory_order_relaxed);
    error_log_.Log("pipeline '" + p.name + "': " + s.ToString());
  }
}

Status PipelineRunner::Process(int source, const operators::Record& record) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return Status::Cancelled("pipelines are stopping");
  for (const auto& p : pipelines_) {
    if (p->source == source) Run(*p, record);
  }
  return CommitOutputs();
}

Status PipelineRunner::Tick(int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return Status::Cancelled("pipelines are stopping");
  for (const auto& p : pipelines_) {
    Router router(*this, *p);
    if (Status s = p->op->OnTick(now_ms, router); !s.ok()) {
      error_log_.Log("pipeline '" + p->name + "': " + s.ToString());
    }
  }
  return CommitOutputs();
}

Status PipelineRunner::Flush() {
  std::lock_guard<std::mutex> lock(mu_);
  // Upstream first: a window's last aggregates must reach the pipelines
  // reading it before those close their own windows.
  std::vector<bool> flushed(pipelines_.size(), false);
  for (size_t done = 0; done < pipelines_.size();) {
    size_t before = done;
    for (size_t i = 0; i < pipelines_.size(); ++i) {
      PipelineRuntime& p = *pipelines_[i];
      if (flushed[i] || (p.upstream >= 0 && !flushed[p.upstream])) continue;
      Router router(*this, p);
      RETURN_IF_ERROR(p.op->OnWatermark(operators::kEndOfTime, router));
      flushed[i] = true;
      ++done;
    }
    if (done == before) return Status::Internal("pipelines read each other in a cycle");
  }
  return CommitOutputs();
}

Status PipelineRunner::CommitOutputs() {
  bool any = !commit_.journal.empty();
  for (const auto& out : commit_.outputs) any = any || !out.empty();
  if (!any) return Status::Ok();
  Millis backoff(50);
  while (true) {
    Status s = store_.Write(commit_);
    if (s.ok()) break;
    if (!IsTransient(s) || closing_.load()) {
      // Not retryable, or stopping: the reading is not acknowledged (the
      // caller holds the ack) and the broker sends it again.
      commit_log_.Log("cannot commit outputs: " + s.ToString());
      for (auto& out : commit_.outputs) out.clear();
      commit_.journal.clear();
      return s;
    }
    // Disk full or an I/O error: hold the reading (and the broker's ack)
    // and try again until there is room.
    commit_log_.Log("cannot commit outputs, holding intake and retrying: " + s.ToString());
    std::unique_lock<std::mutex> lock(retry_mu_);
    clock_.WaitUntil(lock, retry_wake_, clock_.Now() + backoff);
    backoff = std::min(Millis(5000), backoff * 2);
  }
  for (auto& out : commit_.outputs) out.clear();
  commit_.journal.clear();
  return Status::Ok();
}

void PipelineRunner::Close() {
  {
    std::lock_guard<std::mutex> lock(retry_mu_);
    closing_ = true;
    retry_wake_.notify_all();
  }
  std::lock_guard<std::mutex> lock(mu_);
  closed_ = true;
}

}  // namespace sluice::agent

#include "agent/pipeline_runner.h"

#include "platform/log.h"

namespace sluice::agent {
namespace {

// Routes one pipeline's outputs to the per-sink batches.
class RoutingEmitter final : public operators::Emitter {
 public:
  RoutingEmitter(std::vector<std::vector<Envelope>>& per_sink, const std::vector<int>& sinks)
      : per_sink_(per_sink), sinks_(sinks) {}
  size_t emitted() const { return emitted_; }

  void Reject(const operators::Record&, std::string_view) override {}

  void Emit(Envelope envelope, const operators::Record&) override {
    ++emitted_;
    for (size_t i = 0; i + 1 < sinks_.size(); ++i) per_sink_[sinks_[i]].push_back(envelope);
    if (!sinks_.empty()) per_sink_[sinks_.back()].push_back(std::move(envelope));
  }

 private:
  std::vector<std::vector<Envelope>>& per_sink_;
  const std::vector<int>& sinks_;
  size_t emitted_ = 0;
};

}  // namespace

PipelineRunner::PipelineRunner(std::vector<std::unique_ptr<PipelineRuntime>> pipelines,
                               std::vector<SinkQueue*> queues)
    : pipelines_(std::move(pipelines)), queues_(std::move(queues)), per_sink_(queues_.size()) {}

Status PipelineRunner::Process(int source, const operators::Record& record) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return Status::Cancelled("pipelines are stopping");
  for (const auto& p : pipelines_) {
    if (p->source != source) continue;
    p->counters.records_in.fetch_add(1, std::memory_order_relaxed);
    RoutingEmitter emitter(per_sink_, p->sinks);
    Status s = p->op->OnRecord(record, emitter);
    if (!s.ok()) {
      p->counters.errors.fetch_add(1, std::memory_order_relaxed);
      LogError("pipeline '", p->name, "': ", s.ToString());
    }
    p->counters.records_out.fetch_add(emitter.emitted(), std::memory_order_relaxed);
  }
  Status result;
  for (size_t i = 0; i < per_sink_.size(); ++i) {
    if (per_sink_[i].empty()) continue;
    // Blocks while the sink's queue is full: the backpressure path.
    Status s = queues_[i]->Append(std::move(per_sink_[i]));
    per_sink_[i].clear();
    if (!s.ok() && result.ok()) result = s;
  }
  return result;
}

void PipelineRunner::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  closed_ = true;
}

}  // namespace sluice::agent

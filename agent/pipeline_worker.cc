#include "agent/pipeline_worker.h"

#include "platform/log.h"

namespace sluice::agent {
namespace {

// Collects one batch's outputs per sink, so each sink queue takes one
// Append per batch instead of one per record.
class BatchEmitter final : public operators::Emitter {
 public:
  explicit BatchEmitter(std::vector<std::vector<Envelope>>& per_sink) : per_sink_(per_sink) {}
  void Route(const std::vector<int>* sinks) { sinks_ = sinks; }
  size_t emitted() const { return emitted_; }

  void Emit(Envelope envelope) override {
    ++emitted_;
    const std::vector<int>& sinks = *sinks_;
    for (size_t i = 0; i + 1 < sinks.size(); ++i) per_sink_[sinks[i]].push_back(envelope);
    if (!sinks.empty()) per_sink_[sinks.back()].push_back(std::move(envelope));
  }

 private:
  std::vector<std::vector<Envelope>>& per_sink_;
  const std::vector<int>* sinks_ = nullptr;
  size_t emitted_ = 0;
};

constexpr size_t kMaxBatch = 512;

}  // namespace

PipelineWorker::PipelineWorker(std::vector<std::unique_ptr<PipelineRuntime>> pipelines,
                               std::vector<SinkQueue*> queues, size_t capacity)
    : pipelines_(std::move(pipelines)), queues_(std::move(queues)), capacity_(capacity) {}

PipelineWorker::~PipelineWorker() { Close(); }

void PipelineWorker::Start() { thread_ = std::thread([this] { Run(); }); }

Status PipelineWorker::Submit(int source, operators::Record record, bool wait_done) {
  Ticket ticket;
  std::unique_lock<std::mutex> lock(mu_);
  not_full_.wait(lock, [&] { return closed_ || items_.size() < capacity_; });
  if (closed_) return Status::Cancelled("pipelines are stopping");
  items_.push_back(Item{source, std::move(record), wait_done ? &ticket : nullptr});
  not_empty_.notify_one();
  if (wait_done) done_.wait(lock, [&] { return ticket.done; });
  return Status::Ok();
}

void PipelineWorker::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    not_empty_.notify_all();
    not_full_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

void PipelineWorker::Run() {
  std::vector<Item> batch;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      not_empty_.wait(lock, [&] { return closed_ || !items_.empty(); });
      if (items_.empty()) return;  // closed and drained
      size_t n = std::min(kMaxBatch, items_.size());
      batch.clear();
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(items_.front()));
        items_.pop_front();
      }
      not_full_.notify_all();
    }
    Process(batch);
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (Item& item : batch) {
        if (item.ticket) item.ticket->done = true;
      }
      done_.notify_all();
    }
  }
}

void PipelineWorker::Process(std::vector<Item>& batch) {
  std::vector<std::vector<Envelope>> per_sink(queues_.size());
  BatchEmitter emitter(per_sink);
  for (const Item& item : batch) {
    for (const auto& p : pipelines_) {
      if (p->source != item.source) continue;
      p->counters.records_in.fetch_add(1, std::memory_order_relaxed);
      emitter.Route(&p->sinks);
      size_t before = emitter.emitted();
      Status s = p->op->OnRecord(item.record, emitter);
      if (!s.ok()) {
        p->counters.errors.fetch_add(1, std::memory_order_relaxed);
        LogError("pipeline '", p->name, "': ", s.ToString());
      }
      p->counters.records_out.fetch_add(emitter.emitted() - before, std::memory_order_relaxed);
    }
  }
  for (size_t i = 0; i < per_sink.size(); ++i) {
    if (per_sink[i].empty()) continue;
    // Blocks while the sink's queue is full: that is the backpressure path.
    Status s = queues_[i]->Append(std::move(per_sink[i]));
    if (!s.ok()) LogError("queue of sink #", i, ": ", s.ToString());
  }
}

}  // namespace sluice::agent

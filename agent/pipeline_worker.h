// PipelineWorker: the one thread that runs every pipeline.
//
// Sources hand readings over with Submit(); the worker runs each pipeline
// that reads from that source and appends the outputs to the sinks' queues.
// The hand-off is bounded: when the worker or a sink falls behind, Submit()
// blocks, and the MQTT callback that called it holds the broker's ack
// (backpressure, never a drop).
//
// Submit(..., wait_done=true) returns only once the worker has handed the
// reading's outputs to the sink queues. Today those queues live in memory;
// with the durable outbox the same wait covers the commit, which is what
// "acknowledge after commit" needs.
#ifndef SLUICE_AGENT_PIPELINE_WORKER_H_
#define SLUICE_AGENT_PIPELINE_WORKER_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "operators/operator.h"
#include "operators/record.h"
#include "platform/outbox.h"
#include "platform/status.h"

namespace sluice::agent {

struct PipelineCounters {
  std::atomic<uint64_t> records_in{0};
  std::atomic<uint64_t> records_out{0};
  std::atomic<uint64_t> errors{0};
};

// A pipeline as the worker runs it.
struct PipelineRuntime {
  std::string name;
  int source = -1;                      // index of the source it reads
  std::unique_ptr<operators::Operator> op;
  std::vector<int> sinks;               // indices into the worker's queues
  PipelineCounters counters;
};

class PipelineWorker {
 public:
  // `queues` are not owned and must outlive the worker.
  PipelineWorker(std::vector<std::unique_ptr<PipelineRuntime>> pipelines,
                 std::vector<SinkQueue*> queues, size_t capacity);
  ~PipelineWorker();

  void Start();

  // Thread-safe. Blocks while the hand-off is full. kCancelled after Close().
  Status Submit(int source, operators::Record record, bool wait_done);

  // Refuses new submissions, processes what was submitted, then stops.
  void Close();

  const std::vector<std::unique_ptr<PipelineRuntime>>& pipelines() const { return pipelines_; }

 private:
  struct Ticket {
    bool done = false;
  };
  struct Item {
    int source;
    operators::Record record;
    Ticket* ticket;  // null: nobody waits
  };

  void Run();
  void Process(std::vector<Item>& batch);

  std::vector<std::unique_ptr<PipelineRuntime>> pipelines_;
  std::vector<SinkQueue*> queues_;
  const size_t capacity_;

  std::mutex mu_;
  std::condition_variable not_full_;
  std::condition_variable not_empty_;
  std::condition_variable done_;
  std::deque<Item> items_;
  bool closed_ = false;
  std::thread thread_;
};

}  // namespace sluice::agent

#endif  // SLUICE_AGENT_PIPELINE_WORKER_H_

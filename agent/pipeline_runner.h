// PipelineRunner: runs every pipeline on the thread of the source that
// delivered the reading.
//
// Paho acknowledges a QoS 1/2 message when the message callback returns, and
// delivers the next one only then, so per-reading latency is the ingest
// ceiling: handing readings to another thread would add two context switches
// to every one of them. The callback therefore runs the pipelines itself,
// under one mutex (uncontended with a single source), and appends the
// outputs to the sinks' queues before it returns. When a sink's queue is
// full, Append blocks, the callback does not return, and the broker stops
// sending: backpressure, never a drop. With the durable outbox the same
// call commits before returning, which is what "acknowledge after commit"
// needs.
#ifndef SLUICE_AGENT_PIPELINE_RUNNER_H_
#define SLUICE_AGENT_PIPELINE_RUNNER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "operators/operator.h"
#include "operators/record.h"
#include "platform/envelope.h"
#include "platform/outbox.h"
#include "platform/status.h"

namespace sluice::agent {

struct PipelineCounters {
  std::atomic<uint64_t> records_in{0};
  std::atomic<uint64_t> records_out{0};
  std::atomic<uint64_t> errors{0};
};

// A pipeline as the runner runs it.
struct PipelineRuntime {
  std::string name;
  int source = -1;                      // index of the source it reads
  std::unique_ptr<operators::Operator> op;
  std::vector<int> sinks;               // indices into the runner's queues
  PipelineCounters counters;
};

class PipelineRunner {
 public:
  // `queues` are not owned and must outlive the runner.
  PipelineRunner(std::vector<std::unique_ptr<PipelineRuntime>> pipelines,
                 std::vector<SinkQueue*> queues);

  // Thread-safe. Runs the pipelines reading from `source` and queues their
  // outputs; blocks while a sink's queue is full. kCancelled after Close().
  Status Process(int source, const operators::Record& record);

  // Refuses further readings; waits for the one in progress.
  void Close();

  const std::vector<std::unique_ptr<PipelineRuntime>>& pipelines() const { return pipelines_; }

 private:
  std::mutex mu_;
  bool closed_ = false;
  std::vector<std::unique_ptr<PipelineRuntime>> pipelines_;
  std::vector<SinkQueue*> queues_;
  std::vector<std::vector<Envelope>> per_sink_;  // reused: no allocation per reading
};

}  // namespace sluice::agent

#endif  // SLUICE_AGENT_PIPELINE_RUNNER_H_

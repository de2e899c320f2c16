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
#include "platform/dead_letter.h"
#include "platform/envelope.h"
#include "platform/log.h"
#include "platform/outbox.h"
#include "platform/status.h"

namespace sluice::agent {

struct PipelineCounters {
  std::atomic<uint64_t> records_in{0};
  std::atomic<uint64_t> records_out{0};
  std::atomic<uint64_t> errors{0};
};

// A pipeline as the runner runs it. It reads either a source or another
// pipeline's outputs (chaining); config validation rules out cycles.
struct PipelineRuntime {
  std::string name;
  int source = -1;                      // index of the source it reads, or -1
  int upstream = -1;                    // index of the pipeline it reads, or -1
  std::unique_ptr<operators::Operator> op;
  std::vector<int> sinks;               // indices into the runner's queues
  PipelineCounters counters;
  std::vector<int> downstream;          // filled by the runner
};

class PipelineRunner {
 public:
  // `queues` and `dead_letters` are not owned and must outlive the runner.
  PipelineRunner(std::vector<std::unique_ptr<PipelineRuntime>> pipelines,
                 std::vector<SinkQueue*> queues, DeadLetterStore& dead_letters);

  // Thread-safe. Runs the pipelines reading from `source` (and those reading
  // their outputs) and queues the outputs; blocks while a sink's queue is
  // full. kCancelled after Close().
  Status Process(int source, const operators::Record& record);

  // Processing time is `now_ms`: lets idle windows close. Thread-safe.
  Status Tick(int64_t now_ms);

  // End of input (`sluice test`): closes every open window, upstream first.
  Status Flush();

  // Refuses further readings; waits for the one in progress.
  void Close();

  const std::vector<std::unique_ptr<PipelineRuntime>>& pipelines() const { return pipelines_; }

 private:
  class Router;
  // Runs `p` on one record; outputs collect in per_sink_.
  void Run(PipelineRuntime& p, const operators::Record& record);
  // Sends what the pipelines emitted to the sink queues.
  Status AppendOutputs();

  std::mutex mu_;
  bool closed_ = false;
  DeadLetterStore& dead_letters_;
  std::vector<std::unique_ptr<PipelineRuntime>> pipelines_;
  std::vector<SinkQueue*> queues_;
  std::vector<std::vector<Envelope>> per_sink_;  // reused: no allocation per reading
  RateLimitedLog error_log_{LogLevel::kError, Millis(60000)};
  RateLimitedLog dead_letter_log_{LogLevel::kError, Millis(60000)};
};

}  // namespace sluice::agent

#endif  // SLUICE_AGENT_PIPELINE_RUNNER_H_

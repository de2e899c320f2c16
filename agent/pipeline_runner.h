// PipelineRunner: runs every pipeline on the thread of the source that
// delivered the reading, and commits the outputs before it returns.
//
// Paho acknowledges a QoS 1/2 message when the message callback returns, and
// delivers the next one only then, so per-reading latency is the ingest
// ceiling: handing readings to another thread would add two context switches
// to every one of them. The callback therefore runs the pipelines itself,
// under one mutex (uncontended with a single source), and writes the outputs
// to the store's outbox in one committed transaction before it returns:
// acknowledge after commit. When the commit cannot happen (disk full, I/O
// error) it retries until it can, holding the ack; at a sink's cap the
// store applies the sink's overflow policy (with `block`, the write waits and
// the broker stops sending: backpressure).
#ifndef SLUICE_AGENT_PIPELINE_RUNNER_H_
#define SLUICE_AGENT_PIPELINE_RUNNER_H_

#include <atomic>
#include <condition_variable>
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
#include "platform/store.h"
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
  // `store` and `dead_letters` are not owned and must outlive the runner; a
  // pipeline's `sinks` are the store's queue indices.
  PipelineRunner(std::vector<std::unique_ptr<PipelineRuntime>> pipelines, Store& store,
                 DeadLetterStore& dead_letters, const Clock& clock = RealClock());

  // Thread-safe. Runs the pipelines reading from `source` (and those reading
  // their outputs) and queues the outputs; blocks while a sink's queue is
  // full. kCancelled after Close().
  Status Process(int source, const operators::Record& record);

  // Processing time is `now_ms`: lets idle windows close. Thread-safe.
  Status Tick(int64_t now_ms);

  // End of input (`sluice test`): closes every open window, upstream first.
  Status Flush();

  // Refuses further readings; waits for the one in progress (a commit being
  // retried gives up).
  void Close();

  const std::vector<std::unique_ptr<PipelineRuntime>>& pipelines() const { return pipelines_; }

 private:
  class Router;
  // Runs `p` on one record; outputs collect in commit_.
  void Run(PipelineRuntime& p, const operators::Record& record);
  // Commits what the pipelines emitted, retrying transient failures until
  // it succeeds or the runner closes.
  Status CommitOutputs();

  std::mutex mu_;
  bool closed_ = false;
  Store& store_;
  DeadLetterStore& dead_letters_;
  const Clock& clock_;
  // Close() flags this and wakes a commit retry that holds mu_.
  std::atomic<bool> closing_{false};
  std::mutex retry_mu_;
  std::condition_variable retry_wake_;
  std::vector<std::unique_ptr<PipelineRuntime>> pipelines_;
  Commit commit_;  // reused: outputs per sink queue, no allocation per reading
  RateLimitedLog commit_log_{LogLevel::kError, Millis(60000)};
  RateLimitedLog error_log_{LogLevel::kError, Millis(60000)};
  RateLimitedLog dead_letter_log_{LogLevel::kError, Millis(60000)};
};

}  // namespace sluice::agent

#endif  // SLUICE_AGENT_PIPELINE_RUNNER_H_

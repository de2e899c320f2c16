// PipelineRunner: runs every pipeline on the thread of the source that
// delivered the readings, and commits the outputs before it returns.
//
// A source hands over a batch: every message it read off its connection in
// one go. The runner runs the pipelines on each reading of the batch, under
// one mutex (uncontended with a single source), and writes all the outputs
// to the store's outbox in one committed transaction; the source sends the
// batch's acknowledgements only then: acknowledge after commit, at the cost
// of one commit per batch rather than per reading. Handing readings to
// another thread would add context switches and a copy to every one of
// them. When the commit cannot happen (disk full, I/O error) it retries
// until it can, holding the acks; at a sink's cap the store applies the
// sink's overflow policy (with `block`, the write waits and the broker stops
// sending: backpressure).
//
// Crash safety of window and alert state (DESIGN.md, "Acknowledge after
// commit"; Promises, process crash). A pipeline is *stateful* when its
// operator is a window or an alert. A reading from a source that feeds a
// stateful pipeline directly is appended to the store's ingest journal in the
// same transaction as the outputs it caused, before the ack. Checkpoint()
// saves every stateful operator's snapshot with the journal's last sequence
// number (and trims the journal up to it); at start the agent restores the
// operators from the checkpoint (RestoreCheckpoint) and replays the journal
// after it (Replay) through the stateful pipelines only (and those reading
// their outputs): their state is then what it was at the crash. Replayed
// outputs duplicate outputs already queued, with the same record ids.
//
// Redelivery: a reading committed just before a SIGKILL may not have been
// acknowledged, and the broker sends it again (so may a commit held on a full
// disk past the broker's keep-alive: up to the 4096 readings in flight). Per
// journaled source the runner keeps the content hashes (topic + payload,
// FNV-1a 64) of the last kRecentReadings journaled readings, refilled by the
// replay; a reading whose hash is among them is taken (acknowledged) and
// dropped when it may be a repeat: the broker marks it as sent before (MQTT's
// DUP flag), or its source reads the event time from the payload (the same
// bytes, the same reading; a device's own retry reaches us without DUP). The
// set is saved in each checkpoint as the extra snapshot "\x01dedupe/<source>"
// (no pipeline name can start with \x01), so it survives a checkpoint that
// trimmed the journal between a commit and its ack. A reading of a source
// without a time field and without the DUP flag is always new, even when its
// bytes repeat an earlier one (a sensor that reads the same value twice).
//
// A failed commit (a non-transient error, or shutdown while retrying) leaves
// operators holding a reading that is neither journaled nor acknowledged
// (the broker sends it again): from then on no checkpoint is saved, so the
// next start rebuilds the state from the last good checkpoint and the journal.
#ifndef SLUICE_AGENT_PIPELINE_RUNNER_H_
#define SLUICE_AGENT_PIPELINE_RUNNER_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "operators/operator.h"
#include "operators/record.h"
#include "platform/hash_set64.h"
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
  bool stateful = false;                // a window or an alert: checkpointed
  std::string definition;               // config::StateDefinition: saved with its snapshot
  std::vector<int> sinks;               // indices into the runner's queues
  PipelineCounters counters;
  std::vector<int> downstream;          // filled by the runner
  bool held_back = false;               // Tick: has due output left this round (runner's mu_)
};

class PipelineRunner {
 public:
  // `store` and `dead_letters` are not owned and must outlive the runner; a
  // pipeline's `sinks` are the store's queue indices.
  PipelineRunner(std::vector<std::unique_ptr<PipelineRuntime>> pipelines, Store& store,
                 DeadLetterStore& dead_letters, const Clock& clock = RealClock());

  // Reserved snapshot names of the redelivery sets (see above).
  static constexpr size_t kRecentReadings = 8192;
  static std::string DedupeKey(const std::string& source) {
    return std::string("\x01" "dedupe/") + source;
  }
  static std::string DefinitionKey(const std::string& pipeline) {
    return std::string("\x01" "definition/") + pipeline;
  }

  // Names the sources (by index) and turns the journal on for those feeding
  // a stateful pipeline. Call before the first Process/Replay. Without it
  // (`sluice test`) nothing is journaled.
  void EnableJournal(std::vector<std::string> source_names);

  // A reading as its source took it: decoded, and the raw message.
  struct Reading {
    const operators::Record* record;
    std::string_view topic;
    std::string_view payload;
    // May be a repeat of a journaled reading: the broker says it sent it
    // before (MQTT DUP), or it carries its own timestamp.
    bool maybe_repeat = false;
  };
  // Thread-safe. Runs the pipelines reading from `source` (and those reading
  // their outputs) on each reading in turn and queues all their outputs in
  // one commit: a source acknowledges the whole batch after it returns Ok.
  // Blocks while a sink's queue is full. kCancelled after Close(). The raw
  // messages are journaled (in the same commit) when the source feeds a
  // stateful pipeline; a redelivery of a journaled reading is dropped.
  Status Process(int source, const std::vector<Reading>& readings);
  // The same without journaling (`sluice test`).
  Status Process(int source, const operators::Record& record);

  // At start, before any Process: restores every stateful operator (and the
  // redelivery sets) from `checkpoint`. A missing or corrupt snapshot is
  // logged and that pipeline starts empty. Returns how many were restored.
  size_t RestoreCheckpoint(const std::optional<Store::Checkpoint>& checkpoint);
  // At start, after RestoreCheckpoint: one journal entry, decoded, through
  // the stateful pipelines reading `source` (and their downstream); their
  // outputs are committed, nothing is journaled again.
  Status Replay(int source, const operators::Record& record, std::string_view topic,
                std::string_view payload);
  // Snapshots of every stateful operator and the journal position, saved
  // in one transaction (trims the journal). Thread-safe; failures are logged
  // (rate-limited) and returned, and the next call tries again.
  Status Checkpoint();

  // Processing time is `now_ms`: lets idle windows close. Thread-safe.
  Status Tick(int64_t now_ms);
  // True when the last Process or Tick left due output (windows whose
  // results did not fit in its commit): the next Process or Tick emits it.
  bool HoldsOutput() const { return holds_output_.load(std::memory_order_relaxed); }
  // Steady clock ms (since its epoch) of the last Process.
  int64_t last_process_ms() const { return last_process_ms_.load(std::memory_order_relaxed); }
  // Before any Process: `fn` runs when a Process leaves output held (with
  // the runner's lock held: it must not call back into the runner).
  void OnHoldingOutput(std::function<void()> fn) { on_holding_output_ = std::move(fn); }

  // End of input (`sluice test`): closes every open window, upstream first.
  Status Flush();

  // Refuses further readings; waits for the one in progress (a commit being
  // retried gives up).
  void Close();
  // A commit being retried (disk full) gives up now, without waiting for
  // the lock Close() takes. Thread-safe.
  void StopRetrying();
  // True while a commit waits for room (disk full, or a full queue under
  // overflow: block). Thread-safe.
  bool WaitingOnStore() const { return waiting_on_store_.load(std::memory_order_relaxed); }

  const std::vector<std::unique_ptr<PipelineRuntime>>& pipelines() const { return pipelines_; }

  // For the service watchdog: true while the pipelines make progress (a
  // Tick completed less than `limit` ago) or knowingly wait for the store
  // (disk full, or a sink's queue full under overflow: block) — waiting for
  // room is not a hang. Thread-safe.
  bool Responsive(SteadyTime now, Millis limit) const;

  // For metrics and status, without taking the pipelines' lock: every
  // pipeline's operator figures (by index) as of the last Tick, so about a
  // second old. Thread-safe.
  std::vector<operators::OperatorStats> PublishedStats() const;
  // False while a commit fails and is being retried (disk full, I/O error):
  // intake is held until the store takes writes again. Thread-safe.
  bool StoreWritable() const { return !store_failing_.load(std::memory_order_relaxed); }
  // Wall time (epoch ms) of the last checkpoint saved or restored; 0: none
  // (also when no pipeline is stateful). Thread-safe.
  int64_t last_checkpoint_ms() const {
    return last_checkpoint_ms_.load(std::memory_order_relaxed);
  }

  // Every commit takes all the outputs, however many windows close at once
  // (`sluice test`: its output order must not depend on commit sizes).
  void SetUnbounded() { unbounded_ = true; }

  // Test hook (the watchdog test): a reading on `topic` stalls the pipelines
  // for good, as a bug in an operator would.
  void StallOnTopicForTests(std::string topic) { stall_topic_ = std::move(topic); }

 private:
  class Router;
  struct ProcessScope;
  // Runs `p` on one record; outputs collect in commit_.
  void Run(PipelineRuntime& p, const operators::Record& record);
  // Commits what the pipelines emitted, retrying transient failures until
  // it succeeds or the runner closes.
  Status CommitOutputs();
  // Copies every operator's Stats() for PublishedStats(); mu_ held.
  void PublishStats();

  // The content hashes of a source's last journaled readings, oldest first.
  class RecentSet {
   public:
    bool Contains(uint64_t hash) const;
    void Add(uint64_t hash);
    std::string Encode() const;
    bool Decode(std::string_view in);  // false (and empty) when malformed

   private:
    // The last hashes, up to kRecentReadings; once full, next_ is the
    // oldest. Grown as readings come (a source without any costs nothing).
    std::vector<uint64_t> ring_;
    size_t next_ = 0;
    HashSet64 index_;  // what ring_ holds
  };

  std::mutex checkpoint_mu_;  // one Checkpoint at a time; taken before mu_
  std::mutex mu_;
  bool closed_ = false;
  Store& store_;
  DeadLetterStore& dead_letters_;
  const Clock& clock_;
  // Close() flags this and wakes a commit retry that holds mu_.
  std::atomic<bool> closing_{false};
  std::atomic<bool> waiting_on_store_{false};
  std::atomic<int64_t> last_tick_done_ms_{0};  // steady clock, ms since its epoch
  std::atomic<int64_t> last_process_ms_{0};    // the same clock
  std::atomic<bool> holds_output_{false};
  std::function<void()> on_holding_output_;
  bool saturated_ = false;  // a Saturated() said yes since the last Process/Tick began (mu_)
  std::atomic<bool> store_failing_{false};
  std::atomic<int64_t> last_checkpoint_ms_{0};
  // Copied from the operators under mu_ (PublishStats), read under published_mu_ only.
  mutable std::mutex published_mu_;
  std::vector<operators::OperatorStats> published_;
  std::string stall_topic_;
  std::mutex retry_mu_;
  std::condition_variable retry_wake_;
  std::vector<std::unique_ptr<PipelineRuntime>> pipelines_;
  Commit commit_;  // reused: outputs per sink queue, no allocation per reading
  // Records emitted into commit_ since it was last written. Past
  // kOutputsPerCommit the Router says Saturated(): 10,000 windows closing
  // at once would make one commit of megabytes that the readings behind it
  // wait for; put off, they close over the next batches and ticks.
  size_t emitted_ = 0;
  bool unbounded_ = false;  // Flush, or SetUnbounded(): everything now
  // Pipeline indices, each after the one it reads (Tick and Flush go in
  // this order); empty when pipelines read each other in a cycle.
  std::vector<size_t> upstream_first_;
  Status RefuseCycle() const;  // kInternal if upstream_first_ could not be built
  std::vector<std::string> source_names_;  // EnableJournal
  std::vector<bool> journaled_;            // by source: feeds a stateful pipeline
  std::vector<RecentSet> recent_;          // by source
  std::vector<uint64_t> reading_hashes_;  // ContentHash of each reading of the batch
  std::vector<uint64_t> batch_hashes_;  // of the batch being committed, in order
  HashSet64 batch_index_;               // the same, empty between batches
  // A commit failed: operator state may hold readings not in the journal.
  bool diverged_ = false;
  uint64_t redeliveries_ = 0;
  RateLimitedLog checkpoint_log_{LogLevel::kError, Millis(60000)};
  RateLimitedLog redelivery_log_{LogLevel::kInfo, Millis(60000)};
  RateLimitedLog commit_log_{LogLevel::kError, Millis(60000)};
  RateLimitedLog error_log_{LogLevel::kError, Millis(60000)};
  RateLimitedLog dead_letter_log_{LogLevel::kError, Millis(60000)};
};

}  // namespace sluice::agent

#endif  // SLUICE_AGENT_PIPELINE_RUNNER_H_

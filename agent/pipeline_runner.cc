#include "agent/pipeline_runner.h"

#include <algorithm>
#include <malloc.h>
#include <thread>

#include "operators/output.h"
#include "platform/clock.h"
#include "platform/fnv1a.h"
#include "platform/log.h"

namespace sluice::agent {
namespace {

int64_t SteadyMillis(SteadyTime t) {
  return std::chrono::duration_cast<Millis>(t.time_since_epoch()).count();
}

// FNV-1a of topic, a NUL (never in an MQTT topic), payload: saved in
// checkpoints, so it must not change.
constexpr std::string_view kNul("\0", 1);

uint64_t ContentHash(std::string_view topic, std::string_view payload) {
  return Fnv1a(payload, Fnv1a(kNul, Fnv1a(topic)));
}

// ContentHash of each reading, four at a time (see Fnv1a4).
void ContentHashes(const std::vector<PipelineRunner::Reading>& readings, std::vector<uint64_t>* out) {
  out->resize(readings.size());
  size_t i = 0;
  for (; i + 4 <= readings.size(); i += 4) {
    uint64_t h[4] = {kFnv1aBasis, kFnv1aBasis, kFnv1aBasis, kFnv1aBasis};
    std::string_view topics[4], nuls[4] = {kNul, kNul, kNul, kNul}, payloads[4];
    for (size_t k = 0; k < 4; ++k) {
      topics[k] = readings[i + k].topic;
      payloads[k] = readings[i + k].payload;
    }
    Fnv1a4(h, topics);
    Fnv1a4(h, nuls);
    Fnv1a4(h, payloads);
    std::copy(h, h + 4, out->begin() + static_cast<std::ptrdiff_t>(i));
  }
  for (; i < readings.size(); ++i) (*out)[i] = ContentHash(readings[i].topic, readings[i].payload);
}

constexpr char kRecentSetVersion = 1;
// See PipelineRunner::emitted_: 1-2 ms of work with a p95 per window.
constexpr size_t kOutputsPerCommit = 256;
// Between two rounds of a Tick that had more to emit: the readings waiting
// for mu_ get in (a std::mutex is not fair).
constexpr Millis kTickRoundPause{1};

}  // namespace

bool PipelineRunner::RecentSet::Contains(uint64_t hash) const { return index_.Contains(hash); }

void PipelineRunner::RecentSet::Add(uint64_t hash) {
  if (!index_.Insert(hash)) return;
  if (ring_.size() < kRecentReadings) {  // filling up: ring_[0] is the oldest
    ring_.push_back(hash);
    return;
  }
  index_.Erase(ring_[next_]);
  ring_[next_] = hash;
  next_ = (next_ + 1) % kRecentReadings;
}

// Version byte, then each hash as 8 bytes little-endian, oldest first.
std::string PipelineRunner::RecentSet::Encode() const {
  std::string out(1, kRecentSetVersion);
  out.reserve(1 + 8 * ring_.size());
  for (size_t n = 0; n < ring_.size(); ++n) {
    const uint64_t h = ring_[(next_ + n) % ring_.size()];
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((h >> (8 * i)) & 0xff));
  }
  return out;
}

bool PipelineRunner::RecentSet::Decode(std::string_view in) {
  for (uint64_t h : ring_) index_.Erase(h);
  ring_.clear();
  next_ = 0;
  if (in.empty() || in[0] != kRecentSetVersion || (in.size() - 1) % 8 != 0) return false;
  for (size_t at = 1; at < in.size(); at += 8) {
    uint64_t h = 0;
    for (int i = 0; i < 8; ++i) {
      h |= static_cast<uint64_t>(static_cast<unsigned char>(in[at + i])) << (8 * i);
    }
    Add(h);
  }
  return true;
}

// One pipeline's Emitter: envelopes to the pipeline's sinks, records on to
// the pipelines that read this one, rejections to the dead-letter store.
class PipelineRunner::Router final : public operators::Emitter {
 public:
  Router(PipelineRunner& runner, PipelineRuntime& pipeline) : runner_(runner), p_(pipeline) {}

  void Emit(Envelope envelope, const operators::Record& record) override {
    p_.counters.records_out.fetch_add(1, std::memory_order_relaxed);
    ++runner_.emitted_;
    auto& per_sink = runner_.commit_.outputs;
    const std::vector<int>& sinks = p_.sinks;
    for (size_t i = 0; i + 1 < sinks.size(); ++i) per_sink[sinks[i]].push_back(envelope);
    if (!sinks.empty()) per_sink[sinks.back()].push_back(std::move(envelope));
    for (int d : p_.downstream) runner_.Run(*runner_.pipelines_[d], record);
  }

  bool Saturated() const override {
    if (runner_.unbounded_ || runner_.emitted_ < kOutputsPerCommit) return false;
    p_.held_back = true;
    runner_.saturated_ = true;
    return true;
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
  last_tick_done_ms_.store(SteadyMillis(clock_.Now()));
  published_.resize(pipelines_.size());
  commit_.outputs.resize(store_.queue_count());
  for (size_t i = 0; i < pipelines_.size(); ++i) {
    int up = pipelines_[i]->upstream;
    if (up >= 0) pipelines_[up]->downstream.push_back(static_cast<int>(i));
  }
  std::vector<bool> placed(pipelines_.size(), false);
  while (upstream_first_.size() < pipelines_.size()) {
    const size_t before = upstream_first_.size();
    for (size_t i = 0; i < pipelines_.size(); ++i) {
      const int up = pipelines_[i]->upstream;
      if (placed[i] || (up >= 0 && !placed[up])) continue;
      placed[i] = true;
      upstream_first_.push_back(i);
    }
    if (upstream_first_.size() == before) {  // a cycle (the config loader refuses one)
      upstream_first_.clear();
      break;
    }
  }
}

Status PipelineRunner::RefuseCycle() const {
  if (upstream_first_.empty() && !pipelines_.empty()) {
    return Status::Internal("pipelines read each other in a cycle");
  }
  return Status::Ok();
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

void PipelineRunner::EnableJournal(std::vector<std::string> source_names) {
  std::lock_guard<std::mutex> lock(mu_);
  source_names_ = std::move(source_names);
  journaled_.assign(source_names_.size(), false);
  recent_.assign(source_names_.size(), RecentSet());
  for (const auto& p : pipelines_) {
    if (p->stateful && p->source >= 0 && static_cast<size_t>(p->source) < journaled_.size()) {
      journaled_[p->source] = true;
    }
  }
}

// Publishes HoldsOutput() and last_process_ms() however a Process returns.
struct PipelineRunner::ProcessScope {
  explicit ProcessScope(PipelineRunner& runner) : r(runner) { r.saturated_ = false; }
  ~ProcessScope() {
    r.holds_output_.store(r.saturated_, std::memory_order_relaxed);
    r.last_process_ms_.store(SteadyMillis(r.clock_.Now()), std::memory_order_relaxed);
    if (r.saturated_ && r.on_holding_output_) r.on_holding_output_();
  }
  PipelineRunner& r;
};

Status PipelineRunner::Process(int source, const operators::Record& record) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return Status::Cancelled("pipelines are stopping");
  ProcessScope scope(*this);
  for (const auto& p : pipelines_) {
    if (p->source == source) Run(*p, record);
  }
  Status s = CommitOutputs();
  if (!s.ok()) diverged_ = true;
  return s;
}

Status PipelineRunner::Process(int source, const std::vector<Reading>& readings) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return Status::Cancelled("pipelines are stopping");
  const bool journal = source >= 0 && static_cast<size_t>(source) < journaled_.size() &&
                       journaled_[source];
  for (uint64_t hash : batch_hashes_) batch_index_.Erase(hash);  // what the last batch left
  batch_hashes_.clear();
  ProcessScope scope(*this);
  if (journal) ContentHashes(readings, &reading_hashes_);
  for (size_t i = 0; i < readings.size(); ++i) {
    const Reading& reading = readings[i];
    if (!stall_topic_.empty() && reading.topic == stall_topic_) {
      LogWarn("test hook: stalling the pipelines on a reading on '", reading.topic, "'");
      while (!closing_.load()) std::this_thread::sleep_for(Millis(100));
      return Status::Cancelled("pipelines are stopping");
    }
    if (journal) {
      const uint64_t hash = reading_hashes_[i];
      const bool in_batch = !batch_index_.Insert(hash);
      if (!in_batch) batch_hashes_.push_back(hash);
      // Not every repeat: a sensor without a timestamp may well publish the
      // same payload again, and that is a new reading.
      if (reading.maybe_repeat && (in_batch || recent_[source].Contains(hash))) {
        // Committed before a crash, acknowledged too late: the broker sent it
        // again. Take it (the ack goes out) without counting it twice.
        ++redeliveries_;
        redelivery_log_.Log("source '" + source_names_[source] +
                            "': dropped a redelivered reading already journaled (" +
                            std::to_string(redeliveries_) + " so far)");
        continue;
      }
    }
    for (const auto& p : pipelines_) {
      if (p->source == source) Run(*p, *reading.record);
    }
    if (journal) {
      commit_.journal.push_back(
          {source_names_[source], reading.topic, reading.payload, reading.record->arrival_ms});
    }
  }
  Status s = CommitOutputs();
  if (!s.ok()) {
    diverged_ = true;
    return s;
  }
  // Only now: a reading whose commit failed must not pass for a redelivery.
  if (journal) {
    for (uint64_t hash : batch_hashes_) recent_[source].Add(hash);
  }
  return s;
}

size_t PipelineRunner::RestoreCheckpoint(const std::optional<Store::Checkpoint>& checkpoint) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t restored = 0;
  if (!checkpoint) return restored;
  for (const auto& p : pipelines_) {
    if (!p->stateful) continue;
    auto it = checkpoint->snapshots.find(p->name);
    if (it == checkpoint->snapshots.end()) {
      LogWarn("pipeline '", p->name,
              "': no state in the checkpoint (a new pipeline?): it starts empty");
      continue;
    }
    // A checkpoint from before definitions were saved has none: trust it.
    auto definition = checkpoint->snapshots.find(DefinitionKey(p->name));
    if (definition != checkpoint->snapshots.end() && definition->second != p->definition) {
      LogInfo("pipeline '", p->name,
              "': its definition changed since the checkpoint: it starts empty");
      continue;
    }
    if (Status s = p->op->Restore(it->second); !s.ok()) {
      LogError("pipeline '", p->name, "': CANNOT RESTORE ITS STATE from the checkpoint (",
               s.ToString(), "): it starts empty; windows or alerts open before the restart "
               "are incomplete");
      continue;
    }
    ++restored;
  }
  last_checkpoint_ms_.store(checkpoint->saved_ms, std::memory_order_relaxed);
  PublishStats();
  for (size_t i = 0; i < recent_.size(); ++i) {
    if (!journaled_[i]) continue;
    auto it = checkpoint->snapshots.find(DedupeKey(source_names_[i]));
    if (it == checkpoint->snapshots.end()) continue;
    if (!recent_[i].Decode(it->second)) {
      LogError("source '", source_names_[i],
               "': the checkpoint's redelivery set is malformed; a reading redelivered after "
               "the crash may be counted twice");
    }
  }
  return restored;
}

Status PipelineRunner::Replay(int source, const operators::Record& record,
                              std::string_view topic, std::string_view payload) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return Status::Cancelled("pipelines are stopping");
  for (const auto& p : pipelines_) {
    if (p->source == source && p->stateful) Run(*p, record);
  }
  RETURN_IF_ERROR(CommitOutputs());
  if (source >= 0 && static_cast<size_t>(source) < recent_.size()) {
    recent_[source].Add(ContentHash(topic, payload));
  }
  return Status::Ok();
}

Status PipelineRunner::Checkpoint() {
  std::lock_guard<std::mutex> one_at_a_time(checkpoint_mu_);
  std::map<std::string, std::string> snapshots;
  uint64_t seq = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (diverged_) {
      Status s = Status::FailedPrecondition(
          "a commit failed, so the window/alert state may hold readings that are not journaled; "
          "no checkpoint until restart (the next start rebuilds it from the last checkpoint and "
          "the journal)");
      checkpoint_log_.Log("cannot save a checkpoint: " + s.ToString());
      return s;
    }
    for (const auto& p : pipelines_) {
      if (!p->stateful) continue;
      snapshots[p->name] = p->op->Snapshot();
      snapshots[DefinitionKey(p->name)] = p->definition;
    }
    if (snapshots.empty()) return Status::Ok();  // nothing stateful, nothing journaled
    for (size_t i = 0; i < recent_.size(); ++i) {
      if (journaled_[i]) snapshots[DedupeKey(source_names_[i])] = recent_[i].Encode();
    }
    // Under mu_: every journal entry up to here is in the snapshots.
    StatusOr<uint64_t> last = store_.LastJournalSeq();
    if (!last.ok()) {
      checkpoint_log_.Log("cannot save a checkpoint (retrying later): " + last.status().ToString());
      return last.status();
    }
    seq = *last;
  }
  // Written without mu_: with thousands of keys the write takes long enough
  // to hold readings (and alerts) back. Readings committed meanwhile are
  // journaled after `seq`, so the checkpoint stays exact.
  Status s = store_.SaveCheckpoint(snapshots, seq);
  if (!s.ok()) checkpoint_log_.Log("cannot save a checkpoint (retrying later): " + s.ToString());
  if (s.ok()) last_checkpoint_ms_.store(ToEpochMillis(clock_.WallNow()), std::memory_order_relaxed);
  snapshots.clear();
  // The snapshots were megabytes with many keys: give the pages back.
  malloc_trim(0);
  return s;
}

Status PipelineRunner::Tick(int64_t now_ms) {
  // In rounds of at most kOutputsPerCommit records while windows close by
  // the thousand, mu_ free between them.
  for (bool first = true;; first = false) {
    if (!first) std::this_thread::sleep_for(kTickRoundPause);
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return Status::Cancelled("pipelines are stopping");
    RETURN_IF_ERROR(RefuseCycle());
    for (const auto& p : pipelines_) p->held_back = false;
    for (size_t i : upstream_first_) {
      PipelineRuntime& p = *pipelines_[i];
      // While the pipeline it reads still holds results back, its input is
      // not complete: an idle tick now could take them for late ones.
      if (p.upstream >= 0 && pipelines_[p.upstream]->held_back) {
        p.held_back = true;
        continue;
      }
      Router router(*this, p);
      if (Status s = p.op->OnTick(now_ms, router); !s.ok()) {
        error_log_.Log("pipeline '" + p.name + "': " + s.ToString());
      }
    }
    Status s = CommitOutputs();
    if (!s.ok()) diverged_ = true;  // outputs of closed windows lost: not checkpointed
    const bool more = std::any_of(pipelines_.begin(), pipelines_.end(),
                                  [](const auto& p) { return p->held_back; });
    if (s.ok() && more) continue;
    holds_output_.store(more, std::memory_order_relaxed);
    PublishStats();
    last_tick_done_ms_.store(SteadyMillis(clock_.Now()), std::memory_order_relaxed);
    return s;
  }
}

void PipelineRunner::PublishStats() {
  // Stats() walks each operator's keys: once a second here, never per scrape,
  // so a scrape never waits for the pipelines' lock.
  std::vector<operators::OperatorStats> stats;
  stats.reserve(pipelines_.size());
  for (const auto& p : pipelines_) stats.push_back(p->op->Stats());
  std::lock_guard<std::mutex> lock(published_mu_);
  published_ = std::move(stats);
}

std::vector<operators::OperatorStats> PipelineRunner::PublishedStats() const {
  std::lock_guard<std::mutex> lock(published_mu_);
  return published_;
}

bool PipelineRunner::Responsive(SteadyTime now, Millis limit) const {
  if (waiting_on_store_.load(std::memory_order_relaxed)) return true;
  return SteadyMillis(now) - last_tick_done_ms_.load(std::memory_order_relaxed) <= limit.count();
}

Status PipelineRunner::Flush() {
  std::lock_guard<std::mutex> lock(mu_);
  struct Unbounded {  // for this call only (SetUnbounded() may hold it already)
    bool& flag;
    const bool before = flag;
    ~Unbounded() { flag = before; }
  } unbounded{unbounded_};
  unbounded_ = true;
  // Upstream first: a window's last aggregates must reach the pipelines
  // reading it before those close their own windows.
  RETURN_IF_ERROR(RefuseCycle());
  for (size_t i : upstream_first_) {
    PipelineRuntime& p = *pipelines_[i];
    Router router(*this, p);
    RETURN_IF_ERROR(p.op->OnWatermark(operators::kEndOfTime, router));
  }
  return CommitOutputs();
}

Status PipelineRunner::CommitOutputs() {
  emitted_ = 0;  // commit_ is empty when this returns, whatever happens
  bool any = !commit_.journal.empty();
  for (const auto& out : commit_.outputs) any = any || !out.empty();
  if (!any) return Status::Ok();
  Millis backoff(50);
  waiting_on_store_.store(true, std::memory_order_relaxed);
  struct Done {
    std::atomic<bool>& flag;
    ~Done() { flag.store(false, std::memory_order_relaxed); }
  } done{waiting_on_store_};
  while (true) {
    Status s = store_.Write(commit_);
    if (s.ok()) {
      store_failing_.store(false, std::memory_order_relaxed);
      break;
    }
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
    store_failing_.store(true, std::memory_order_relaxed);
    std::unique_lock<std::mutex> lock(retry_mu_);
    clock_.WaitUntil(lock, retry_wake_, clock_.Now() + backoff);
    backoff = std::min(Millis(5000), backoff * 2);
  }
  for (auto& out : commit_.outputs) out.clear();
  commit_.journal.clear();
  return Status::Ok();
}

void PipelineRunner::StopRetrying() {
  std::lock_guard<std::mutex> lock(retry_mu_);
  closing_ = true;
  retry_wake_.notify_all();
}

void PipelineRunner::Close() {
  StopRetrying();
  std::lock_guard<std::mutex> lock(mu_);
  closed_ = true;
}

}  // namespace sluice::agent

#include "agent/agent.h"

#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>

#include "agent/buffer_cli.h"
#include "agent/metrics.h"
#include "agent/mqtt_source.h"
#include "agent/pipeline_factory.h"
#include "agent/pipeline_runner.h"
#include "operators/decode.h"
#include "operators/operator.h"
#include "platform/dead_letter.h"
#include "platform/fs.h"
#include "platform/log.h"
#include "platform/store.h"
#include "platform/thread_name.h"
#include "sinks/delivery.h"

namespace sluice::agent {
namespace {

OverflowPolicy ToPolicy(config::Overflow overflow) {
  switch (overflow) {
    case config::Overflow::kDropOldest: return OverflowPolicy::kDropOldest;
    case config::Overflow::kDropNewest: return OverflowPolicy::kDropNewest;
    case config::Overflow::kBlock: return OverflowPolicy::kBlock;
  }
  return OverflowPolicy::kDropOldest;
}

}  // namespace

class Agent::Impl {
 public:
  Impl(const config::Config& config, const Clock& clock) : config_(config), clock_(clock) {}

  Status Build(const sinks::SinkRegistry& registry) {
    RETURN_IF_ERROR(CreateDirectories(config_.agent.data_dir).WithContext("agent.data_dir"));
    StoreOptions store_options;
    for (const config::SinkConfig& sc : config_.sinks) {
      // One database: the strictest durability any sink asks for.
      if (sc.buffer.sync == config::SyncLevel::kFull) store_options.durability = Durability::kFull;
    }
    ASSIGN_OR_RETURN(store_, Store::Open(StorePath(config_.agent.data_dir), store_options, clock_));
    DeadLetterStore& dead_letters = store_->dead_letters();
    std::map<std::string, int> queue_of_sink;
    for (const config::SinkConfig& sc : config_.sinks) {
      ASSIGN_OR_RETURN(auto sink, registry.Create(sc));
      auto slot = std::make_unique<SinkSlot>();
      slot->name = sc.name;
      slot->sink = std::move(sink);
      ASSIGN_OR_RETURN(int index,
                       store_->AddQueue(sc.name, {sc.buffer.max_size, ToPolicy(sc.buffer.overflow)}));
      queue_of_sink[sc.name] = index;
      slot->queue = store_->queue(index);
      slot->loop = std::make_unique<sinks::DeliveryLoop>(sc.name, *slot->sink, *slot->queue,
                                                          dead_letters, clock_);
      sinks_.push_back(std::move(slot));
    }

    // Routes by the queue index the store gave each sink, not by position.
    ASSIGN_OR_RETURN(auto pipelines,
                     BuildRuntimes(config_, [&](const config::PipelineConfig& pc) {
                       std::vector<int> queues;
                       for (const std::string& to : pc.to) queues.push_back(queue_of_sink.at(to));
                       return queues;
                     }));
    pipelines_ = std::make_unique<PipelineRunner>(std::move(pipelines), *store_, dead_letters,
                                                  clock_);
    std::vector<std::string> source_names;
    for (const config::SourceConfig& sc : config_.sources) source_names.push_back(sc.name);
    pipelines_->EnableJournal(std::move(source_names));
    pipelines_->OnHoldingOutput([this] {
      std::lock_guard<std::mutex> lock(tick_mu_);
      tick_wake_.notify_all();  // Tick() watches for the source going quiet
    });
    if (const char* topic = std::getenv("SLUICE_TEST_STALL_TOPIC"); topic != nullptr && *topic) {
      pipelines_->StallOnTopicForTests(topic);
    }
    RETURN_IF_ERROR(RecoverState());

    for (size_t i = 0; i < config_.sources.size(); ++i) {
      const config::SourceConfig& sc = config_.sources[i];
      ASSIGN_OR_RETURN(auto source,
                       MqttSource::Create(sc, static_cast<int>(i), DecodeOptionsFor(config_, sc), *pipelines_,
                                          dead_letters, clock_));
      sources_.push_back(std::move(source));
    }
    return Status::Ok();
  }

  void Start() {
    for (auto& slot : sinks_) {
      sinks::DeliveryLoop* loop = slot->loop.get();
      slot->thread = std::thread([loop, name = "sink " + slot->name] {
        NameThisThread(name);
        loop->Run();
      });
    }
    for (const config::SinkConfig& sc : config_.sinks) {
      LogDebug("sink '", sc.name, "': type ", sc.type, ", buffer max_size ", sc.buffer.max_size,
               " bytes");
    }
    for (const config::SourceConfig& sc : config_.sources) {
      LogDebug("source '", sc.name, "': ", sc.url, " as client '", sc.client_id, "', ",
               sc.topics.size(), " topic filter(s) at QoS ", sc.qos);
    }
    for (auto& source : sources_) source->Start();
    ticker_ = std::thread([this] {
      NameThisThread("ticker");
      Tick();
    });
    LogInfo("agent '", config_.agent.id, "' running: ", sources_.size(), " source(s), ",
            config_.pipelines.size(), " pipeline(s), ", sinks_.size(), " sink(s)");
  }

  bool Responsive() const {
    // Ten ticks: far beyond a busy second, far below systemd's WatchdogSec.
    return pipelines_->Responsive(clock_.Now(), Millis(10000));
  }

  std::string StatusLine() const {
    uint64_t readings = 0, queued = 0, delivered = 0;
    size_t connected = 0;
    for (const auto& source : sources_) {
      readings += source->counters().messages.load(std::memory_order_relaxed);
      connected += source->counters().connected.load(std::memory_order_relaxed) ? 1 : 0;
    }
    for (const auto& slot : sinks_) {
      queued += slot->queue->size();
      delivered += slot->loop->counters().delivered.load(std::memory_order_relaxed);
    }
    return std::to_string(connected) + "/" + std::to_string(sources_.size()) +
           " sources connected, " + std::to_string(readings) + " readings in, " +
           std::to_string(delivered) + " records delivered, " + std::to_string(queued) + " queued";
  }

  AgentSnapshot Snapshot(bool scan_store) const {
    AgentSnapshot out;
    out.agent_id = config_.agent.id;
    out.now_ms = ToEpochMillis(clock_.WallNow());
    out.started_ms = started_ms_;
    out.uptime_seconds = std::chrono::duration<double>(clock_.Now() - started_at_).count();
    out.responsive = Responsive();
    for (const auto& source : sources_) {
      const SourceCounters& c = source->counters();
      out.sources.push_back({source->name(), c.messages.load(std::memory_order_relaxed),
                             c.bytes.load(std::memory_order_relaxed),
                             c.decode_errors.load(std::memory_order_relaxed),
                             c.retained_skipped.load(std::memory_order_relaxed),
                             c.connected.load(std::memory_order_relaxed)});
    }
    // Operator figures as of the last tick: never the pipelines' lock.
    std::vector<operators::OperatorStats> op_stats = pipelines_->PublishedStats();
    for (size_t i = 0; i < pipelines_->pipelines().size(); ++i) {
      const PipelineRuntime& p = *pipelines_->pipelines()[i];
      out.pipelines.push_back({p.name, p.counters.records_in.load(std::memory_order_relaxed),
                               p.counters.records_out.load(std::memory_order_relaxed),
                               p.counters.errors.load(std::memory_order_relaxed),
                               i < op_stats.size() ? op_stats[i] : operators::OperatorStats{}});
    }
    // One query of the store's small queues table.
    StatusOr<std::vector<QueueStats>> queues = store_->Stats();
    if (!queues.ok()) out.store.error = "queue figures: " + queues.status().ToString();
    for (size_t i = 0; i < sinks_.size(); ++i) {
      const SinkSlot& slot = *sinks_[i];
      AgentSnapshot::Sink sink;
      sink.name = slot.name;
      sink.type = i < config_.sinks.size() ? config_.sinks[i].type : "";
      if (queues.ok()) {
        for (const QueueStats& q : *queues) {
          if (q.sink == slot.name) sink.queue = q;
        }
      }
      sink.retried = slot.loop->counters().retried.load(std::memory_order_relaxed);
      sink.dead_lettered = slot.loop->counters().dead_lettered.load(std::memory_order_relaxed);
      sink.health = slot.loop->health();
      out.sinks.push_back(std::move(sink));
    }
    out.store.writable = pipelines_->StoreWritable();
    out.store.last_checkpoint_ms = pipelines_->last_checkpoint_ms();
    if (scan_store) {
      auto note = [&](const char* what, const Status& s) {
        out.store.error += (out.store.error.empty() ? "" : "; ") + std::string(what) + ": " +
                           s.ToString();
      };
      if (auto journal = store_->Journal(); journal.ok()) {
        out.store.journal = *journal;
      } else {
        note("journal", journal.status());
      }
      if (auto letters = store_->GetDeadLetterStats(); letters.ok()) {
        out.store.dead_letters = *letters;
      } else {
        note("dead letters", letters.status());
      }
    }
    return out;
  }

  void Shutdown(Agent::StopFor reason = Agent::StopFor::kExit) {
    if (shut_down_) return;
    shut_down_ = true;
    LogInfo("stopping: no new readings; finishing in-flight work");
    {
      // A commit held for room (disk full, or a full queue under overflow:
      // block), a source's or the ticker's, would keep the stop waiting:
      // once the grace period is over, a commit still held gives up,
      // unacknowledged, and the broker keeps its readings for the next start.
      std::mutex held_mu;
      std::condition_variable held_wake;
      bool stopped = false;
      const SteadyTime give_up = clock_.Now() + config_.agent.shutdown_grace;
      std::thread unblocker([&] {
        std::unique_lock<std::mutex> lock(held_mu);
        while (!stopped && (clock_.Now() < give_up || !pipelines_->WaitingOnStore())) {
          clock_.WaitUntil(lock, held_wake, std::max(give_up, clock_.Now() + Millis(100)));
        }
        if (stopped) return;
        LogWarn("stopping: a commit is still held (disk full or a full queue); giving it up, "
                "unacknowledged: the broker keeps its readings for the next start");
        pipelines_->StopRetrying();
        for (auto& slot : sinks_) slot->queue->Close();
      });
      for (auto& source : sources_) source->Stop();
      {
        std::lock_guard<std::mutex> lock(tick_mu_);
        stopping_ = true;
        tick_wake_.notify_all();
      }
      if (ticker_.joinable()) ticker_.join();
      {
        std::lock_guard<std::mutex> lock(held_mu);
        stopped = true;
        held_wake.notify_all();
      }
      unblocker.join();
    }
    // The sources are stopped: the state is final. A failure is logged, and
    // the next start replays the journal from the last checkpoint instead.
    (void)pipelines_->Checkpoint();
    pipelines_->Close();
    Millis grace = config_.agent.shutdown_grace;
    if (reason == Agent::StopFor::kReload) grace = std::min(grace, Millis(1000));
    SteadyTime deadline = clock_.Now() + grace;
    for (auto& slot : sinks_) slot->loop->Stop(deadline);
    // A sink blocked in a write (a broker that does not answer) is told to
    // give up once the grace period is over, so the stop stays bounded.
    std::mutex abort_mu;
    std::condition_variable abort_wake;
    bool joined = false;
    std::thread aborter([&] {
      std::unique_lock<std::mutex> lock(abort_mu);
      while (!joined && clock_.Now() < deadline) clock_.WaitUntil(lock, abort_wake, deadline);
      if (joined) return;
      for (auto& slot : sinks_) slot->loop->Abort();
    });
    for (auto& slot : sinks_) {
      if (slot->thread.joinable()) slot->thread.join();
    }
    {
      std::lock_guard<std::mutex> lock(abort_mu);
      joined = true;
      abort_wake.notify_all();
    }
    aborter.join();
    size_t left = 0;
    for (auto& slot : sinks_) {
      size_t n = slot->queue->size();
      if (n > 0) {
        LogInfo("sink '", slot->name, "': ", n, " record(s) still queued on disk for the next start");
      }
      left += n;
    }
    store_->Close();
    LogInfo("stopped", left == 0 ? "; no record left queued" : "");
  }

 private:
  struct SinkSlot {
    std::string name;
    std::unique_ptr<sinks::Sink> sink;
    SinkQueue* queue = nullptr;  // owned by the store
    std::unique_ptr<sinks::DeliveryLoop> loop;
    std::thread thread;
  };

  // Window and alert state after a crash: the last checkpoint, then the
  // journal after it, replayed through the stateful pipelines before any
  // source connects. A missing or corrupt snapshot leaves that pipeline
  // empty (logged), never a crash loop. The redelivery sets are refilled on
  // the way (PipelineRunner). A checkpoint then trims what was replayed, so
  // a crash loop does not replay an ever longer journal.
  Status RecoverState() {
    StatusOr<std::optional<Store::Checkpoint>> checkpoint = store_->LoadCheckpoint();
    if (!checkpoint.ok()) {
      LogError("cannot read the checkpoint (", checkpoint.status().ToString(),
               "): windows and alerts start empty, the journal is replayed from its start");
      checkpoint = std::optional<Store::Checkpoint>();
    }
    size_t restored = pipelines_->RestoreCheckpoint(*checkpoint);
    std::vector<operators::JsonDecoder> decoders;
    for (const config::SourceConfig& sc : config_.sources) {
      decoders.emplace_back(DecodeOptionsFor(config_, sc));
    }
    const uint64_t after = *checkpoint ? (*checkpoint)->journal_seq : 0;
    uint64_t replayed = 0;
    uint64_t skipped = 0;
    operators::Record record;
    Status s = store_->ReadJournal(after, [&](uint64_t seq, const JournalEntry& e) -> Status {
      int source = SourceIndex(e.source);
      if (source < 0) {
        if (skipped++ == 0) {
          LogWarn("journal entry ", seq, " is from source '", e.source,
                  "', not in the config: skipped (and any other such entries)");
        }
        return Status::Ok();
      }
      Status d = decoders[source].Decode(e.topic, e.payload, e.arrival_ms, &record);
      if (!d.ok()) {
        if (skipped++ == 0) {
          LogWarn("journal entry ", seq, " of source '", e.source, "' no longer decodes (",
                  d.ToString(), "): skipped (and any other such entries)");
        }
        return Status::Ok();
      }
      ++replayed;
      return pipelines_->Replay(source, record, e.topic, e.payload);
    });
    if (!s.ok()) return s.WithContext("replaying the ingest journal");
    if (*checkpoint || replayed > 0) {
      LogInfo("window/alert state: ", restored, " pipeline(s) restored from the checkpoint",
              *checkpoint ? " of seq " + std::to_string(after) : std::string(), ", ", replayed,
              " journaled reading(s) replayed",
              skipped > 0 ? ", " + std::to_string(skipped) + " skipped" : "");
    }
    if (replayed > 0 || skipped > 0) (void)pipelines_->Checkpoint();
    return Status::Ok();
  }

  // Once a second, processing time reaches the pipelines, so windows of a
  // quiet source still close; every kCheckpointTicks, a checkpoint. When a
  // batch left windows due (a commit takes a few hundred results) and no
  // reading has come for kQuietBeforeTick, the rest close now: the next
  // batch would have taken them, but after a source's last readings there is
  // none, and they waited up to a second.
  void Tick() {
    static constexpr int kCheckpointTicks = 10;
    static constexpr Millis kQuietBeforeTick{10};
    int ticks = 0;
    SteadyTime next = clock_.Now() + Millis(1000);
    std::unique_lock<std::mutex> lock(tick_mu_);
    while (!stopping_) {
      const bool holding = pipelines_->HoldsOutput();
      clock_.WaitUntil(lock, tick_wake_, holding ? std::min(next, clock_.Now() + kQuietBeforeTick) : next);
      if (stopping_) break;
      const SteadyTime now = clock_.Now();
      const bool due = now >= next;
      const bool quiet = pipelines_->HoldsOutput() &&
                         now.time_since_epoch() - Millis(pipelines_->last_process_ms()) >= kQuietBeforeTick;
      if (!due && !quiet) continue;
      lock.unlock();
      (void)pipelines_->Tick(ToEpochMillis(clock_.WallNow()));
      if (due) {
        next = clock_.Now() + Millis(1000);
        if (++ticks % kCheckpointTicks == 0) (void)pipelines_->Checkpoint();
      }
      lock.lock();
    }
  }

  int SourceIndex(const std::string& name) const {
    for (size_t i = 0; i < config_.sources.size(); ++i) {
      if (config_.sources[i].name == name) return static_cast<int>(i);
    }
    return -1;
  }

  const config::Config config_;
  const Clock& clock_;
  std::unique_ptr<Store> store_;  // before the sinks and pipelines that use it
  std::vector<std::unique_ptr<SinkSlot>> sinks_;
  std::unique_ptr<PipelineRunner> pipelines_;
  std::vector<std::unique_ptr<MqttSource>> sources_;
  std::thread ticker_;
  std::mutex tick_mu_;
  std::condition_variable tick_wake_;
  bool stopping_ = false;
  bool shut_down_ = false;
  const int64_t started_ms_ = ToEpochMillis(clock_.WallNow());
  const SteadyTime started_at_ = clock_.Now();
};

StatusOr<std::unique_ptr<Agent>> Agent::Create(const config::Config& config,
                                               const sinks::SinkRegistry& sinks,
                                               const Clock& clock) {
  auto impl = std::make_unique<Impl>(config, clock);
  RETURN_IF_ERROR(impl->Build(sinks));
  return std::unique_ptr<Agent>(new Agent(std::move(impl)));
}

Agent::Agent(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Agent::~Agent() { impl_->Shutdown(); }
void Agent::Start() { impl_->Start(); }
void Agent::Shutdown(StopFor reason) { impl_->Shutdown(reason); }
bool Agent::Responsive() const { return impl_->Responsive(); }
std::string Agent::StatusLine() const { return impl_->StatusLine(); }
AgentSnapshot Agent::Snapshot(bool scan_store) const { return impl_->Snapshot(scan_store); }

}  // namespace sluice::agent

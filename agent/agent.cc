#include "agent/agent.h"

#include <thread>

#include "agent/mqtt_source.h"
#include "agent/pipeline_runner.h"
#include "operators/decode.h"
#include "operators/operator.h"
#include "platform/dead_letter.h"
#include "platform/fs.h"
#include "platform/log.h"
#include "platform/outbox.h"
#include "sinks/delivery.h"

namespace sluice::agent {
namespace {

// Records a sink may hold in memory before the pipelines wait for it.
constexpr size_t kSinkQueueRecords = 10000;

operators::TimeUnit ToDecoderUnit(config::TimeUnit unit) {
  switch (unit) {
    case config::TimeUnit::kSeconds: return operators::TimeUnit::kSeconds;
    case config::TimeUnit::kMillis: return operators::TimeUnit::kMillis;
    case config::TimeUnit::kMicros: return operators::TimeUnit::kMicros;
    case config::TimeUnit::kNanos: return operators::TimeUnit::kNanos;
    case config::TimeUnit::kRfc3339: return operators::TimeUnit::kRfc3339;
  }
  return operators::TimeUnit::kMillis;
}

// What this build cannot run yet: refuse at start, naming the part, instead
// of running a pipeline that silently does less than its config says.
Status CheckSupported(const config::Config& config) {
  for (const config::PipelineConfig& p : config.pipelines) {
    std::string what;
    if (p.window) what = "windowed aggregation (window:)";
    else if (p.alert) what = "alert rules (alert:)";
    else if (!p.aggregates.empty()) what = "aggregates (aggregate:)";
    else if (p.where) what = "filters (where:)";
    else if (!config.FindSource(p.from)) what = "reading from another pipeline (from: " + p.from + ")";
    if (!what.empty()) {
      return Status::Unimplemented(p.pos.file + ":" + std::to_string(p.pos.line) + ":" +
                                   std::to_string(p.pos.column) + ": pipeline '" + p.name +
                                   "' uses " + what +
                                   ", which this version of sluice cannot run yet");
    }
  }
  return Status::Ok();
}

}  // namespace

class Agent::Impl {
 public:
  Impl(const config::Config& config, const Clock& clock) : config_(config), clock_(clock) {}

  Status Build(const sinks::SinkRegistry& registry) {
    RETURN_IF_ERROR(CheckSupported(config_));
    RETURN_IF_ERROR(CreateDirectories(config_.agent.data_dir).WithContext("agent.data_dir"));
    ASSIGN_OR_RETURN(dead_letters_,
                     OpenDeadLetterFile(config_.agent.data_dir + "/dead-letter.jsonl"));

    std::vector<SinkQueue*> queue_ptrs;
    for (const config::SinkConfig& sc : config_.sinks) {
      ASSIGN_OR_RETURN(auto sink, registry.Create(sc));
      auto slot = std::make_unique<SinkSlot>();
      slot->name = sc.name;
      slot->sink = std::move(sink);
      slot->queue = NewMemoryQueue(kSinkQueueRecords, clock_);
      slot->loop = std::make_unique<sinks::DeliveryLoop>(sc.name, *slot->sink, *slot->queue,
                                                          *dead_letters_, clock_);
      queue_ptrs.push_back(slot->queue.get());
      sinks_.push_back(std::move(slot));
    }

    std::vector<std::unique_ptr<PipelineRuntime>> pipelines;
    for (const config::PipelineConfig& pc : config_.pipelines) {
      auto p = std::make_unique<PipelineRuntime>();
      p->name = pc.name;
      p->source = SourceIndex(pc.from);
      p->op = operators::NewPassthrough({config_.agent.id, pc.name});
      for (const std::string& to : pc.to) p->sinks.push_back(SinkIndex(to));
      pipelines.push_back(std::move(p));
    }
    pipelines_ = std::make_unique<PipelineRunner>(std::move(pipelines), std::move(queue_ptrs));

    for (size_t i = 0; i < config_.sources.size(); ++i) {
      const config::SourceConfig& sc = config_.sources[i];
      ASSIGN_OR_RETURN(auto source,
                       MqttSource::Create(sc, static_cast<int>(i), DecodeOptionsFor(sc), *pipelines_,
                                          *dead_letters_, clock_));
      sources_.push_back(std::move(source));
    }
    return Status::Ok();
  }

  void Start() {
    for (auto& slot : sinks_) {
      sinks::DeliveryLoop* loop = slot->loop.get();
      slot->thread = std::thread([loop] { loop->Run(); });
    }
    for (auto& source : sources_) source->Start();
    LogInfo("agent '", config_.agent.id, "' running: ", sources_.size(), " source(s), ",
            config_.pipelines.size(), " pipeline(s), ", sinks_.size(), " sink(s)");
  }

  void Shutdown() {
    if (shut_down_) return;
    shut_down_ = true;
    LogInfo("stopping: no new readings; finishing in-flight work");
    for (auto& source : sources_) source->Stop();
    pipelines_->Close();
    SteadyTime deadline = clock_.Now() + config_.agent.shutdown_grace;
    for (auto& slot : sinks_) slot->loop->Stop(deadline);
    size_t left = 0;
    for (auto& slot : sinks_) {
      if (slot->thread.joinable()) slot->thread.join();
      slot->queue->Close();
      size_t n = slot->queue->size();
      if (n > 0) {
        LogWarn("sink '", slot->name, "': ", n, " record(s) not delivered within the grace period of ",
                config_.agent.shutdown_grace.count(), " ms");
      }
      left += n;
    }
    LogInfo("stopped", left == 0 ? "; every record delivered" : "");
  }

 private:
  struct SinkSlot {
    std::string name;
    std::unique_ptr<sinks::Sink> sink;
    std::unique_ptr<SinkQueue> queue;
    std::unique_ptr<sinks::DeliveryLoop> loop;
    std::thread thread;
  };

  int SourceIndex(const std::string& name) const {
    for (size_t i = 0; i < config_.sources.size(); ++i) {
      if (config_.sources[i].name == name) return static_cast<int>(i);
    }
    return -1;
  }

  int SinkIndex(const std::string& name) const {
    for (size_t i = 0; i < config_.sinks.size(); ++i) {
      if (config_.sinks[i].name == name) return static_cast<int>(i);
    }
    return -1;
  }

  operators::DecodeOptions DecodeOptionsFor(const config::SourceConfig& sc) const {
    operators::DecodeOptions d;
    if (sc.time) {
      d.time_field = sc.time->field;
      d.time_unit = ToDecoderUnit(sc.time->unit);
    }
    if (!sc.topic_fields.empty()) {
      auto pattern = operators::TopicPattern::Parse(sc.topic_fields);
      if (pattern.ok()) d.topic_fields = *pattern;  // validated at load
    }
    // Every pipeline of this build passes readings through whole.
    d.projection = operators::Projection::All();
    return d;
  }

  const config::Config config_;
  const Clock& clock_;
  std::unique_ptr<DeadLetterStore> dead_letters_;
  std::vector<std::unique_ptr<SinkSlot>> sinks_;
  std::unique_ptr<PipelineRunner> pipelines_;
  std::vector<std::unique_ptr<MqttSource>> sources_;
  bool shut_down_ = false;
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
void Agent::Shutdown() { impl_->Shutdown(); }

}  // namespace sluice::agent

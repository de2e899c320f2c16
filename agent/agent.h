// Agent: sources, pipelines and sinks of one config, wired and running.
//
//   ASSIGN_OR_RETURN(auto agent, Agent::Create(config, registry, RealClock()));
//   agent->Start();
//   ...                       // until SIGTERM
//   agent->Shutdown();        // stop intake, finish in-flight work, drain
#ifndef SLUICE_AGENT_AGENT_H_
#define SLUICE_AGENT_AGENT_H_

#include <memory>
#include <string>

#include "config/config.h"
#include "platform/clock.h"
#include "platform/status.h"
#include "sinks/sink.h"

namespace sluice::agent {

struct AgentSnapshot;  // agent/metrics.h

class Agent {
 public:
  // Refuses, with a message naming the part, configs that use what this
  // build cannot run yet. Creates the data directory.
  static StatusOr<std::unique_ptr<Agent>> Create(const config::Config& config,
                                                 const sinks::SinkRegistry& sinks,
                                                 const Clock& clock);
  ~Agent();

  void Start();

  // Stops the sources (no new readings), lets the pipelines finish what they
  // took, checkpoints, and gives the sinks until agent.shutdown_grace to
  // deliver (for a reload at most 1 s: what is queued stays queued for the
  // agent that follows).
  enum class StopFor { kExit, kReload };
  void Shutdown(StopFor reason = StopFor::kExit);

  // For the service watchdog: the pipelines make progress (or knowingly
  // wait for disk space or queue room). Thread-safe.
  bool Responsive() const;
  // Live figures for systemd's STATUS= line. Thread-safe.
  std::string StatusLine() const;
  // Live figures for the metrics and status endpoint, read without the
  // pipelines' lock; `scan_store` adds the journal and dead-letter figures
  // (a table scan each). Thread-safe.
  AgentSnapshot Snapshot(bool scan_store) const;

  class Impl;

 private:
  explicit Agent(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::agent

#endif  // SLUICE_AGENT_AGENT_H_

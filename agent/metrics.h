// Metrics and health: what the agent's HTTP endpoint serves.
//
// AgentSnapshot holds the live figures of one agent (Agent::Snapshot fills
// it, reading counters and the store's queue figures, never taking the
// pipelines' lock). The functions below turn it into the routes' bodies:
//
//   /metrics  FormatPrometheus: text exposition format 0.0.4, `sluice_` names
//   /healthz  200 "ok" while the pipelines make progress (Agent::Responsive)
//   /readyz   CheckReadiness: every source connected and the store writable
//   /status   FormatStatusJson: sources, pipelines, sinks, alerts, agent
//
//   AgentHttp http(config.agent.http, agent.get());  // see AgentHttp
#ifndef SLUICE_AGENT_METRICS_H_
#define SLUICE_AGENT_METRICS_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/http_endpoint.h"
#include "operators/operator.h"
#include "platform/dead_letter.h"
#include "platform/store.h"
#include "sinks/delivery.h"

namespace sluice::agent {

class Agent;

struct AgentSnapshot {
  std::string agent_id;
  int64_t now_ms = 0;          // wall clock, epoch ms
  int64_t started_ms = 0;      // wall clock when this Agent was built (a reload builds another)
  double uptime_seconds = 0;   // steady clock since then
  bool responsive = true;      // Agent::Responsive()

  struct Source {
    std::string name;
    uint64_t messages = 0;
    uint64_t bytes = 0;  // payload bytes
    uint64_t decode_errors = 0;
    uint64_t retained_skipped = 0;  // the broker's stored copies, sent at subscribe
    bool connected = false;
  };
  std::vector<Source> sources;

  struct Pipeline {
    std::string name;
    uint64_t readings = 0;  // records in
    uint64_t outputs = 0;   // records emitted
    uint64_t errors = 0;    // operator errors
    operators::OperatorStats op;  // as of the last tick (about a second old)
  };
  std::vector<Pipeline> pipelines;

  struct Sink {
    std::string name;
    std::string type;
    std::optional<QueueStats> queue;  // nullopt: the store could not say
    uint64_t retried = 0;
    uint64_t dead_lettered = 0;
    sinks::SinkHealth health;
  };
  std::vector<Sink> sinks;

  struct StoreFigures {
    bool writable = true;           // commits succeed (no disk full / I/O error retry)
    int64_t last_checkpoint_ms = 0;  // 0: none
    std::optional<Store::JournalStats> journal;  // nullopt: not queried (or failed)
    std::optional<DeadLetterStats> dead_letters;
    std::string error;              // a store query that failed, for /status
  };
  StoreFigures store;
};

// Figures of this process, from /proc/self/statm and getrusage.
struct ProcessFigures {
  std::optional<uint64_t> resident_bytes;
  double cpu_seconds = 0;                   // user + system
  std::optional<double> start_time_seconds;  // since the epoch; kept across reloads
};
ProcessFigures ReadProcessFigures();

// A label value as the exposition format wants it: \ " and newline escaped.
std::string EscapeLabelValue(std::string_view value);

// The text exposition format (0.0.4) of every figure in `snapshot`.
std::string FormatPrometheus(const AgentSnapshot& snapshot, const ProcessFigures& process);

struct Readiness {
  bool ready = true;
  std::string reason;  // why not, one line per cause
};
// Ready: responsive, every source connected, the store writable.
Readiness CheckReadiness(const AgentSnapshot& snapshot);

// The /status document (see README, "Metrics and health").
std::string FormatStatusJson(const AgentSnapshot& snapshot);

// The endpoint of the running agent, across reloads: serves the routes
// above on agent.http. A SIGHUP reload replaces the Agent object, so the
// main loop Detach()es it before and Attach()es the next one after; in
// between every route answers 503. Figures that cost the store a table scan
// (journal, dead letters) are refreshed at most every `scan_interval`, the
// rest on every request.
//
//   AgentHttp http(config.agent.http, agent.get());
//   http.Detach("the agent is reloading its config");  agent = Reload(...);  http.Attach(config.agent.http, agent.get());
class AgentHttp {
 public:
  // Serves unless `address` is "off". When it cannot bind (port taken, bad
  // host) it logs an error naming the address and serves nothing: the agent
  // collects data without its metrics rather than not at all.
  AgentHttp(const std::string& address, const Agent* agent,
            Millis scan_interval = Millis(10000));
  ~AgentHttp();  // stops serving before the members go
  AgentHttp(const AgentHttp&) = delete;
  AgentHttp& operator=(const AgentHttp&) = delete;

  // Waits for a request in progress, then answers 503 with `why` ("the
  // agent is reloading its config") until Attach().
  void Detach(std::string why);
  // Serves `agent` from now on; binds again when `address` changed.
  void Attach(const std::string& address, const Agent* agent);

  bool serving() const { return endpoint_ != nullptr; }

 private:
  void Listen(const std::string& address);
  HttpResponse Handle(const HttpRequest& request);

  std::mutex mu_;  // the handler's thread and Attach/Detach
  const Agent* agent_ = nullptr;  // guarded by mu_
  std::string detached_why_;      // guarded by mu_
  std::string address_;
  const Millis scan_interval_;
  std::optional<SteadyTime> last_scan_;  // guarded by mu_
  AgentSnapshot::StoreFigures scanned_;  // guarded by mu_: the last scan's figures
  std::unique_ptr<HttpEndpoint> endpoint_;  // last: stopped first
};

}  // namespace sluice::agent

#endif  // SLUICE_AGENT_METRICS_H_

#include "agent/metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "agent/agent.h"
#include "platform/build_info.h"
#include "platform/log.h"

namespace sluice::agent {
namespace {

using Labels = std::vector<std::pair<std::string_view, std::string_view>>;

std::string FormatNumber(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // Whole numbers as integers ("1000000", not the shortest form "1e+06").
  if (v == std::trunc(v) && std::fabs(v) < 9007199254740992.0) {
    return std::to_string(static_cast<int64_t>(v));
  }
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, v);
  if (ec != std::errc()) return "NaN";
  return std::string(buffer, end);
}

// HELP text: backslash and newline escaped (the format's rule for HELP).
std::string EscapeHelp(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// Builds one exposition: every family's HELP and TYPE once, then its samples.
class Exposition {
 public:
  void Family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += EscapeHelp(help);
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  void Sample(std::string_view name, const Labels& labels, double value) {
    out_ += name;
    if (!labels.empty()) {
      out_ += '{';
      for (size_t i = 0; i < labels.size(); ++i) {
        if (i > 0) out_ += ',';
        out_ += labels[i].first;
        out_ += "=\"";
        out_ += EscapeLabelValue(labels[i].second);
        out_ += '"';
      }
      out_ += '}';
    }
    out_ += ' ';
    out_ += FormatNumber(value);
    out_ += '\n';
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

double Seconds(int64_t ms) { return static_cast<double>(ms) / 1000.0; }
double AsDouble(uint64_t v) { return static_cast<double>(v); }

std::string ReadWholeFile(const char* path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The process's start from /proc (boot time + start ticks), as Prometheus'
// own client libraries compute process_start_time_seconds.
std::optional<double> ProcessStartSeconds() {
  const std::string stat = ReadWholeFile("/proc/self/stat");
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return std::nullopt;
  std::istringstream fields(stat.substr(paren + 1));
  std::string field;
  // After "pid (comm)" come fields 3..; starttime is field 22.
  for (int i = 3; i <= 22; ++i) {
    if (!(fields >> field)) return std::nullopt;
  }
  const double start_ticks = std::strtod(field.c_str(), nullptr);
  const std::string proc_stat = ReadWholeFile("/proc/stat");
  const size_t at = proc_stat.find("\nbtime ");
  if (at == std::string::npos) return std::nullopt;
  const double boot = std::strtod(proc_stat.c_str() + at + 7, nullptr);
  const long ticks = ::sysconf(_SC_CLK_TCK);
  if (ticks <= 0 || boot <= 0) return std::nullopt;
  return boot + start_ticks / static_cast<double>(ticks);
}

// Whole milliseconds: the start time is only known to a clock tick anyway.
double UptimeSeconds(int64_t now_ms, const ProcessFigures& process) {
  const double ms = std::round(static_cast<double>(now_ms) - *process.start_time_seconds * 1000.0);
  return std::max(0.0, ms / 1000.0);
}

const char* SinkHealthWord(const AgentSnapshot::Sink& sink) {
  if (sink.health.failing) return "failing";
  if (sink.health.refusing) return "refusing";
  if (sink.health.connected.has_value() && !*sink.health.connected) return "disconnected";
  return "ok";
}

}  // namespace

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

ProcessFigures ReadProcessFigures() {
  ProcessFigures p;
  std::istringstream statm(ReadWholeFile("/proc/self/statm"));
  uint64_t size_pages = 0, resident_pages = 0;
  if (statm >> size_pages >> resident_pages) {
    p.resident_bytes = resident_pages * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  }
  rusage usage{};
  if (::getrusage(RUSAGE_SELF, &usage) == 0) {
    p.cpu_seconds = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                    static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  }
  // Fixed for the process's life: read once.
  static const std::optional<double> start = ProcessStartSeconds();
  p.start_time_seconds = start;
  return p;
}

std::string FormatPrometheus(const AgentSnapshot& s, const ProcessFigures& process) {
  Exposition e;
  // --- sources
  e.Family("sluice_source_messages_total", "counter", "MQTT messages received by the source.");
  for (const auto& src : s.sources) {
    e.Sample("sluice_source_messages_total", {{"source", src.name}}, AsDouble(src.messages));
  }
  e.Family("sluice_source_received_bytes_total", "counter",
           "Payload bytes of the MQTT messages received by the source.");
  for (const auto& src : s.sources) {
    e.Sample("sluice_source_received_bytes_total", {{"source", src.name}}, AsDouble(src.bytes));
  }
  e.Family("sluice_source_decode_errors_total", "counter",
           "Payloads that did not decode (each is dead-lettered with its reason).");
  for (const auto& src : s.sources) {
    e.Sample("sluice_source_decode_errors_total", {{"source", src.name}},
             AsDouble(src.decode_errors));
  }
  e.Family("sluice_source_retained_skipped_total", "counter",
           "Retained copies the broker sent at subscribe time, not taken as readings.");
  for (const auto& src : s.sources) {
    e.Sample("sluice_source_retained_skipped_total", {{"source", src.name}},
             AsDouble(src.retained_skipped));
  }
  e.Family("sluice_source_connected", "gauge", "1 while the source is connected to its broker.");
  for (const auto& src : s.sources) {
    e.Sample("sluice_source_connected", {{"source", src.name}}, src.connected ? 1 : 0);
  }

  // --- pipelines
  struct PipelineCounter {
    const char* name;
    const char* type;
    const char* help;
    uint64_t (*get)(const AgentSnapshot::Pipeline&);
  };
  const PipelineCounter pipeline_figures[] = {
      {"sluice_pipeline_readings_total", "counter", "Records that entered the pipeline.",
       [](const AgentSnapshot::Pipeline& p) { return p.readings; }},
      {"sluice_pipeline_outputs_total", "counter", "Output records the pipeline emitted.",
       [](const AgentSnapshot::Pipeline& p) { return p.outputs; }},
      {"sluice_pipeline_errors_total", "counter", "Records on which the pipeline's operator failed.",
       [](const AgentSnapshot::Pipeline& p) { return p.errors; }},
      {"sluice_pipeline_late_total", "counter",
       "Records too late for their window (dead-lettered). Since the agent started.",
       [](const AgentSnapshot::Pipeline& p) { return p.op.late; }},
      {"sluice_pipeline_filtered_total", "counter",
       "Records the pipeline's where expression dropped. Since the agent started.",
       [](const AgentSnapshot::Pipeline& p) { return p.op.filtered; }},
      {"sluice_pipeline_unmatched_total", "counter",
       "Expressions false because a field was missing or of another type.",
       [](const AgentSnapshot::Pipeline& p) { return p.op.unmatched; }},
      {"sluice_pipeline_open_windows", "gauge", "Windows open now.",
       [](const AgentSnapshot::Pipeline& p) { return p.op.open_windows; }},
      {"sluice_pipeline_keys", "gauge", "Group or alert keys holding state.",
       [](const AgentSnapshot::Pipeline& p) { return p.op.keys; }},
      {"sluice_pipeline_alerts_firing", "gauge", "Alerts firing now.",
       [](const AgentSnapshot::Pipeline& p) { return p.op.firing; }},
      {"sluice_pipeline_state_bytes", "gauge", "Approximate memory held by window and alert state.",
       [](const AgentSnapshot::Pipeline& p) { return p.op.state_bytes; }},
  };
  for (const PipelineCounter& f : pipeline_figures) {
    e.Family(f.name, f.type, f.help);
    for (const auto& p : s.pipelines) e.Sample(f.name, {{"pipeline", p.name}}, AsDouble(f.get(p)));
  }

  // --- sinks: the queue's figures come from the store (durable across restarts)
  struct QueueFigure {
    const char* name;
    const char* type;
    const char* help;
    uint64_t (*get)(const QueueStats&);
  };
  const QueueFigure queue_figures[] = {
      {"sluice_sink_queued_records", "gauge", "Records waiting in the sink's outbox.",
       [](const QueueStats& q) { return q.records; }},
      {"sluice_sink_queued_bytes", "gauge", "Body bytes of the records waiting in the outbox.",
       [](const QueueStats& q) { return q.bytes; }},
      {"sluice_sink_appended_records_total", "counter", "Records ever queued for the sink.",
       [](const QueueStats& q) { return q.appended; }},
      {"sluice_sink_delivered_records_total", "counter",
       "Records the upstream confirmed (then removed from the outbox).",
       [](const QueueStats& q) { return q.delivered; }},
  };
  for (const QueueFigure& f : queue_figures) {
    e.Family(f.name, f.type, f.help);
    for (const auto& sink : s.sinks) {
      if (sink.queue) e.Sample(f.name, {{"sink", sink.name}}, AsDouble(f.get(*sink.queue)));
    }
  }
  e.Family("sluice_sink_oldest_record_age_seconds", "gauge",
           "Age of the oldest record in the outbox; 0 when it is empty.");
  for (const auto& sink : s.sinks) {
    if (!sink.queue) continue;
    const int64_t age_ms = sink.queue->records > 0 && sink.queue->oldest_ms > 0
                               ? std::max<int64_t>(0, s.now_ms - sink.queue->oldest_ms)
                               : 0;
    e.Sample("sluice_sink_oldest_record_age_seconds", {{"sink", sink.name}}, Seconds(age_ms));
  }
  e.Family("sluice_sink_dropped_records_total", "counter",
           "Records dropped at the buffer's cap, by overflow policy.");
  for (const auto& sink : s.sinks) {
    if (!sink.queue) continue;
    e.Sample("sluice_sink_dropped_records_total", {{"sink", sink.name}, {"reason", "drop_oldest"}},
             AsDouble(sink.queue->dropped_oldest));
    e.Sample("sluice_sink_dropped_records_total", {{"sink", sink.name}, {"reason", "drop_newest"}},
             AsDouble(sink.queue->dropped_newest));
  }
  e.Family("sluice_sink_retries_total", "counter",
           "Failed delivery attempts that will be retried. Since the agent started.");
  for (const auto& sink : s.sinks) {
    e.Sample("sluice_sink_retries_total", {{"sink", sink.name}}, AsDouble(sink.retried));
  }
  e.Family("sluice_sink_dead_lettered_records_total", "counter",
           "Records the upstream refused for good (dead-lettered). Since the agent started.");
  for (const auto& sink : s.sinks) {
    e.Sample("sluice_sink_dead_lettered_records_total", {{"sink", sink.name}},
             AsDouble(sink.dead_lettered));
  }
  if (std::any_of(s.sinks.begin(), s.sinks.end(),
                  [](const AgentSnapshot::Sink& sink) { return sink.health.connected.has_value(); })) {
    e.Family("sluice_sink_connected", "gauge",
             "1 while the sink is connected upstream (sinks that keep a connection only).");
  }
  for (const auto& sink : s.sinks) {
    if (sink.health.connected) {
      e.Sample("sluice_sink_connected", {{"sink", sink.name}}, *sink.health.connected ? 1 : 0);
    }
  }
  e.Family("sluice_sink_last_success_timestamp_seconds", "gauge",
           "When the upstream last confirmed a batch (Unix time); 0 never.");
  for (const auto& sink : s.sinks) {
    e.Sample("sluice_sink_last_success_timestamp_seconds", {{"sink", sink.name}},
             Seconds(sink.health.last_success_ms));
  }
  e.Family("sluice_sink_failing", "gauge",
           "1 while the last delivery attempt failed and is being retried.");
  for (const auto& sink : s.sinks) {
    e.Sample("sluice_sink_failing", {{"sink", sink.name}}, sink.health.failing ? 1 : 0);
  }

  // --- store
  e.Family("sluice_store_writable", "gauge",
           "1 while the store takes commits; 0 while a commit fails and is retried (disk full, "
           "I/O error) and intake is held.");
  e.Sample("sluice_store_writable", {}, s.store.writable ? 1 : 0);
  if (s.store.journal) {
    e.Family("sluice_store_journal_readings", "gauge",
             "Readings in the ingest journal not yet covered by a checkpoint.");
    e.Sample("sluice_store_journal_readings", {}, AsDouble(s.store.journal->readings));
    e.Family("sluice_store_journal_bytes", "gauge", "Payload bytes of those readings.");
    e.Sample("sluice_store_journal_bytes", {}, AsDouble(s.store.journal->bytes));
  }
  if (s.store.last_checkpoint_ms > 0) {
    e.Family("sluice_store_checkpoint_age_seconds", "gauge",
             "Time since the last checkpoint of window and alert state.");
    e.Sample("sluice_store_checkpoint_age_seconds", {},
             Seconds(std::max<int64_t>(0, s.now_ms - s.store.last_checkpoint_ms)));
  }
  if (s.store.dead_letters) {
    e.Family("sluice_store_dead_letters", "gauge", "Dead letters kept in the store.");
    e.Sample("sluice_store_dead_letters", {}, AsDouble(s.store.dead_letters->letters));
    e.Family("sluice_store_dead_letter_bytes", "gauge", "Bytes of the dead letters kept.");
    e.Sample("sluice_store_dead_letter_bytes", {}, AsDouble(s.store.dead_letters->bytes));
    e.Family("sluice_store_dead_letters_dropped_total", "counter",
             "Dead letters deleted, oldest first, to stay under the cap.");
    e.Sample("sluice_store_dead_letters_dropped_total", {}, AsDouble(s.store.dead_letters->dropped));
  }

  // --- agent and process
  e.Family("sluice_agent_responsive", "gauge",
           "1 while the pipelines make progress (what /healthz and the watchdog check).");
  e.Sample("sluice_agent_responsive", {}, s.responsive ? 1 : 0);
  e.Family("sluice_agent_info", "gauge", "The agent's id (agent.id); always 1.");
  e.Sample("sluice_agent_info", {{"id", s.agent_id}}, 1);
  e.Family("sluice_build_info", "gauge", "The sluice build; always 1.");
  e.Sample("sluice_build_info",
           {{"version", build_info::kVersion},
            {"revision", build_info::kGitRevision},
            {"arch", build_info::kTargetArch}},
           1);
  if (process.resident_bytes) {
    e.Family("sluice_process_resident_memory_bytes", "gauge", "Resident memory of the process.");
    e.Sample("sluice_process_resident_memory_bytes", {}, AsDouble(*process.resident_bytes));
  }
  e.Family("sluice_process_cpu_seconds_total", "counter", "User and system CPU time of the process.");
  e.Sample("sluice_process_cpu_seconds_total", {}, process.cpu_seconds);
  if (process.start_time_seconds) {
    e.Family("sluice_process_start_time_seconds", "gauge", "When the process started (Unix time).");
    e.Sample("sluice_process_start_time_seconds", {}, *process.start_time_seconds);
    e.Family("sluice_process_uptime_seconds", "gauge", "Time since the process started.");
    e.Sample("sluice_process_uptime_seconds", {}, UptimeSeconds(s.now_ms, process));
  }
  return e.Take();
}

Readiness CheckReadiness(const AgentSnapshot& s) {
  Readiness r;
  auto fail = [&](const std::string& why) {
    r.ready = false;
    r.reason += why + "\n";
  };
  if (!s.responsive) fail("the pipelines have made no progress for 10 s");
  for (const auto& src : s.sources) {
    if (!src.connected) fail("source '" + src.name + "' is not connected to its broker");
  }
  if (!s.store.writable) {
    fail("the store cannot commit (disk full or I/O error): intake is held until it can");
  }
  return r;
}

std::string FormatStatusJson(const AgentSnapshot& s) {
  using nlohmann::json;
  const ProcessFigures process = ReadProcessFigures();
  const Readiness readiness = CheckReadiness(s);
  json doc;
  doc["agent"] = {
      {"id", s.agent_id},
      {"version", build_info::kVersion},
      {"revision", build_info::kGitRevision},
      {"arch", build_info::kTargetArch},
      {"uptime_seconds", process.start_time_seconds ? UptimeSeconds(s.now_ms, process)
                                                    : s.uptime_seconds},
      {"config_loaded_at", s.started_ms},
      {"responsive", s.responsive},
      {"ready", readiness.ready},
      {"not_ready_reason", readiness.reason},
  };
  json sources = json::array();
  for (const auto& src : s.sources) {
    sources.push_back({{"name", src.name},
                       {"connected", src.connected},
                       {"messages", src.messages},
                       {"bytes", src.bytes},
                       {"decode_errors", src.decode_errors},
                       {"retained_skipped", src.retained_skipped}});
  }
  doc["sources"] = std::move(sources);
  json pipelines = json::array();
  uint64_t firing = 0;
  json firing_by_pipeline = json::object();
  for (const auto& p : s.pipelines) {
    pipelines.push_back({{"name", p.name},
                         {"readings", p.readings},
                         {"outputs", p.outputs},
                         {"errors", p.errors},
                         {"late", p.op.late},
                         {"filtered", p.op.filtered},
                         {"open_windows", p.op.open_windows},
                         {"keys", p.op.keys},
                         {"alerts_firing", p.op.firing}});
    firing += p.op.firing;
    if (p.op.firing > 0) firing_by_pipeline[p.name] = p.op.firing;
  }
  doc["pipelines"] = std::move(pipelines);
  json sinks = json::array();
  for (const auto& sink : s.sinks) {
    json j = {{"name", sink.name},
              {"type", sink.type},
              {"health", SinkHealthWord(sink)},
              {"retried", sink.retried},
              {"dead_lettered", sink.dead_lettered},
              {"failing", sink.health.failing},
              {"connected", sink.health.connected ? json(*sink.health.connected) : json(nullptr)},
              {"last_success", sink.health.last_success_ms > 0 ? json(sink.health.last_success_ms)
                                                               : json(nullptr)},
              {"last_error", sink.health.last_error.empty() ? json(nullptr)
                                                            : json(sink.health.last_error)},
              {"last_error_at", sink.health.last_error_ms > 0 ? json(sink.health.last_error_ms)
                                                              : json(nullptr)}};
    if (sink.queue) {
      j["queued_records"] = sink.queue->records;
      j["queued_bytes"] = sink.queue->bytes;
      j["oldest_age_seconds"] =
          sink.queue->records > 0 && sink.queue->oldest_ms > 0
              ? Seconds(std::max<int64_t>(0, s.now_ms - sink.queue->oldest_ms))
              : 0.0;
      j["appended"] = sink.queue->appended;
      j["delivered"] = sink.queue->delivered;
      j["dropped_oldest"] = sink.queue->dropped_oldest;
      j["dropped_newest"] = sink.queue->dropped_newest;
    }
    sinks.push_back(std::move(j));
  }
  doc["sinks"] = std::move(sinks);
  doc["alerts_firing"] = {{"total", firing}, {"by_pipeline", std::move(firing_by_pipeline)}};
  json store = {{"writable", s.store.writable},
                {"last_checkpoint", s.store.last_checkpoint_ms > 0
                                        ? json(s.store.last_checkpoint_ms)
                                        : json(nullptr)}};
  if (s.store.journal) {
    store["journal_readings"] = s.store.journal->readings;
    store["journal_bytes"] = s.store.journal->bytes;
  }
  if (s.store.dead_letters) {
    store["dead_letters"] = s.store.dead_letters->letters;
    store["dead_letters_dropped"] = s.store.dead_letters->dropped;
  }
  if (!s.store.error.empty()) store["error"] = s.store.error;
  doc["store"] = std::move(store);
  // Names and error texts may hold any bytes: never throw on invalid UTF-8.
  return doc.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

// ------------------------------------------------------------------ AgentHttp

AgentHttp::AgentHttp(const std::string& address, const Agent* agent, Millis scan_interval)
    : agent_(agent), scan_interval_(scan_interval) {
  Listen(address);
}

AgentHttp::~AgentHttp() { endpoint_.reset(); }

void AgentHttp::Listen(const std::string& address) {
  address_ = address;
  endpoint_.reset();
  if (address == "off") return;
  auto endpoint = HttpEndpoint::Start(address, [this](const HttpRequest& r) { return Handle(r); });
  if (!endpoint.ok()) {
    LogError("agent.http: ", endpoint.status().message(),
             "; running without the metrics and health endpoint");
    return;
  }
  endpoint_ = std::move(*endpoint);
  LogInfo("agent.http: serving /metrics, /healthz, /readyz and /status on ", address);
}

void AgentHttp::Detach(std::string why) {
  std::lock_guard<std::mutex> lock(mu_);
  agent_ = nullptr;
  detached_why_ = std::move(why);
}

void AgentHttp::Attach(const std::string& address, const Agent* agent) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    agent_ = agent;
    last_scan_.reset();  // another store view: scan again on the next request
  }
  if (address != address_) Listen(address);  // joins the old thread: never under mu_
}

HttpResponse AgentHttp::Handle(const HttpRequest& request) {
  HttpResponse r;
  const std::string& path = request.path;
  if (path != "/metrics" && path != "/healthz" && path != "/readyz" && path != "/status") {
    r.status = path == "/" ? 200 : 404;
    r.body = std::string(path == "/" ? "" : "not found: " + path + "\n") +
             "sluice agent: /metrics (Prometheus), /healthz, /readyz, /status (JSON)\n";
    return r;
  }
  std::optional<AgentSnapshot> snapshot;
  bool responsive = false;
  {
    // Held while reading the agent: Detach() waits for it, so a reload
    // never destroys the agent under a request.
    std::lock_guard<std::mutex> lock(mu_);
    if (agent_ == nullptr) {
      r.status = 503;
      r.body = detached_why_ + "\n";
      return r;
    }
    if (path == "/healthz") {
      responsive = agent_->Responsive();
    } else {
      const SteadyTime now = RealClock().Now();
      const bool scan = (path == "/metrics" || path == "/status") &&
                        (!last_scan_ || now - *last_scan_ >= scan_interval_);
      snapshot = agent_->Snapshot(scan);
      if (scan) {
        last_scan_ = now;
        scanned_.journal = snapshot->store.journal;
        scanned_.dead_letters = snapshot->store.dead_letters;
      } else {
        snapshot->store.journal = scanned_.journal;
        snapshot->store.dead_letters = scanned_.dead_letters;
      }
    }
  }
  if (path == "/healthz") {
    r.status = responsive ? 200 : 503;
    r.body = responsive ? "ok\n" : "unresponsive: the pipelines have made no progress for 10 s\n";
  } else if (path == "/readyz") {
    Readiness readiness = CheckReadiness(*snapshot);
    r.status = readiness.ready ? 200 : 503;
    r.body = readiness.ready ? "ready\n" : readiness.reason;
  } else if (path == "/metrics") {
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = FormatPrometheus(*snapshot, ReadProcessFigures());
  } else {
    r.content_type = "application/json";
    r.body = FormatStatusJson(*snapshot);
  }
  return r;
}

}  // namespace sluice::agent

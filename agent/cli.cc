#include "agent/cli.h"

#include <CLI/CLI.hpp>
#include <csignal>
#include <iostream>

#include "agent/agent.h"
#include "agent/buffer_cli.h"
#include "agent/metrics.h"
#include "agent/offline.h"
#include "agent/pipeline_factory.h"
#include "agent/simulate.h"
#include "agent/status_cli.h"
#include "config/loader.h"
#include "platform/build_info.h"
#include "platform/log.h"
#include "platform/service_notify.h"
#include "platform/signals.h"
#include "sinks/sink.h"

namespace sluice::agent {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitError = 1;
constexpr int kExitUsage = 2;
constexpr const char* kDefaultConfig = "/etc/sluice/sluice.yaml";

// Loads `path` and compiles its pipelines, printing every diagnostic to stderr.
// Loads and checks a config; every error goes to stderr (`sluice validate`,
// start-up) or, for a reload, to the log.
enum class ReportTo { kStderr, kLog };

StatusOr<config::Config> LoadOrReport(const std::string& path, ReportTo report = ReportTo::kStderr) {
  std::vector<config::Diagnostic> errors;
  auto config = config::LoadConfigFile(path, &errors);
  if (config.ok()) {
    errors = CheckPipelines(*config);
    if (!errors.empty()) config = Status::InvalidArgument(config::FormatDiagnostic(errors[0]));
  }
  if (!config.ok()) {
    std::vector<std::string> lines;
    for (const auto& e : errors) lines.push_back(config::FormatDiagnostic(e));
    if (errors.empty()) lines.push_back(path + ": " + std::string(config.status().message()));
    if (errors.size() > 1) lines.push_back(std::to_string(errors.size()) + " errors in " + path);
    for (const std::string& line : lines) {
      if (report == ReportTo::kLog) {
        LogError(line);
      } else {
        std::cerr << line << "\n";
      }
    }
  }
  return config;
}

// SIGHUP. The new config replaces the running one only if it loads, checks
// and its sinks can be built; otherwise the running agent goes on untouched.
// Replacing is a stop and a start inside the process: the state of every
// window and alert is checkpointed and restored (a pipeline whose definition
// changed starts empty), queues stay in the store under their sink's name,
// so a sink with a new URL delivers what was queued for the old one.
std::unique_ptr<Agent> Reload(const std::string& path, const std::string& log_level_override,
                              config::Config& running_config, std::unique_ptr<Agent> running,
                              const sinks::SinkRegistry& registry, const ServiceNotifier& notifier) {
  LogInfo("SIGHUP: reloading ", path);
  (void)notifier.Send("RELOADING=1\nSTATUS=reloading the config");
  auto refuse = [&](const std::string& why) {
    LogError("reload refused, the running config stays in force: ", why);
    (void)notifier.Send("READY=1\nSTATUS=" + running->StatusLine());
    return std::move(running);
  };
  auto next = LoadOrReport(path, ReportTo::kLog);
  if (!next.ok()) return refuse(std::string(next.status().message()));
  // Built once here so that a sink that cannot be created (a property its
  // library refuses, an unusable URL) refuses the reload before anything stops.
  for (const config::SinkConfig& sc : next->sinks) {
    if (auto sink = registry.Create(sc); !sink.ok()) return refuse(sink.status().ToString());
  }
  if (next->agent.data_dir != running_config.agent.data_dir) {
    return refuse("agent.data_dir changed (" + running_config.agent.data_dir + " -> " +
                  next->agent.data_dir + "); that needs a restart");
  }

  running->Shutdown(Agent::StopFor::kReload);
  running.reset();  // closes the store: the next agent opens it
  auto started = Agent::Create(*next, registry, RealClock());
  if (!started.ok()) {
    LogError("reload failed after stopping (", started.status().ToString(),
             "); going back to the previous config");
    started = Agent::Create(running_config, registry, RealClock());
    if (!started.ok()) {
      LogError("cannot restart on the previous config either: ", started.status().ToString());
      return nullptr;
    }
  } else {
    running_config = std::move(*next);
    auto level = ParseLogLevel(log_level_override.empty() ? running_config.agent.log.level
                                                          : log_level_override);
    if (level.ok()) ConfigureLogging(*level, DetectLogFormat(running_config.agent.log.format));
  }
  (*started)->Start();
  LogInfo("reloaded ", path);
  (void)notifier.Send("READY=1\nSTATUS=" + (*started)->StatusLine());
  return std::move(*started);
}

int Validate(const std::string& path) {
  auto config = LoadOrReport(path);
  if (!config.ok()) return kExitError;
  // What the sinks would refuse at start (a property librdkafka does not
  // know, a header that breaks requests), without building them.
  sinks::SinkRegistry registry;
  sinks::RegisterBuiltins(registry);
  int refused = 0;
  for (const config::SinkConfig& sink : config->sinks) {
    if (Status s = registry.Check(sink); !s.ok()) {
      std::cerr << path << ": " << s.message() << "\n";
      ++refused;
    }
  }
  if (refused > 1) std::cerr << refused << " errors in " << path << "\n";
  if (refused > 0) return kExitError;
  std::cout << path << ": OK (" << config->sources.size() << " source(s), "
            << config->pipelines.size() << " pipeline(s), " << config->sinks.size()
            << " sink(s))\n";
  return kExitOk;
}

int Run(const std::string& path, const std::string& log_level_override) {
  // Before any thread starts, so that only the main loop sees the signals.
  SignalWaiter signals;
  auto config = LoadOrReport(path);
  if (!config.ok()) return kExitError;

  auto level = ParseLogLevel(log_level_override.empty() ? config->agent.log.level
                                                        : log_level_override);
  if (!level.ok()) {
    std::cerr << "--log-level: " << level.status().message() << "\n";
    return kExitUsage;
  }
  ConfigureLogging(*level, DetectLogFormat(config->agent.log.format));

  sinks::SinkRegistry registry;
  sinks::RegisterBuiltins(registry);
  auto created = Agent::Create(*config, registry, RealClock());
  if (!created.ok()) {
    LogError("cannot start: ", created.status().message());
    return kExitError;
  }
  std::unique_ptr<Agent> agent = std::move(*created);
  agent->Start();
  // /metrics, /healthz, /readyz, /status; a port that cannot be bound is
  // logged and the agent runs on without it (see AgentHttp).
  AgentHttp http(config->agent.http, agent.get());
  // Under systemd (Type=notify): ready once the sources are connecting and
  // the outbox is open; the watchdog is fed only while the pipelines make
  // progress, so a hung agent is restarted and rebuilt from disk.
  ServiceNotifier notifier = ServiceNotifier::FromEnvironment();
  (void)notifier.Send("READY=1\nSTATUS=" + agent->StatusLine());
  const Millis wake = std::min(Millis(1000), notifier.watchdog_ping_interval().value_or(Millis(1000)));
  SteadyTime next_status = RealClock().Now();
  bool said_unresponsive = false;
  while (true) {
    std::optional<int> sig = signals.Wait(wake);
    if (notifier.enabled()) {
      if (!notifier.watchdog_ping_interval()) {
        // No watchdog configured: nothing to feed.
      } else if (agent->Responsive()) {
        (void)notifier.Send("WATCHDOG=1");
        said_unresponsive = false;
      } else if (!said_unresponsive) {
        LogError("the pipelines have made no progress for 10 s; no longer feeding the watchdog");
        said_unresponsive = true;
      }
      if (RealClock().Now() >= next_status) {
        (void)notifier.Send("STATUS=" + agent->StatusLine());
        next_status = RealClock().Now() + Millis(5000);
      }
    }
    if (!sig) continue;
    if (*sig == SIGHUP) {
      http.Detach("the agent is reloading its config");
      agent = Reload(path, log_level_override, *config, std::move(agent), registry, notifier);
      if (!agent) return kExitError;
      http.Attach(config->agent.http, agent.get());
      continue;
    }
    LogInfo(*sig == SIGINT ? "SIGINT" : "SIGTERM", " received");
    break;
  }
  (void)notifier.Send("STOPPING=1\nSTATUS=stopping: checkpointing, delivering within the grace period");
  http.Detach("the agent is stopping");
  agent->Shutdown();
  return kExitOk;
}

int Version() {
  std::cout << "sluice " << build_info::kVersion << "\n"
            << "revision: " << build_info::kGitRevision << "\n"
            << "build type: " << build_info::kBuildType << "\n"
            << "target: " << build_info::kTargetArch << "\n"
            << "compiler: " << build_info::kCompiler << "\n";
  return kExitOk;
}

}  // namespace

int Main(int argc, char** argv) {
  CLI::App app{"sluice: edge telemetry agent. MQTT in; windows, alerts and a durable queue on the "
               "gateway; Kafka, HTTP, MQTT or files out."};
  app.require_subcommand(1);

  std::string run_config = kDefaultConfig;
  std::string log_level;
  CLI::App* run = app.add_subcommand("run", "Run the agent until SIGTERM or SIGINT");
  run->add_option("-c,--config", run_config, "Config file")->capture_default_str();
  run->add_option("--log-level", log_level, "Override agent.log.level (debug, info, warn, error)");

  std::string validate_config = kDefaultConfig;
  CLI::App* validate = app.add_subcommand(
      "validate", "Check a config: exit 0 if it is valid, else print every error and exit 1");
  validate->add_option("-c,--config", validate_config, "Config file")->capture_default_str();

  std::string test_config = kDefaultConfig;
  std::string test_input;
  CLI::App* test = app.add_subcommand(
      "test", "Run the config's pipelines offline on recorded readings and print the output records");
  test->add_option("-c,--config", test_config, "Config file")->capture_default_str();
  test->add_option("--input", test_input,
                   "JSON lines: {\"topic\": ..., \"payload\": {...} or \"...\", \"arrival\": ms}")
      ->required();

  BufferCommand buffer_command;
  CLI::App* buffer = app.add_subcommand(
      "buffer",
      "Inspect or empty the outbox and the dead letters (stats and peek work while the agent runs)");
  buffer->require_subcommand(1);
  for (const char* action : {"stats", "peek", "purge"}) {
    std::string help =
        std::string(action) == "stats"
            ? "Queued records, bytes, oldest age and counters per sink; the journal, the last "
              "checkpoint and the dead letters"
        : std::string(action) == "peek"
            ? "Print the oldest queued records of each sink, or with --dead-letters the oldest "
              "dead letters as JSON lines"
            : "Delete queued records, or with --dead-letters the dead letters (the agent must be "
              "stopped)";
    CLI::App* sub = buffer->add_subcommand(action, help);
    sub->add_option("--data-dir", buffer_command.data_dir, "The agent's agent.data_dir")
        ->capture_default_str();
    CLI::Option* sink = sub->add_option("--sink", buffer_command.sink, "Only this sink");
    if (std::string(action) != "stats") {
      sub->add_flag("--dead-letters", buffer_command.dead_letters,
                    std::string(action) == "peek" ? "The dead letters instead of the queues"
                                                  : "Delete the dead letters instead of the queues")
          ->excludes(sink);
    }
    if (std::string(action) == "peek") {
      sub->add_option("--limit", buffer_command.limit, "Records per sink, or dead letters")
          ->capture_default_str();
    }
    sub->callback([&buffer_command, action] { buffer_command.action = action; });
  }

  SimulateOptions simulate_options;
  CLI::App* simulate = AddSimulateCommand(app, simulate_options);

  StatusCommand status_command;
  CLI::App* status = app.add_subcommand(
      "status",
      "Ask a running agent for its sources, pipelines, sinks (queue depth, health) and alerts "
      "firing; exit 1 if it cannot be reached");
  status->add_option("--url", status_command.url,
                     "The agent's endpoint (default: -c FILE's agent.http, else "
                     "http://127.0.0.1:9464)");
  status->add_option("-c,--config", status_command.config_path,
                     "Read the address from this config's agent.http");

  CLI::App* version = app.add_subcommand("version", "Print version, revision, build type and target");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }

  if (run->parsed()) return Run(run_config, log_level);
  if (validate->parsed()) return Validate(validate_config);
  if (test->parsed()) return RunOffline(test_config, test_input);
  if (buffer->parsed()) return RunBuffer(buffer_command);
  if (simulate->parsed()) return RunSimulate(simulate_options);
  if (status->parsed()) return RunStatus(status_command);
  if (version->parsed()) return Version();
  std::cerr << app.help();
  return kExitUsage;
}

}  // namespace sluice::agent

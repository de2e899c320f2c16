#include "agent/cli.h"

#include <CLI/CLI.hpp>
#include <csignal>
#include <iostream>

#include "agent/agent.h"
#include "agent/buffer_cli.h"
#include "agent/offline.h"
#include "agent/pipeline_factory.h"
#include "agent/simulate.h"
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
StatusOr<config::Config> LoadOrReport(const std::string& path) {
  std::vector<config::Diagnostic> errors;
  auto config = config::LoadConfigFile(path, &errors);
  if (config.ok()) {
    errors = CheckPipelines(*config);
    if (!errors.empty()) config = Status::InvalidArgument(config::FormatDiagnostic(errors[0]));
  }
  if (!config.ok()) {
    for (const auto& e : errors) std::cerr << config::FormatDiagnostic(e) << "\n";
    if (errors.empty()) std::cerr << path << ": " << config.status().message() << "\n";
    if (errors.size() > 1) std::cerr << errors.size() << " errors in " << path << "\n";
  }
  return config;
}

int Validate(const std::string& path) {
  auto config = LoadOrReport(path);
  if (!config.ok()) return kExitError;
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
  if (config->agent.http != "off") {
    LogInfo("agent.http (", config->agent.http,
            "): the metrics and health endpoint is not part of this version yet; not serving it");
  }

  sinks::SinkRegistry registry;
  sinks::RegisterBuiltins(registry);
  auto agent = Agent::Create(*config, registry, RealClock());
  if (!agent.ok()) {
    LogError("cannot start: ", agent.status().message());
    return kExitError;
  }
  (*agent)->Start();
  // Under systemd (Type=notify): ready once the sources are connecting and
  // the outbox is open; the watchdog is fed only while the pipelines make
  // progress, so a hung agent is restarted and rebuilt from disk.
  ServiceNotifier notifier = ServiceNotifier::FromEnvironment();
  (void)notifier.Send("READY=1\nSTATUS=" + (*agent)->StatusLine());
  const Millis wake = std::min(Millis(1000), notifier.watchdog_ping_interval().value_or(Millis(1000)));
  SteadyTime next_status = RealClock().Now();
  bool said_unresponsive = false;
  while (true) {
    std::optional<int> sig = signals.Wait(wake);
    if (notifier.enabled()) {
      if (!notifier.watchdog_ping_interval()) {
        // No watchdog configured: nothing to feed.
      } else if ((*agent)->Responsive()) {
        (void)notifier.Send("WATCHDOG=1");
        said_unresponsive = false;
      } else if (!said_unresponsive) {
        LogError("the pipelines have made no progress for 10 s; no longer feeding the watchdog");
        said_unresponsive = true;
      }
      if (RealClock().Now() >= next_status) {
        (void)notifier.Send("STATUS=" + (*agent)->StatusLine());
        next_status = RealClock().Now() + Millis(5000);
      }
    }
    if (!sig) continue;
    if (*sig == SIGHUP) {
      LogWarn("SIGHUP: reloading the config is not part of this version yet; keeping the running one");
      continue;
    }
    LogInfo(*sig == SIGINT ? "SIGINT" : "SIGTERM", " received");
    break;
  }
  (void)notifier.Send("STOPPING=1\nSTATUS=stopping: checkpointing, delivering within the grace period");
  (*agent)->Shutdown();
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
  if (version->parsed()) return Version();
  std::cerr << app.help();
  return kExitUsage;
}

}  // namespace sluice::agent

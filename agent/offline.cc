#include "agent/offline.h"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "agent/pipeline_factory.h"
#include "agent/pipeline_runner.h"
#include "config/loader.h"
#include "operators/topic_pattern.h"
#include "platform/dead_letter.h"
#include "platform/store.h"

namespace sluice::agent {
namespace {

using Json = nlohmann::json;

int Fail(const std::string& message) {
  std::cerr << message << "\n";
  return 1;
}

int SourceFor(const config::Config& config, const std::string& topic) {
  for (size_t i = 0; i < config.sources.size(); ++i) {
    for (const std::string& filter : config.sources[i].topics) {
      if (operators::TopicMatchesFilter(filter, topic)) return static_cast<int>(i);
    }
  }
  return -1;
}

// Prints what the pipelines queued, in order, and empties the queue.
Status Drain(SinkQueue& queue) {
  while (queue.size() > 0) {
    ASSIGN_OR_RETURN(auto batch, queue.Peek(4096, Millis(0)));
    std::string text;
    for (const QueuedEnvelope& q : batch) {
      text += q.envelope.body;
      text += '\n';
    }
    std::fwrite(text.data(), 1, text.size(), stdout);
    RETURN_IF_ERROR(queue.Remove(batch.back().seq));
  }
  return Status::Ok();
}

// Dead letters as JSON lines on stderr, next to the diagnostics: an offline
// run keeps nothing. One fwrite per line (stdio locks the stream), so lines
// never interleave.
class StderrDeadLetters final : public DeadLetterStore {
 public:
  Status Put(const DeadLetter& letter) override {
    std::string line = DeadLetterJson(letter);
    line += '\n';
    if (std::fwrite(line.data(), 1, line.size(), stderr) != line.size()) {
      return Status::Unavailable("writing a dead letter to stderr");
    }
    return Status::Ok();
  }
};

}  // namespace

int RunOffline(const std::string& config_path, const std::string& input_path) {
  std::vector<config::Diagnostic> errors;
  auto config = config::LoadConfigFile(config_path, &errors);
  if (config.ok()) errors = CheckPipelines(*config);
  if (!errors.empty()) {
    for (const auto& e : errors) std::cerr << config::FormatDiagnostic(e) << "\n";
    return 1;
  }
  if (!config.ok()) return Fail(config_path + ": " + std::string(config.status().message()));

  std::ifstream in(input_path);
  if (!in) return Fail(input_path + ": cannot open the input file");

  // Everything goes to one queue of an in-memory store, printed after each
  // reading: one line per output record whatever the pipeline's sinks.
  auto store = Store::Open(":memory:", StoreOptions{});
  if (!store.ok()) return Fail(std::string(store.status().message()));
  auto out_index = (*store)->AddQueue("out", QueueOptions{0, OverflowPolicy::kBlock});
  if (!out_index.ok()) return Fail(std::string(out_index.status().message()));
  SinkQueue* queue = (*store)->queue(*out_index);
  StderrDeadLetters dead_letters;

  auto pipelines = BuildRuntimes(*config, [&](const config::PipelineConfig& pc) {
    return pc.to.empty() ? std::vector<int>{} : std::vector<int>{*out_index};
  });
  if (!pipelines.ok()) return Fail(std::string(pipelines.status().message()));
  PipelineRunner runner(std::move(*pipelines), **store, dead_letters);
  runner.SetUnbounded();

  // A line without "arrival" arrives at its event time: never ahead of it.
  std::vector<operators::JsonDecoder> decoders, decoders_at_event_time;
  for (const config::SourceConfig& s : config->sources) {
    operators::DecodeOptions options = DecodeOptionsFor(*config, s);
    decoders.emplace_back(options);
    options.max_ahead_ms = 0;
    decoders_at_event_time.emplace_back(options);
  }

  std::string line;
  operators::Record record;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    const std::string where = input_path + ":" + std::to_string(number) + ": ";
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) return Fail(where + "expected a JSON object per line");
    auto topic = j.find("topic");
    if (topic == j.end() || !topic->is_string()) {
      return Fail(where + "expected a \"topic\" string");
    }
    auto payload = j.find("payload");
    if (payload == j.end() || !(payload->is_object() || payload->is_string())) {
      return Fail(where + "expected a \"payload\" object or string");
    }
    int64_t arrival = 0;
    auto arrival_it = j.find("arrival");
    bool has_arrival = arrival_it != j.end();
    if (has_arrival) {
      if (!arrival_it->is_number_integer()) {
        return Fail(where + "expected \"arrival\" to be epoch milliseconds (an integer)");
      }
      arrival = arrival_it->get<int64_t>();
    }
    int source = SourceFor(*config, topic->get<std::string>());
    if (source < 0) return Fail(where + "topic '" + topic->get<std::string>() + "' matches no source's topics");

    std::string bytes = payload->is_string() ? payload->get<std::string>() : payload->dump();
    Status s = (has_arrival ? decoders : decoders_at_event_time)[source].Decode(
        topic->get<std::string>(), bytes, arrival, &record);
    if (!s.ok()) {
      DeadLetter letter{arrival, "source", config->sources[source].name,
                        topic->get<std::string>(), std::string(s.message()), bytes};
      (void)dead_letters.Put(letter);
      continue;
    }
    if (!has_arrival) record.arrival_ms = record.event_time_ms;
    if (Status ps = runner.Process(source, record); !ps.ok()) return Fail(where + ps.ToString());
    if (Status ds = Drain(*queue); !ds.ok()) return Fail(ds.ToString());
  }
  if (Status fs = runner.Flush(); !fs.ok()) return Fail(fs.ToString());
  if (Status ds = Drain(*queue); !ds.ok()) return Fail(ds.ToString());
  std::fflush(stdout);
  return 0;
}

}  // namespace sluice::agent

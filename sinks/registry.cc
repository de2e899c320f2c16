#include "sinks/file_sink.h"
#include "sinks/kafka_sink.h"
#include "sinks/http_sink.h"
#include "sinks/mqtt_sink.h"
#include "sinks/sink.h"

namespace sluice::sinks {

Status SinkRegistry::Register(const std::string& type, SinkFactory factory,
                              SinkChecker checker) {
  if (!factories_.emplace(type, std::move(factory)).second) {
    return Status::AlreadyExists("sink type '" + type + "' is registered twice");
  }
  if (checker) checkers_.emplace(type, std::move(checker));
  return Status::Ok();
}

Status SinkRegistry::Check(const config::SinkConfig& config) const {
  if (!Has(config.type)) {
    return Status::Unimplemented("sink '" + config.name + "': type '" + config.type +
                                 "' is not available in this build of sluice");
  }
  auto it = checkers_.find(config.type);
  if (it == checkers_.end()) return Status::Ok();
  return it->second(config).WithContext("sink '" + config.name + "'");
}

StatusOr<std::unique_ptr<Sink>> SinkRegistry::Create(const config::SinkConfig& config) const {
  auto it = factories_.find(config.type);
  if (it == factories_.end()) {
    return Status::Unimplemented("sink '" + config.name + "': type '" + config.type +
                                 "' is not available in this build of sluice");
  }
  auto sink = it->second(config);
  if (!sink.ok()) return sink.status().WithContext("sink '" + config.name + "'");
  return sink;
}

void RegisterBuiltins(SinkRegistry& registry) {
  (void)registry.Register("stdout", [](const config::SinkConfig&) { return NewStdoutSink(); });
  (void)registry.Register("file", [](const config::SinkConfig& c) {
    return NewFileSink(std::get<config::FileSinkConfig>(c.spec),
                       c.buffer.sync == config::SyncLevel::kFull);
  });
  (void)registry.Register(
      "kafka",
      [](const config::SinkConfig& c) {
        return NewKafkaSink(c.name, std::get<config::KafkaSinkConfig>(c.spec));
      },
      [](const config::SinkConfig& c) {
        return CheckKafkaSink(c.name, std::get<config::KafkaSinkConfig>(c.spec));
      });
  (void)registry.Register(
      "http",
      [](const config::SinkConfig& c) {
        return NewHttpSink(c.name, std::get<config::HttpSinkConfig>(c.spec));
      },
      [](const config::SinkConfig& c) {
        return CheckHttpSink(std::get<config::HttpSinkConfig>(c.spec));
      });
  (void)registry.Register("mqtt", [](const config::SinkConfig& c) {
    return NewMqttSink(c.name, std::get<config::MqttSinkConfig>(c.spec));
  });
}

}  // namespace sluice::sinks

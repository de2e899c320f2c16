#include "config/config.h"

namespace sluice::config {
namespace {

template <typename T>
const T* FindByName(const std::vector<T>& items, const std::string& name) {
  for (const T& item : items) {
    if (item.name == name) return &item;
  }
  return nullptr;
}

}  // namespace

const SourceConfig* Config::FindSource(const std::string& name) const {
  return FindByName(sources, name);
}
const PipelineConfig* Config::FindPipeline(const std::string& name) const {
  return FindByName(pipelines, name);
}
const SinkConfig* Config::FindSink(const std::string& name) const {
  return FindByName(sinks, name);
}

namespace {

void Add(std::string& out, std::string_view key, std::string_view value) {
  // Length-prefixed: no value can imitate a field boundary.
  out.append(key).append("=").append(std::to_string(value.size())).append(":").append(value);
  out += '\n';
}

void Add(std::string& out, std::string_view key, int64_t value) { Add(out, key, std::to_string(value)); }

}  // namespace

std::string StateDefinition(const Config& config, const PipelineConfig& p) {
  std::string out;
  Add(out, "from", p.from);
  if (const SourceConfig* source = config.FindSource(p.from)) {
    // Journal replay decodes readings as the source does.
    Add(out, "source.topic_fields", source->topic_fields);
    Add(out, "source.format", source->format);
    if (source->time) {
      Add(out, "source.time.field", source->time->field);
      Add(out, "source.time.unit", static_cast<int64_t>(source->time->unit));
    }
  }
  if (p.where) Add(out, "where", p.where->text);
  if (p.window) {
    Add(out, "window.type", static_cast<int64_t>(p.window->type));
    Add(out, "window.size", p.window->size.count());
    Add(out, "window.step", p.window->step.count());
    Add(out, "window.gap", p.window->gap.count());
    Add(out, "window.lateness", p.window->lateness.count());
    Add(out, "window.idle", p.window->idle.count());
  }
  for (const std::string& g : p.group_by) Add(out, "group_by", g);
  for (const AggregateConfig& a : p.aggregates) {
    Add(out, "aggregate", a.name + "=" + a.function + "(" + a.field + ")" +
                              (a.quantile ? "@" + std::to_string(*a.quantile) : ""));
  }
  if (p.alert) {
    Add(out, "alert.when", p.alert->when.text);
    if (p.alert->clear) Add(out, "alert.clear", p.alert->clear->text);
    Add(out, "alert.for", p.alert->for_duration.count());
    if (p.alert->renotify) Add(out, "alert.renotify", p.alert->renotify->count());
    Add(out, "alert.severity", p.alert->severity);
    for (const std::string& k : p.alert->key) Add(out, "alert.key", k);
    for (const auto& [k, v] : p.alert->labels) Add(out, "alert.label." + k, v);
  }
  return out;
}

}  // namespace sluice::config

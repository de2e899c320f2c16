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

}  // namespace sluice::config

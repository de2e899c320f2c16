#include "agent/pipeline_factory.h"

#include <algorithm>

#include "operators/aggregate.h"
#include "operators/alert.h"
#include "operators/expression.h"
#include "operators/window.h"

namespace sluice::agent {
namespace {

using operators::AggregateKind;

std::optional<operators::Expression> Compile(const config::Expression& e, const std::string& what,
                                             std::vector<config::Diagnostic>* errors) {
  size_t offset = 0;
  auto compiled = operators::Expression::Compile(e.text, &offset);
  if (compiled.ok()) return std::move(*compiled);
  config::Position pos = e.pos;
  if (pos.line > 0) pos.column += static_cast<int>(offset);
  errors->push_back({pos, what + ": " + std::string(compiled.status().message())});
  return std::nullopt;
}

std::optional<AggregateKind> KindOf(const std::string& function) {
  static const std::pair<const char*, AggregateKind> kKinds[] = {
      {"count", AggregateKind::kCount}, {"sum", AggregateKind::kSum},
      {"avg", AggregateKind::kAvg},     {"min", AggregateKind::kMin},
      {"max", AggregateKind::kMax},     {"first", AggregateKind::kFirst},
      {"last", AggregateKind::kLast},   {"stddev", AggregateKind::kStddev},
      {"p50", AggregateKind::kPercentile}, {"p90", AggregateKind::kPercentile},
      {"p95", AggregateKind::kPercentile}, {"p99", AggregateKind::kPercentile},
      {"percentile", AggregateKind::kPercentile}};
  for (const auto& [name, kind] : kKinds) {
    if (function == name) return kind;
  }
  return std::nullopt;
}

void AddFields(std::vector<std::string>& to, const std::vector<std::string>& from) {
  for (const std::string& f : from) {
    if (std::find(to.begin(), to.end(), f) == to.end()) to.push_back(f);
  }
}

operators::WindowKind KindOf(config::WindowType type) {
  switch (type) {
    case config::WindowType::kTumbling: return operators::WindowKind::kTumbling;
    case config::WindowType::kHopping: return operators::WindowKind::kHopping;
    case config::WindowType::kSession: return operators::WindowKind::kSession;
  }
  return operators::WindowKind::kTumbling;
}

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

}  // namespace

StatusOr<BuiltPipeline> BuildPipeline(const config::Config& config,
                                      const config::PipelineConfig& p,
                                      std::vector<config::Diagnostic>* errors) {
  const size_t errors_before = errors->size();
  const std::string where_am_i = "pipelines." + p.name;
  operators::OutputContext context{config.agent.id, p.name};
  BuiltPipeline built;

  std::optional<operators::Expression> where;
  if (p.where) {
    where = Compile(*p.where, where_am_i + ".where", errors);
    if (where) AddFields(built.fields, where->fields());
  }

  if (p.window) {
    std::vector<operators::AggregateSpec> specs;
    for (const config::AggregateConfig& a : p.aggregates) {
      auto kind = KindOf(a.function);
      if (!kind) {
        errors->push_back({a.pos, where_am_i + ".aggregate." + a.name + ": unknown function '" +
                                      a.function + "'"});
        continue;
      }
      specs.push_back({a.name, *kind, a.field, a.quantile.value_or(0)});
    }
    auto aggregator = operators::Aggregator::Create(std::move(specs));
    if (!aggregator.ok()) {
      errors->push_back({p.window->pos, where_am_i + ".aggregate: " +
                                            std::string(aggregator.status().message())});
    } else {
      AddFields(built.fields, aggregator->InputFields());
      AddFields(built.fields, p.group_by);
      operators::WindowSpec spec;
      spec.kind = KindOf(p.window->type);
      spec.size_ms = p.window->size.count();
      spec.step_ms = p.window->step.count();
      spec.gap_ms = p.window->gap.count();
      spec.lateness_ms = p.window->lateness.count();
      spec.idle_ms = p.window->idle.count();
      spec.group_by = p.group_by;
      spec.aggregator = std::move(*aggregator);
      auto op = operators::NewWindow(context, std::move(spec));
      if (!op.ok()) {
        errors->push_back({p.window->pos, where_am_i + ".window: " + std::string(op.status().message())});
      } else {
        built.op = std::move(*op);
        built.stateful = true;
      }
    }
  } else if (p.alert) {
    const config::AlertConfig& a = *p.alert;
    auto when = Compile(a.when, where_am_i + ".alert.when", errors);
    std::optional<operators::Expression> clear;
    if (a.clear) clear = Compile(*a.clear, where_am_i + ".alert.clear", errors);
    if (when && (!a.clear || clear)) {
      AddFields(built.fields, when->fields());
      if (clear) AddFields(built.fields, clear->fields());
      AddFields(built.fields, a.key);
      operators::AlertSpec spec{std::move(*when),
                                std::move(clear),
                                a.for_duration.count(),
                                a.renotify ? std::optional<int64_t>(a.renotify->count()) : std::nullopt,
                                a.severity,
                                a.key,
                                a.labels};
      built.op = operators::NewAlert(context, std::move(spec));
      built.stateful = true;
    }
  } else {
    built.all_fields = true;
    built.op = operators::NewPassthrough(context);
  }

  if (errors->size() > errors_before) {
    return Status::InvalidArgument(config::FormatDiagnostic((*errors)[errors_before]));
  }
  if (where) built.op = operators::NewFilter(std::move(*where), std::move(built.op));
  return built;
}

StatusOr<std::vector<std::unique_ptr<PipelineRuntime>>> BuildRuntimes(
    const config::Config& config,
    const std::function<std::vector<int>(const config::PipelineConfig&)>& queues_of) {
  auto index_of = [](const auto& items, const std::string& name) {
    for (size_t i = 0; i < items.size(); ++i) {
      if (items[i].name == name) return static_cast<int>(i);
    }
    return -1;
  };
  std::vector<std::unique_ptr<PipelineRuntime>> runtimes;
  for (const config::PipelineConfig& pc : config.pipelines) {
    std::vector<config::Diagnostic> errors;
    ASSIGN_OR_RETURN(BuiltPipeline built, BuildPipeline(config, pc, &errors));
    auto p = std::make_unique<PipelineRuntime>();
    p->name = pc.name;
    p->source = index_of(config.sources, pc.from);
    p->upstream = index_of(config.pipelines, pc.from);
    p->op = std::move(built.op);
    p->stateful = built.stateful;
    p->definition = config::StateDefinition(config, pc);
    p->sinks = queues_of(pc);
    runtimes.push_back(std::move(p));
  }
  return runtimes;
}

std::vector<config::Diagnostic> CheckPipelines(const config::Config& config) {
  std::vector<config::Diagnostic> errors;
  for (const config::PipelineConfig& p : config.pipelines) (void)BuildPipeline(config, p, &errors);
  return errors;
}

operators::DecodeOptions DecodeOptionsFor(const config::Config& config,
                                          const config::SourceConfig& source) {
  operators::DecodeOptions d;
  if (source.time) {
    d.time_field = source.time->field;
    d.time_unit = ToDecoderUnit(source.time->unit);
    d.max_ahead_ms = source.time->max_ahead.count();
  }
  if (!source.topic_fields.empty()) {
    auto pattern = operators::TopicPattern::Parse(source.topic_fields);
    if (pattern.ok()) d.topic_fields = *pattern;  // validated at load
  }
  std::vector<std::string> fields;
  bool all = false;
  for (const config::PipelineConfig& p : config.pipelines) {
    if (p.from != source.name) continue;
    std::vector<config::Diagnostic> ignored;
    auto built = BuildPipeline(config, p, &ignored);
    if (!built.ok()) {
      all = true;
      continue;
    }
    if (built->all_fields) all = true;
    AddFields(fields, built->fields);
  }
  std::vector<std::string> nested;
  for (const std::string& f : fields) {
    if (f.find('.') != std::string::npos) nested.push_back(f);
  }
  d.projection = all ? operators::Projection::All() : operators::Projection::Only(fields);
  d.projection.nested = std::move(nested);
  return d;
}

}  // namespace sluice::agent

// From a pipeline's config to its operator chain: `where` filter, then a
// window, an alert rule, or a passthrough.
//
// Expressions are compiled here (config/ does not know the language), so
// their syntax errors are reported as config diagnostics with the position
// inside the expression.
#ifndef SLUICE_AGENT_PIPELINE_FACTORY_H_
#define SLUICE_AGENT_PIPELINE_FACTORY_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "agent/pipeline_runner.h"
#include "config/config.h"
#include "config/loader.h"
#include "operators/decode.h"
#include "operators/operator.h"

namespace sluice::agent {

struct BuiltPipeline {
  std::unique_ptr<operators::Operator> op;
  // Payload fields the pipeline reads; `all_fields` when it passes readings
  // on whole.
  std::vector<std::string> fields;
  bool all_fields = false;
  // A window or an alert: it holds state built from many readings, which a
  // crash would lose, so the readings feeding it are journaled and the
  // operator is checkpointed (DESIGN.md, "Acknowledge after commit").
  bool stateful = false;
};

// Appends a diagnostic per problem to *errors and returns kInvalidArgument
// if there is any.
StatusOr<BuiltPipeline> BuildPipeline(const config::Config& config,
                                      const config::PipelineConfig& pipeline,
                                      std::vector<config::Diagnostic>* errors);

// Every pipeline of `config`, ready for a PipelineRunner: operator, source or
// upstream pipeline index, and the store queue indices `queues_of` gives for
// its `to` list.
StatusOr<std::vector<std::unique_ptr<PipelineRuntime>>> BuildRuntimes(
    const config::Config& config,
    const std::function<std::vector<int>(const config::PipelineConfig&)>& queues_of);

// Builds every pipeline to check it; the diagnostics of all of them.
std::vector<config::Diagnostic> CheckPipelines(const config::Config& config);

// The decoding options of `source`: time field, topic captures, and the
// projection that covers every pipeline reading it directly.
operators::DecodeOptions DecodeOptionsFor(const config::Config& config,
                                          const config::SourceConfig& source);

}  // namespace sluice::agent

#endif  // SLUICE_AGENT_PIPELINE_FACTORY_H_

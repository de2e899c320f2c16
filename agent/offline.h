// `sluice test`: a config's pipelines run offline on recorded readings.
//
// Input: one JSON object per line,
//   {"topic": "...", "payload": {...} or "...", "arrival": epoch-ms (optional)}
// Each line goes to the first source whose topic filters match its topic,
// is decoded as that source would, and runs through the pipelines exactly as
// in the agent, in event time, deterministically. At the end of input every
// open window is closed. Every output record is printed to stdout, in the
// order emitted (whatever the pipeline's sinks); dead letters go to stderr.
#ifndef SLUICE_AGENT_OFFLINE_H_
#define SLUICE_AGENT_OFFLINE_H_

#include <string>

namespace sluice::agent {

// Returns the exit code: 0, or 1 (bad config, unreadable or malformed input,
// naming the line).
int RunOffline(const std::string& config_path, const std::string& input_path);

}  // namespace sluice::agent

#endif  // SLUICE_AGENT_OFFLINE_H_

// The `sluice` command line: run, validate, simulate, version.
// Exit codes: 0 success, 1 runtime or input error, 2 usage error.
#ifndef SLUICE_AGENT_CLI_H_
#define SLUICE_AGENT_CLI_H_

namespace sluice::agent {

int Main(int argc, char** argv);

}  // namespace sluice::agent

#endif  // SLUICE_AGENT_CLI_H_

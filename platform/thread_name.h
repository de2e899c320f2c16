#pragma once

#include <string_view>

namespace sluice {

// Names the calling thread as `top -H`, `ps -L` and perf show it (Linux
// keeps 15 bytes; the rest is cut). Operators see which source or sink
// spends the CPU.
void NameThisThread(std::string_view name);

}  // namespace sluice

// Durations ("500ms", "10s", "1m30s", "2h", "1d") and sizes ("512MiB",
// "64MB", "1024", "4 KiB") as they are written in a config.
#ifndef SLUICE_CONFIG_UNITS_H_
#define SLUICE_CONFIG_UNITS_H_

#include <chrono>
#include <cstdint>
#include <string_view>

#include "platform/status.h"

namespace sluice::config {

// Units: ms s m h d, optionally chained from larger to smaller ("1h30m").
// A bare number is refused: a duration without a unit is ambiguous.
StatusOr<std::chrono::milliseconds> ParseDuration(std::string_view text);

// Units: B KiB MiB GiB (powers of 1024) and KB MB GB (powers of 1000); a bare
// integer is bytes. Overflow and negative sizes are refused.
StatusOr<uint64_t> ParseSize(std::string_view text);

}  // namespace sluice::config

#endif  // SLUICE_CONFIG_UNITS_H_

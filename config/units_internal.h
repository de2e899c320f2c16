// Private to config/: the unit parsers with a caller-chosen spelling of the
// input in their error messages. The loader passes the secret reference text
// ("${env:GRACE}") so that a resolved value never reaches a diagnostic.
#ifndef SLUICE_CONFIG_UNITS_INTERNAL_H_
#define SLUICE_CONFIG_UNITS_INTERNAL_H_

#include <chrono>
#include <cstdint>
#include <string_view>

#include "platform/status.h"

namespace sluice::config::internal {

// As ParseDuration / ParseSize; errors quote `shown` instead of `text`.
StatusOr<std::chrono::milliseconds> ParseDurationShown(std::string_view text,
                                                       std::string_view shown);
StatusOr<uint64_t> ParseSizeShown(std::string_view text, std::string_view shown);

}  // namespace sluice::config::internal

#endif  // SLUICE_CONFIG_UNITS_INTERNAL_H_

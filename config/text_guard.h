// Private to config/: bounded file reading and a pre-scan that refuses text
// yaml-cpp should never see. yaml-cpp parses by recursion and has crashed on
// deeply nested or binary input, so the loader checks first and parses after.
#ifndef SLUICE_CONFIG_TEXT_GUARD_H_
#define SLUICE_CONFIG_TEXT_GUARD_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "config/loader.h"
#include "platform/status.h"

namespace sluice::config::internal {

inline constexpr size_t kMaxConfigBytes = size_t{1} << 20;
inline constexpr int kMaxNestingDepth = 32;

// The whole file, or NotFound / PermissionDenied / InvalidArgument (a
// directory) / ResourceExhausted (larger than max_bytes) / Unavailable (an
// I/O error). Messages name neither the content nor the path; callers add
// the path.
StatusOr<std::string> ReadFileLimited(const std::string& path, size_t max_bytes);

// The first reason `text` must not be handed to yaml-cpp (too large, a NUL
// byte, more than one document, nesting deeper than kMaxNestingDepth),
// positioned in `file`.
std::optional<Diagnostic> CheckYamlText(std::string_view text, const std::string& file);

// The 1-based line where a second YAML document starts ("---" after
// content, or content after "..."), or 0 when there is one document.
int FindSecondDocument(std::string_view text);

// Deepest nesting of flow collections, block indentation and compact
// "- - x" entries anywhere in `text`; errs on the high side. Exposed for tests.
// *where receives the 1-based line and column where the maximum is reached.
int EstimateNestingDepth(std::string_view text, int stop_above, int* line, int* column);

}  // namespace sluice::config::internal

#endif  // SLUICE_CONFIG_TEXT_GUARD_H_

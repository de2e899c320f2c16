// Writing JSON text by hand where a JSON library would be a dependency too
// many (platform/ uses only the OS and SQLite).
#ifndef SLUICE_PLATFORM_JSON_TEXT_H_
#define SLUICE_PLATFORM_JSON_TEXT_H_

#include <string>
#include <string_view>

namespace sluice {

// Appends `s` as the inside of a JSON string (no quotes). Control characters
// are escaped; `s` must be valid UTF-8 (see IsValidUtf8).
void AppendJsonEscaped(std::string& out, std::string_view s);

// Appends "s" with quotes.
void AppendJsonString(std::string& out, std::string_view s);

bool IsValidUtf8(std::string_view s);

std::string Base64Encode(std::string_view bytes);

}  // namespace sluice

#endif  // SLUICE_PLATFORM_JSON_TEXT_H_

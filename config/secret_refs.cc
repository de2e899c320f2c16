#include "config/secret_refs.h"

#include <cstdlib>

#include "config/text_guard.h"

namespace sluice::config {
namespace internal {
namespace {

constexpr std::string_view kExpected =
    "expected ${env:NAME} or ${file:/path} (write $${ for a literal ${)";
// A secret file is a password or a token, not a data set.
constexpr size_t kMaxSecretFileBytes = 64 * 1024;

bool IsEnvNameStart(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool IsEnvNameChar(char c) { return IsEnvNameStart(c) || (c >= '0' && c <= '9'); }

bool IsEnvName(std::string_view s) {
  if (s.empty() || !IsEnvNameStart(s.front())) return false;
  for (char c : s) {
    if (!IsEnvNameChar(c)) return false;
  }
  return true;
}

Status Malformed(std::string_view what, std::string_view reference) {
  std::string m(what);
  m += " '";
  m += reference;
  m += "'; ";
  m += kExpected;
  return Status::InvalidArgument(m);
}

}  // namespace

StatusOr<Expanded> ExpandSecretRefs(std::string_view text, const SecretResolver& resolver) {
  Expanded out;
  size_t i = 0;
  while (i < text.size()) {
    const size_t dollar = text.find('$', i);
    if (dollar == std::string_view::npos) {
      out.value.append(text.substr(i));
      break;
    }
    out.value.append(text.substr(i, dollar - i));
    if (text.substr(dollar, 3) == "$${") {
      out.value += "${";
      i = dollar + 3;
      continue;
    }
    if (text.substr(dollar, 2) != "${") {
      out.value += '$';
      i = dollar + 1;
      continue;
    }
    const size_t close = text.find('}', dollar + 2);
    if (close == std::string_view::npos) {
      return Malformed("unterminated secret reference", text.substr(dollar));
    }
    const std::string_view reference = text.substr(dollar, close + 1 - dollar);
    const std::string_view body = text.substr(dollar + 2, close - dollar - 2);
    if (body.substr(0, 4) == "env:") {
      const std::string name(body.substr(4));
      if (!IsEnvName(name)) {
        return Malformed("malformed secret reference", reference);
      }
      std::optional<std::string> value;
      if (resolver.env) value = resolver.env(name);
      if (!value) return Status::NotFound("environment variable '" + name + "' is not set");
      out.value += *value;
    } else if (body.substr(0, 5) == "file:") {
      const std::string path(body.substr(5));
      if (path.empty()) return Malformed("malformed secret reference", reference);
      StatusOr<std::string> content =
          resolver.file ? resolver.file(path)
                        : StatusOr<std::string>(Status::Unavailable("no file resolver"));
      if (!content.ok()) {
        // The resolver's message describes the failure, never the content.
        return Status(
            content.status().code() == StatusCode::kNotFound ? StatusCode::kNotFound
                                                             : StatusCode::kInvalidArgument,
            "cannot read secret file '" + path + "': " + std::string(content.status().message()));
      }
      std::string value = std::move(*content);
      // Editors and `echo` end files with a newline that is not part of the secret.
      while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) value.pop_back();
      out.value += value;
    } else {
      return Malformed("unknown secret reference", reference);
    }
    out.had_reference = true;
    i = close + 1;
  }
  return out;
}

}  // namespace internal

SecretResolver SecretResolver::Default() {
  SecretResolver resolver;
  resolver.env = [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
  resolver.file = [](const std::string& path) -> StatusOr<std::string> {
    return internal::ReadFileLimited(path, internal::kMaxSecretFileBytes);
  };
  return resolver;
}

}  // namespace sluice::config

// Private to config/: expansion of ${env:NAME} and ${file:/path} references
// inside one string scalar.
#ifndef SLUICE_CONFIG_SECRET_REFS_H_
#define SLUICE_CONFIG_SECRET_REFS_H_

#include <string>
#include <string_view>

#include "config/loader.h"
#include "platform/status.h"

namespace sluice::config::internal {

struct Expanded {
  std::string value;           // with every reference replaced
  bool had_reference = false;  // a resolved value is in `value`: never print it
};

// Replaces each ${env:NAME} / ${file:PATH} in `text`; "$${" stands for a
// literal "${". The error (InvalidArgument, or NotFound for a missing
// variable or file) names the variable or path and never holds a value.
StatusOr<Expanded> ExpandSecretRefs(std::string_view text, const SecretResolver& resolver);

}  // namespace sluice::config::internal

#endif  // SLUICE_CONFIG_SECRET_REFS_H_

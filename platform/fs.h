// Small filesystem helpers with Status errors that name the path.
#ifndef SLUICE_PLATFORM_FS_H_
#define SLUICE_PLATFORM_FS_H_

#include <string>

#include "platform/status.h"

namespace sluice {

// mkdir -p; OK when it exists already.
Status CreateDirectories(const std::string& path);

// The whole file; NotFound when missing.
StatusOr<std::string> ReadFileToString(const std::string& path);

std::string HostName();

}  // namespace sluice

#endif  // SLUICE_PLATFORM_FS_H_

// Logging for a daemon: one line per event, to stderr.
//
// Three shapes, chosen once at start (ConfigureLogging):
//   text     "2026-11-26T03:16:27.123Z info  mqtt source 'plant' connected"
//   json     {"time":"...","level":"info","msg":"..."}
//   journal  "<6>mqtt source 'plant' connected" — under systemd (JOURNAL_STREAM
//            set), the journal adds the timestamp and reads the priority.
// Safe for concurrent use. Never log secret values or per-reading events;
// use RateLimitedLog for conditions that can repeat per reading.
#ifndef SLUICE_PLATFORM_LOG_H_
#define SLUICE_PLATFORM_LOG_H_

#include <chrono>
#include <cstdint>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>

#include "platform/clock.h"
#include "platform/status.h"

namespace sluice {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };
enum class LogFormat { kText, kJson, kJournal };

StatusOr<LogLevel> ParseLogLevel(std::string_view name);

// `format` "text" becomes kJournal when stderr is connected to the journal.
void ConfigureLogging(LogLevel level, LogFormat format);
LogFormat DetectLogFormat(std::string_view configured);
bool LogEnabled(LogLevel level);
void LogLine(LogLevel level, std::string_view message);

namespace log_internal {
template <typename... Args>
std::string Concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace log_internal

template <typename... Args>
void LogDebug(const Args&... args) {
  if (LogEnabled(LogLevel::kDebug)) LogLine(LogLevel::kDebug, log_internal::Concat(args...));
}
template <typename... Args>
void LogInfo(const Args&... args) {
  if (LogEnabled(LogLevel::kInfo)) LogLine(LogLevel::kInfo, log_internal::Concat(args...));
}
template <typename... Args>
void LogWarn(const Args&... args) {
  if (LogEnabled(LogLevel::kWarn)) LogLine(LogLevel::kWarn, log_internal::Concat(args...));
}
template <typename... Args>
void LogError(const Args&... args) {
  if (LogEnabled(LogLevel::kError)) LogLine(LogLevel::kError, log_internal::Concat(args...));
}

// Says a repeating condition at most once per `interval`, with the number of
// occurrences suppressed since the last line. Safe for concurrent use.
class RateLimitedLog {
 public:
  RateLimitedLog(LogLevel level, Millis interval, const Clock& clock = RealClock())
      : level_(level), interval_(interval), clock_(clock) {}
  void Log(std::string_view message);

 private:
  const LogLevel level_;
  const Millis interval_;
  const Clock& clock_;
  std::mutex mu_;
  bool said_ = false;
  SteadyTime last_;
  uint64_t suppressed_ = 0;
};

}  // namespace sluice

#endif  // SLUICE_PLATFORM_LOG_H_

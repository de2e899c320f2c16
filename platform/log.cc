#include "platform/log.h"

#include "platform/json_text.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace sluice {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<int> g_format{static_cast<int>(LogFormat::kText)};
std::mutex g_write_mu;

std::string_view LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "info";
}

// syslog priorities, read by journald from the "<N>" prefix.
int JournalPriority(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return 7;
    case LogLevel::kInfo: return 6;
    case LogLevel::kWarn: return 4;
    case LogLevel::kError: return 3;
  }
  return 6;
}

std::string Timestamp() {
  auto now = std::chrono::system_clock::now();
  auto ms = ToEpochMillis(now);
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

}  // namespace

StatusOr<LogLevel> ParseLogLevel(std::string_view name) {
  if (name == "debug") return LogLevel::kDebug;
  if (name == "info") return LogLevel::kInfo;
  if (name == "warn" || name == "warning") return LogLevel::kWarn;
  if (name == "error") return LogLevel::kError;
  return Status::InvalidArgument("expected a log level of debug, info, warn or error; got '" +
                                 std::string(name) + "'");
}

LogFormat DetectLogFormat(std::string_view configured) {
  if (configured == "json") return LogFormat::kJson;
  // systemd sets JOURNAL_STREAM when stderr goes to the journal.
  if (std::getenv("JOURNAL_STREAM") != nullptr) return LogFormat::kJournal;
  return LogFormat::kText;
}

void ConfigureLogging(LogLevel level, LogFormat format) {
  g_level.store(static_cast<int>(level));
  g_format.store(static_cast<int>(format));
}

bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= g_level.load(); }

void LogLine(LogLevel level, std::string_view message) {
  std::string line;
  line.reserve(message.size() + 48);
  switch (static_cast<LogFormat>(g_format.load())) {
    case LogFormat::kJournal:
      line += '<';
      line += std::to_string(JournalPriority(level));
      line += '>';
      line += message;
      break;
    case LogFormat::kJson:
      line += "{\"time\":\"";
      line += Timestamp();
      line += "\",\"level\":\"";
      line += LevelName(level);
      line += "\",\"msg\":\"";
      AppendJsonEscaped(line, message);
      line += "\"}";
      break;
    case LogFormat::kText:
      line += Timestamp();
      line += ' ';
      line += LevelName(level);
      line.append(6 - LevelName(level).size(), ' ');
      line += message;
      break;
  }
  line += '\n';
  std::lock_guard<std::mutex> lock(g_write_mu);
  // One write per line so that lines from threads never interleave.
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

void RateLimitedLog::Log(std::string_view message) {
  if (!LogEnabled(level_)) return;
  uint64_t suppressed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    SteadyTime now = clock_.Now();
    if (said_ && now - last_ < interval_) {
      ++suppressed_;
      return;
    }
    said_ = true;
    last_ = now;
    suppressed = suppressed_;
    suppressed_ = 0;
  }
  if (suppressed == 0) {
    LogLine(level_, message);
  } else {
    LogLine(level_, log_internal::Concat(message, " (and ", suppressed,
                                         " more like it since the last report)"));
  }
}

}  // namespace sluice

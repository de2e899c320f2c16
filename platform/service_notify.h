// ServiceNotifier: tells systemd how the service is doing (the sd_notify
// protocol: datagrams to $NOTIFY_SOCKET), without linking libsystemd.
//
//   ServiceNotifier notifier = ServiceNotifier::FromEnvironment();
//   notifier.Send("READY=1\nSTATUS=running");
//   while (...) {
//     if (pipelines_progress) notifier.Send("WATCHDOG=1");
//     wait(notifier.watchdog_ping_interval().value_or(Millis(1000)));
//   }
//   notifier.Send("STOPPING=1");
//
// Outside systemd (no NOTIFY_SOCKET) every call does nothing.
#ifndef SLUICE_PLATFORM_SERVICE_NOTIFY_H_
#define SLUICE_PLATFORM_SERVICE_NOTIFY_H_

#include <optional>
#include <string>
#include <string_view>

#include "platform/clock.h"
#include "platform/status.h"

namespace sluice {

class ServiceNotifier {
 public:
  // Reads NOTIFY_SOCKET (a path, or "@name" for the abstract namespace),
  // WATCHDOG_USEC and WATCHDOG_PID (the watchdog is ours only when that PID
  // is unset or this process's).
  static ServiceNotifier FromEnvironment();

  ServiceNotifier() = default;
  ~ServiceNotifier();
  ServiceNotifier(ServiceNotifier&& other) noexcept;
  ServiceNotifier& operator=(ServiceNotifier&&) = delete;
  ServiceNotifier(const ServiceNotifier&) = delete;

  bool enabled() const { return fd_ >= 0; }
  // Half the watchdog timeout, as systemd recommends; nullopt without one.
  std::optional<Millis> watchdog_ping_interval() const { return watchdog_ping_; }

  // One datagram of newline-separated assignments. A failure is returned
  // (and changes nothing for the caller: the service manager may be gone).
  Status Send(std::string_view state) const;

 private:
  int fd_ = -1;
  std::string address_;  // sockaddr_un path; a leading '\0' for abstract
  std::optional<Millis> watchdog_ping_;
};

}  // namespace sluice

#endif  // SLUICE_PLATFORM_SERVICE_NOTIFY_H_

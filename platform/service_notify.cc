#include "platform/service_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace sluice {

ServiceNotifier ServiceNotifier::FromEnvironment() {
  ServiceNotifier n;
  const char* socket_path = std::getenv("NOTIFY_SOCKET");
  if (socket_path == nullptr || socket_path[0] == '\0') return n;
  std::string address = socket_path;
  if (address[0] == '@') address[0] = '\0';
  if (address.size() >= sizeof(sockaddr_un::sun_path)) return n;  // cannot be addressed
  n.fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (n.fd_ < 0) return n;
  n.address_ = std::move(address);

  const char* usec = std::getenv("WATCHDOG_USEC");
  const char* pid = std::getenv("WATCHDOG_PID");
  bool ours = pid == nullptr || std::strtoll(pid, nullptr, 10) == static_cast<long long>(::getpid());
  if (usec != nullptr && ours) {
    long long us = std::strtoll(usec, nullptr, 10);
    if (us > 0) n.watchdog_ping_ = Millis(std::max<long long>(1, us / 2000));
  }
  return n;
}

ServiceNotifier::ServiceNotifier(ServiceNotifier&& other) noexcept
    : fd_(other.fd_), address_(std::move(other.address_)), watchdog_ping_(other.watchdog_ping_) {
  other.fd_ = -1;
}

ServiceNotifier::~ServiceNotifier() {
  if (fd_ >= 0) ::close(fd_);
}

Status ServiceNotifier::Send(std::string_view state) const {
  if (fd_ < 0) return Status::Ok();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, address_.data(), address_.size());
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address_.size());
  ssize_t sent = ::sendto(fd_, state.data(), state.size(), MSG_NOSIGNAL,
                          reinterpret_cast<const sockaddr*>(&addr), len);
  if (sent < 0) {
    return Status::Unavailable(std::string("notifying the service manager: ") + std::strerror(errno));
  }
  return Status::Ok();
}

}  // namespace sluice

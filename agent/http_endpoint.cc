#include "agent/http_endpoint.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <list>
#include <thread>

#include "platform/log.h"
#include "platform/thread_name.h"

namespace sluice::agent {
namespace {

// After the response, what the client still sends is read and thrown away
// for a moment before the close (as nginx's lingering close does): closing
// with unread input makes the kernel send RST, and the client may lose the
// response it has not read yet (a 431 to a client still sending headers).
constexpr Millis kLingerTime{1000};
constexpr size_t kLingerMaxBytes = 1 << 20;

bool IsTokenChar(char c) {
  if (std::isalnum(static_cast<unsigned char>(c))) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

std::string ErrnoText(int err) { return std::strerror(err); }

// A request line and headers, complete; the verdict when it is bad.
struct Parsed {
  int error = 0;  // 0: fine
  HttpRequest request;
};

Parsed ParseRequestHead(std::string_view head) {
  Parsed out;
  size_t eol = head.find('\n');
  std::string_view line = head.substr(0, eol);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp1 == std::string_view::npos || sp2 == std::string_view::npos ||
      line.find(' ', sp2 + 1) != std::string_view::npos) {
    out.error = 400;
    return out;
  }
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (method.empty() || !std::all_of(method.begin(), method.end(), IsTokenChar) ||
      target.empty() || target.front() != '/' ||
      std::any_of(target.begin(), target.end(),
                  [](char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f; })) {
    out.error = 400;
    return out;
  }
  if (version != "HTTP/1.1" && version != "HTTP/1.0") {
    out.error = version.substr(0, 5) == "HTTP/" ? 505 : 400;
    return out;
  }
  // Header lines: "name: value", no folding. Their values are not needed.
  for (size_t at = eol == std::string_view::npos ? head.size() : eol + 1; at < head.size();) {
    size_t end = head.find('\n', at);
    if (end == std::string_view::npos) end = head.size();
    std::string_view h = head.substr(at, end - at);
    if (!h.empty() && h.back() == '\r') h.remove_suffix(1);
    at = end + 1;
    if (h.empty()) break;  // the blank line ending the head
    const size_t colon = h.find(':');
    if (colon == 0 || colon == std::string_view::npos ||
        !std::all_of(h.begin(), h.begin() + static_cast<std::ptrdiff_t>(colon), IsTokenChar)) {
      out.error = 400;
      return out;
    }
  }
  out.request.method = std::string(method);
  const size_t q = target.find('?');
  out.request.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) out.request.query = std::string(target.substr(q + 1));
  return out;
}

// True when what arrived so far cannot be the start of a request line (a TLS
// handshake, binary garbage): answered at once instead of after the timeout.
bool HopelessStart(std::string_view in) {
  for (char c : in) {
    if (c == ' ') return false;
    if (!IsTokenChar(c)) return true;
  }
  return false;
}

// End of the request head: the blank line (CRLF CRLF, or bare LF LF).
size_t HeadEnd(std::string_view in) {
  size_t crlf = in.find("\r\n\r\n");
  size_t lf = in.find("\n\n");
  if (crlf == std::string_view::npos && lf == std::string_view::npos) return std::string_view::npos;
  if (crlf != std::string_view::npos && (lf == std::string_view::npos || crlf + 2 < lf)) {
    return crlf + 4;
  }
  return lf + 2;
}

std::string ErrorBody(int status) {
  switch (status) {
    case 400: return "bad request: expected \"GET /path HTTP/1.1\" and header lines\n";
    case 405: return "method not allowed: GET or HEAD only\n";
    case 408: return "request timeout: the request did not arrive in time\n";
    case 431: return "request header fields too large\n";
    case 505: return "HTTP version not supported: HTTP/1.0 or HTTP/1.1 only\n";
    default: return std::string(HttpReason(status)) + "\n";
  }
}

std::string Serialize(const HttpResponse& r, bool head_only) {
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + std::string(HttpReason(r.status)) +
                    "\r\nContent-Type: " + r.content_type +
                    "\r\nContent-Length: " + std::to_string(r.body.size()) +
                    "\r\nCache-Control: no-store\r\nConnection: close\r\n";
  for (const auto& [name, value] : r.headers) out += name + ": " + value + "\r\n";
  out += "\r\n";
  if (!head_only) out += r.body;
  return out;
}

}  // namespace

std::string_view HttpReason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

StatusOr<ListenAddress> ParseListenAddress(std::string_view address) {
  const std::string expected = "expected host:port such as 127.0.0.1:9464; got \"" +
                               std::string(address) + "\"";
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return Status::InvalidArgument(expected);
  std::string_view host = address.substr(0, colon);
  std::string_view port = address.substr(colon + 1);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return Status::InvalidArgument(expected);
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return Status::InvalidArgument(expected + " (an IPv6 address goes in brackets: [::1]:9464)");
  }
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return Status::InvalidArgument(expected);
  }
  int n = std::stoi(std::string(port));
  if (n > 65535) return Status::InvalidArgument(expected + " (a port is at most 65535)");
  return ListenAddress{std::string(host), n};
}

class HttpEndpoint::Impl {
 public:
  Impl(HttpHandler handler, HttpEndpointOptions options)
      : handler_(std::move(handler)), options_(options) {}

  ~Impl() {
    Stop();
    if (listen_fd_ >= 0) ::close(listen_fd_);
    if (wake_read_ >= 0) ::close(wake_read_);
    if (wake_write_ >= 0) ::close(wake_write_);
  }

  Status Bind(const std::string& address) {
    ASSIGN_OR_RETURN(ListenAddress where, ParseListenAddress(address));
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* found = nullptr;
    const std::string port = std::to_string(where.port);
    if (int rc = ::getaddrinfo(where.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
      return Status::InvalidArgument("cannot resolve " + address + ": " + ::gai_strerror(rc));
    }
    std::string last_error = "no address";
    for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
      int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        last_error = ErrnoText(errno);
        continue;
      }
      int one = 1;
      (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd, 16) != 0) {
        last_error = ErrnoText(errno);
        ::close(fd);
        continue;
      }
      listen_fd_ = fd;
      break;
    }
    ::freeaddrinfo(found);
    if (listen_fd_ < 0) return Status::Unavailable("cannot listen on " + address + ": " + last_error);
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    if (::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &len) == 0) {
      port_ = ntohs(bound.ss_family == AF_INET6
                        ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                        : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    }
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_NONBLOCK | O_CLOEXEC) != 0) {
      return Status::Internal("cannot create the endpoint's wake pipe: " + ErrnoText(errno));
    }
    wake_read_ = pipe_fds[0];
    wake_write_ = pipe_fds[1];
    return Status::Ok();
  }

  void StartThread() {
    thread_ = std::thread([this] {
      NameThisThread("http endpoint");
      Loop();
    });
  }

  void Stop() {
    if (!thread_.joinable()) return;
    char byte = 1;
    (void)!::write(wake_write_, &byte, 1);
    thread_.join();
  }

  int port() const { return port_; }

 private:
  enum class Phase { kReading, kWriting, kLingering };
  struct Connection {
    int fd = -1;
    Phase phase = Phase::kReading;
    std::string in;
    std::string out;
    size_t sent = 0;
    size_t lingered = 0;
    SteadyTime deadline;
  };

  void Loop() {
    std::list<Connection> connections;
    std::vector<pollfd> fds;
    std::vector<Connection*> by_slot;
    SteadyTime accept_paused_until{};
    while (true) {
      const SteadyTime now = RealClock().Now();
      fds.clear();
      by_slot.clear();
      fds.push_back({wake_read_, POLLIN, 0});
      const bool accepting =
          connections.size() < options_.max_connections && now >= accept_paused_until;
      fds.push_back({accepting ? listen_fd_ : -1, POLLIN, 0});
      SteadyTime next = now + Millis(1000);
      if (!accepting && now < accept_paused_until) next = std::min(next, accept_paused_until);
      for (Connection& c : connections) {
        fds.push_back({c.fd, static_cast<short>(c.phase == Phase::kWriting ? POLLOUT : POLLIN), 0});
        by_slot.push_back(&c);
        next = std::min(next, c.deadline);
      }
      const auto wait = std::chrono::duration_cast<Millis>(next - now).count();
      int ready = ::poll(fds.data(), fds.size(), static_cast<int>(std::max<int64_t>(wait, 0)));
      if (ready < 0 && errno != EINTR) {
        LogError("http endpoint: poll failed: ", ErrnoText(errno), "; stopping the endpoint");
        break;
      }
      if (fds[0].revents != 0) break;  // Stop()
      if (fds[1].revents & POLLIN) {
        if (!Accept(connections)) accept_paused_until = RealClock().Now() + Millis(100);
      }
      for (size_t i = 0; i < by_slot.size(); ++i) {
        if (fds[i + 2].revents != 0) Service(*by_slot[i], fds[i + 2].revents);
      }
      const SteadyTime after = RealClock().Now();
      for (Connection& c : connections) {
        if (c.fd < 0 || after < c.deadline) continue;
        if (c.phase == Phase::kReading) {
          Respond(c, ErrorResponse(408), false);  // the slow client gets a word, then the close
        } else {
          Close(c);
        }
      }
      connections.remove_if([](const Connection& c) { return c.fd < 0; });
    }
    for (Connection& c : connections) Close(c);
  }

  // False when accepting failed for lack of descriptors: pause, or poll spins.
  bool Accept(std::list<Connection>& connections) {
    while (connections.size() < options_.max_connections) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          accept_log_.Log("http endpoint: cannot accept a connection: " + ErrnoText(errno));
          return false;
        }
        return true;  // EAGAIN, or a connection that went away before we took it
      }
      Connection c;
      c.fd = fd;
      c.deadline = RealClock().Now() + options_.read_timeout;
      connections.push_back(std::move(c));
    }
    return true;
  }

  void Service(Connection& c, short revents) {
    switch (c.phase) {
      case Phase::kReading: return Read(c);
      case Phase::kWriting:
        if (revents & (POLLOUT | POLLERR | POLLHUP)) Write(c);
        return;
      case Phase::kLingering: return Linger(c);
    }
  }

  void Read(Connection& c) {
    char buffer[4096];
    while (true) {
      ssize_t n = ::recv(c.fd, buffer, sizeof buffer, 0);
      if (n == 0) return Close(c);  // gone before a complete request: nobody to answer
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        return Close(c);
      }
      c.in.append(buffer, static_cast<size_t>(n));
      if (c.in.size() > options_.max_request_bytes) break;
    }
    const size_t head_end = HeadEnd(c.in);
    if (head_end == std::string::npos || head_end > options_.max_request_bytes) {
      if (c.in.size() > options_.max_request_bytes) return Respond(c, ErrorResponse(431), false);
      if (HopelessStart(c.in) || (c.in.find('\n') != std::string::npos &&
                                  ParseRequestHead(c.in.substr(0, c.in.find('\n'))).error != 0)) {
        return Respond(c, ErrorResponse(400), false);
      }
      return;  // wait for more
    }
    Parsed parsed = ParseRequestHead(std::string_view(c.in).substr(0, head_end));
    if (parsed.error != 0) return Respond(c, ErrorResponse(parsed.error), false);
    const bool head_only = parsed.request.method == "HEAD";
    if (parsed.request.method != "GET" && !head_only) {
      HttpResponse r = ErrorResponse(405);
      r.headers.push_back({"Allow", "GET, HEAD"});
      return Respond(c, r, false);
    }
    HttpResponse response;
    try {
      response = handler_(parsed.request);
    } catch (const std::exception& e) {
      handler_log_.Log(std::string("http endpoint: ") + parsed.request.path + ": " + e.what());
      response = ErrorResponse(500);
    }
    Respond(c, response, head_only);
  }

  void Respond(Connection& c, const HttpResponse& response, bool head_only) {
    c.out = Serialize(response, head_only);
    c.sent = 0;
    c.in.clear();
    c.in.shrink_to_fit();
    c.phase = Phase::kWriting;
    c.deadline = RealClock().Now() + options_.write_timeout;
    Write(c);
  }

  void Write(Connection& c) {
    while (c.sent < c.out.size()) {
      ssize_t n = ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;  // POLLOUT again
        return Close(c);
      }
      c.sent += static_cast<size_t>(n);
    }
    ::shutdown(c.fd, SHUT_WR);
    c.out.clear();
    c.out.shrink_to_fit();
    c.phase = Phase::kLingering;
    c.deadline = RealClock().Now() + kLingerTime;
  }

  void Linger(Connection& c) {
    char buffer[4096];
    while (true) {
      ssize_t n = ::recv(c.fd, buffer, sizeof buffer, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (n <= 0) return Close(c);  // the client closed: done
      c.lingered += static_cast<size_t>(n);
      if (c.lingered > kLingerMaxBytes) return Close(c);
    }
  }

  static HttpResponse ErrorResponse(int status) {
    HttpResponse r;
    r.status = status;
    r.body = ErrorBody(status);
    return r;
  }

  static void Close(Connection& c) {
    if (c.fd >= 0) ::close(c.fd);
    c.fd = -1;
  }

  HttpHandler handler_;
  const HttpEndpointOptions options_;
  int listen_fd_ = -1;
  int wake_read_ = -1;
  int wake_write_ = -1;
  int port_ = 0;
  std::thread thread_;
  RateLimitedLog accept_log_{LogLevel::kError, Millis(60000)};
  RateLimitedLog handler_log_{LogLevel::kError, Millis(60000)};
};

StatusOr<std::unique_ptr<HttpEndpoint>> HttpEndpoint::Start(const std::string& address,
                                                            HttpHandler handler,
                                                            HttpEndpointOptions options) {
  auto impl = std::make_unique<Impl>(std::move(handler), options);
  RETURN_IF_ERROR(impl->Bind(address));
  impl->StartThread();
  return std::unique_ptr<HttpEndpoint>(new HttpEndpoint(std::move(impl)));
}

HttpEndpoint::HttpEndpoint(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpEndpoint::~HttpEndpoint() { Stop(); }
void HttpEndpoint::Stop() { impl_->Stop(); }
int HttpEndpoint::port() const { return impl_->port(); }

}  // namespace sluice::agent

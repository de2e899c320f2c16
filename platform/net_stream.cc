#include "platform/net_stream.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <dlfcn.h>
#include <fcntl.h>
#include <mutex>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

namespace sluice {
namespace {

int MillisUntil(SteadyTime deadline) {
  auto left = std::chrono::duration_cast<Millis>(deadline - RealClock().Now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left, 60'000));
}

enum class Waited { kReady, kTimedOut, kCancelled };

// Waits until `fd` is ready for `events`, the deadline passes, or
// `cancel_fd` (when >= 0) becomes readable.
Waited WaitFor(int fd, short events, SteadyTime deadline, int cancel_fd) {
  while (true) {
    pollfd p[2] = {{fd, events, 0}, {cancel_fd, POLLIN, 0}};
    int timeout = MillisUntil(deadline);
    int n = poll(p, cancel_fd >= 0 ? 2 : 1, timeout);
    if (n > 0) return cancel_fd >= 0 && p[1].revents != 0 ? Waited::kCancelled : Waited::kReady;
    if (n < 0 && errno == EINTR) continue;
    if (timeout == 0 || n < 0) return Waited::kTimedOut;
  }
}

Status Cancelled() { return Status(StatusCode::kAborted, "cancelled"); }

// OpenSSL is loaded when the first TLS connection is made, not at start: an
// agent without TLS (most, on a plant network) does not map libssl and
// libcrypto (1.7 MiB of its idle RSS). The package depends on libssl3.
#define SLUICE_OPENSSL_FUNCTIONS(X)                                                          \
  X(ERR_clear_error) X(ERR_error_string_n) X(ERR_get_error) X(SSL_CTX_ctrl) X(SSL_CTX_free) \
  X(SSL_CTX_load_verify_locations) X(SSL_CTX_new) X(SSL_CTX_set_default_verify_paths)       \
  X(SSL_CTX_set_verify) X(SSL_CTX_use_PrivateKey_file) X(SSL_CTX_use_certificate_chain_file) \
  X(SSL_connect) X(SSL_ctrl) X(SSL_free) X(SSL_get0_param) X(SSL_get_error)                  \
  X(SSL_get_verify_result) X(SSL_new) X(SSL_pending) X(SSL_read) X(SSL_set1_host)            \
  X(SSL_set_fd) X(SSL_shutdown) X(SSL_write) X(TLS_client_method)                           \
  X(X509_VERIFY_PARAM_set1_ip_asc) X(X509_verify_cert_error_string)

struct OpenSsl {
#define SLUICE_DECLARE(name) decltype(&::name) name = nullptr;
  SLUICE_OPENSSL_FUNCTIONS(SLUICE_DECLARE)
#undef SLUICE_DECLARE
};

// The library of the major version we were built against (libssl.so.3);
// libcrypto comes with it, and dlsym finds its functions through it.
StatusOr<const OpenSsl*> LoadOpenSsl() {
  static OpenSsl lib;
  static std::string error;
  static std::once_flag once;
  std::call_once(once, [] {
    const std::string soname = "libssl.so." + std::to_string(OPENSSL_VERSION_MAJOR);
    void* handle = dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      error = "TLS needs " + soname + " (Debian: libssl3): " + dlerror();
      return;
    }
#define SLUICE_LOAD(name)                                                          \
    lib.name = reinterpret_cast<decltype(&::name)>(dlsym(handle, #name));         \
    if (lib.name == nullptr && error.empty()) error = soname + " lacks " #name;
    SLUICE_OPENSSL_FUNCTIONS(SLUICE_LOAD)
#undef SLUICE_LOAD
  });
  if (!error.empty()) return Status::Unavailable(error);
  return &lib;
}

std::string OpenSslError(const OpenSsl& ssl) {
  unsigned long code = ssl.ERR_get_error();
  ssl.ERR_clear_error();
  if (code == 0) return "TLS error";
  char text[256];
  ssl.ERR_error_string_n(code, text, sizeof text);
  return text;
}

bool IsIpAddress(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

StatusOr<int> ConnectTcp(const std::string& host, int port, SteadyTime deadline, int cancel_fd) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    return Status::Unavailable("cannot resolve " + host + ": " + gai_strerror(rc));
  }
  std::string last_error = "no address";
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
      last_error = std::strerror(errno);
      close(fd);
      continue;
    }
    if (Waited w = WaitFor(fd, POLLOUT, deadline, cancel_fd); w != Waited::kReady) {
      close(fd);
      if (w == Waited::kCancelled) {
        freeaddrinfo(found);
        return Cancelled();
      }
      last_error = "connect timed out";
      continue;
    }
    int error = 0;
    socklen_t len = sizeof error;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
    if (error != 0) {
      last_error = std::strerror(error);
      close(fd);
      continue;
    }
    // Acknowledgements are small and must leave at once.
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    freeaddrinfo(found);
    return fd;
  }
  freeaddrinfo(found);
  return Status::Unavailable(last_error);
}

}  // namespace

struct NetStream::Tls {
  explicit Tls(const OpenSsl& library) : lib(library) {}
  ~Tls() {
    if (ssl != nullptr) lib.SSL_free(ssl);
    if (ctx != nullptr) lib.SSL_CTX_free(ctx);
  }
  const OpenSsl& lib;
  SSL_CTX* ctx = nullptr;
  SSL* ssl = nullptr;
};

NetStream::NetStream(int fd, std::unique_ptr<Tls> tls, int cancel_fd)
    : fd_(fd), cancel_fd_(cancel_fd), tls_(std::move(tls)) {}

NetStream::~NetStream() {
  if (tls_ && tls_->ssl != nullptr) tls_->lib.SSL_shutdown(tls_->ssl);  // best effort, non-blocking
  close(fd_);
}

StatusOr<std::unique_ptr<NetStream>> NetStream::Connect(const std::string& host, int port,
                                                        const TlsOptions* tls, Millis timeout,
                                                        int cancel_fd) {
  // OpenSSL writes to the socket with write(), which raises SIGPIPE when the
  // peer has gone: in a process that kept the default (a test, a tool), that
  // would kill it instead of failing the write. A handler someone set stays.
  static std::once_flag sigpipe_once;
  std::call_once(sigpipe_once, [] {
    struct sigaction current {};
    if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
      signal(SIGPIPE, SIG_IGN);
    }
  });
  const SteadyTime deadline = RealClock().Now() + timeout;
  ASSIGN_OR_RETURN(int fd, ConnectTcp(host, port, deadline, cancel_fd));
  if (tls == nullptr) return std::unique_ptr<NetStream>(new NetStream(fd, nullptr, cancel_fd));

  ASSIGN_OR_RETURN(const OpenSsl* library, LoadOpenSsl());
  const OpenSsl& ssl = *library;
  auto t = std::make_unique<Tls>(ssl);
  std::unique_ptr<NetStream> stream(new NetStream(fd, nullptr, cancel_fd));
  t->ctx = ssl.SSL_CTX_new(ssl.TLS_client_method());
  if (t->ctx == nullptr) return Status::Internal("TLS: " + OpenSslError(ssl));
  ssl.SSL_CTX_ctrl(t->ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, TLS1_2_VERSION, nullptr);
  ssl.SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, nullptr);
  int ok = tls->ca.empty() ? ssl.SSL_CTX_set_default_verify_paths(t->ctx)
                           : ssl.SSL_CTX_load_verify_locations(t->ctx, tls->ca.c_str(), nullptr);
  if (ok != 1) return Status::InvalidArgument("TLS CA '" + tls->ca + "': " + OpenSslError(ssl));
  if (!tls->cert.empty() &&
      ssl.SSL_CTX_use_certificate_chain_file(t->ctx, tls->cert.c_str()) != 1) {
    return Status::InvalidArgument("TLS certificate '" + tls->cert + "': " + OpenSslError(ssl));
  }
  if (!tls->key.empty() &&
      ssl.SSL_CTX_use_PrivateKey_file(t->ctx, tls->key.c_str(), SSL_FILETYPE_PEM) != 1) {
    return Status::InvalidArgument("TLS key '" + tls->key + "': " + OpenSslError(ssl));
  }
  t->ssl = ssl.SSL_new(t->ctx);
  if (t->ssl == nullptr) return Status::Internal("TLS: " + OpenSslError(ssl));
  ssl.SSL_ctrl(t->ssl, SSL_CTRL_MODE, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER,
               nullptr);
  // The server certificate must name the host we dialled.
  if (IsIpAddress(host)) {
    ssl.X509_VERIFY_PARAM_set1_ip_asc(ssl.SSL_get0_param(t->ssl), host.c_str());
  } else {
    ssl.SSL_ctrl(t->ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                 const_cast<char*>(host.c_str()));
    ssl.SSL_set1_host(t->ssl, host.c_str());
  }
  ssl.SSL_set_fd(t->ssl, fd);
  while (true) {
    int rc = ssl.SSL_connect(t->ssl);
    if (rc == 1) break;
    int error = ssl.SSL_get_error(t->ssl, rc);
    short events = error == SSL_ERROR_WANT_READ ? POLLIN : error == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
    if (events == 0) {
      long verify = ssl.SSL_get_verify_result(t->ssl);
      if (verify != X509_V_OK) {
        ssl.ERR_clear_error();
        return Status::Unavailable(std::string("TLS: server certificate not trusted: ") +
                                   ssl.X509_verify_cert_error_string(verify));
      }
      return Status::Unavailable("TLS handshake failed: " + OpenSslError(ssl));
    }
    if (Waited w = WaitFor(fd, events, deadline, cancel_fd); w != Waited::kReady) {
      return w == Waited::kCancelled ? Cancelled() : Status::DeadlineExceeded("TLS handshake timed out");
    }
  }
  stream->tls_ = std::move(t);
  return stream;
}

void NetStream::QuickAck() const {
  if (!quick_ack_) return;
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
}

StatusOr<size_t> NetStream::Read(char* buf, size_t capacity) {
  if (tls_) {
    const OpenSsl& ssl = tls_->lib;
    int n = ssl.SSL_read(tls_->ssl, buf, static_cast<int>(std::min<size_t>(capacity, 1 << 30)));
    if (n > 0) {
      QuickAck();
      return static_cast<size_t>(n);
    }
    int error = ssl.SSL_get_error(tls_->ssl, n);
    if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) return size_t{0};
    if (error == SSL_ERROR_ZERO_RETURN) return Status::Unavailable("the peer closed the connection");
    return Status::Unavailable("TLS read: " + OpenSslError(ssl));
  }
  while (true) {
    ssize_t n = recv(fd_, buf, capacity, 0);
    if (n > 0) {
      QuickAck();
      return static_cast<size_t>(n);
    }
    if (n == 0) return Status::Unavailable("the peer closed the connection");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return size_t{0};
    return Status::Unavailable(std::string("read: ") + std::strerror(errno));
  }
}

bool NetStream::buffered() const { return tls_ && tls_->lib.SSL_pending(tls_->ssl) > 0; }

Status NetStream::WaitReadable(SteadyTime deadline) {
  if (buffered()) return Status::Ok();
  switch (WaitFor(fd_, POLLIN, deadline, cancel_fd_)) {
    case Waited::kReady: return Status::Ok();
    case Waited::kCancelled: return Cancelled();
    case Waited::kTimedOut: break;
  }
  return Status::DeadlineExceeded("read timed out");
}

Status NetStream::WriteAll(std::string_view bytes, SteadyTime deadline) {
  while (!bytes.empty()) {
    short wait = POLLOUT;
    if (tls_) {
      const OpenSsl& ssl = tls_->lib;
      int n = ssl.SSL_write(tls_->ssl, bytes.data(), static_cast<int>(std::min<size_t>(bytes.size(), 1 << 30)));
      if (n > 0) {
        bytes.remove_prefix(static_cast<size_t>(n));
        continue;
      }
      int error = ssl.SSL_get_error(tls_->ssl, n);
      if (error == SSL_ERROR_WANT_READ) {
        wait = POLLIN;
      } else if (error != SSL_ERROR_WANT_WRITE) {
        return Status::Unavailable("TLS write: " + OpenSslError(ssl));
      }
    } else {
      ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n > 0) {
        bytes.remove_prefix(static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        return Status::Unavailable(std::string("write: ") + std::strerror(errno));
      }
    }
    if (Waited w = WaitFor(fd_, wait, deadline, cancel_fd_); w != Waited::kReady) {
      return w == Waited::kCancelled ? Cancelled() : Status::DeadlineExceeded("write timed out");
    }
  }
  return Status::Ok();
}

}  // namespace sluice

// HttpEndpoint on a loopback port with a test handler: requests that reach
// the handler, requests that never do (and what they get), and the client
// side of `sluice status` (HttpGet) against it.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "agent/http_endpoint.h"
#include "agent/status_cli.h"

using namespace sluice;
using namespace sluice::agent;

namespace {

// Sends `request` (possibly partial), then reads until the server closes
// or `timeout` passes. Returns what arrived.
std::string Exchange(int port, const std::string& request, int timeout_ms = 10000,
                     bool close_write = false) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  size_t sent = 0;
  while (sent < request.size()) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, 2000) != 1) break;  // the server stopped reading
    ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  if (close_write) ::shutdown(fd, SHUT_WR);
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) != 1) continue;
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

int StatusOf(const std::string& response) {
  if (response.rfind("HTTP/1.1 ", 0) != 0) return 0;
  return std::atoi(response.c_str() + 9);
}

struct Server {
  std::atomic<int> calls{0};
  std::unique_ptr<HttpEndpoint> endpoint;
  explicit Server(HttpEndpointOptions options = {}) {
    auto started = HttpEndpoint::Start(
        "127.0.0.1:0",
        [this](const HttpRequest& r) {
          ++calls;
          HttpResponse out;
          if (r.path == "/hello") {
            out.body = "hello " + r.method + " " + r.query + "\n";
          } else {
            out.status = 404;
            out.body = "no\n";
          }
          return out;
        },
        options);
    REQUIRE(started.ok());
    endpoint = std::move(*started);
  }
  int port() const { return endpoint->port(); }
};

}  // namespace

TEST_CASE("ParseListenAddress: IPv4, names, bracketed IPv6, and refuses the rest") {
  auto a = ParseListenAddress("127.0.0.1:9464");
  REQUIRE(a.ok());
  CHECK(a->host == "127.0.0.1");
  CHECK(a->port == 9464);
  CHECK(ParseListenAddress("localhost:80").ok());
  auto v6 = ParseListenAddress("[::1]:9464");
  REQUIRE(v6.ok());
  CHECK(v6->host == "::1");
  for (const char* bad : {"", "9464", ":9464", "host:", "host:70000", "host:12a", "::1:9464",
                          "[::1:9464", "[]:1"}) {
    INFO(bad);
    CHECK_FALSE(ParseListenAddress(bad).ok());
  }
}

TEST_CASE("HttpEndpoint: GET and HEAD reach the handler with Connection: close") {
  Server server;
  std::string r = Exchange(server.port(), "GET /hello?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
  CHECK(StatusOf(r) == 200);
  CHECK(r.find("\r\nConnection: close\r\n") != std::string::npos);
  CHECK(r.find("\r\nContent-Length: 14\r\n") != std::string::npos);
  CHECK(r.substr(r.size() - 14) == "hello GET x=1\n");

  std::string head = Exchange(server.port(), "HEAD /hello HTTP/1.0\n\n");  // bare LFs too
  CHECK(StatusOf(head) == 200);
  CHECK(head.find("\r\nContent-Length: 12\r\n") != std::string::npos);
  CHECK(head.substr(head.size() - 4) == "\r\n\r\n");  // no body

  CHECK(StatusOf(Exchange(server.port(), "GET /other HTTP/1.1\r\n\r\n")) == 404);
  CHECK(server.calls == 3);
}

TEST_CASE("HttpEndpoint: bad requests are answered without the handler, and it goes on") {
  HttpEndpointOptions options;
  options.read_timeout = std::chrono::milliseconds(300);
  Server server(options);
  SECTION("other methods: 405 with Allow") {
    std::string r = Exchange(server.port(), "POST /hello HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi");
    CHECK(StatusOf(r) == 405);
    CHECK(r.find("\r\nAllow: GET, HEAD\r\n") != std::string::npos);
  }
  SECTION("not a request line: 400 at once") {
    CHECK(StatusOf(Exchange(server.port(), std::string("\x16\x03\x01\x00\xff", 5))) == 400);
    CHECK(StatusOf(Exchange(server.port(), "GET\r\n\r\n")) == 400);
    CHECK(StatusOf(Exchange(server.port(), "GET hello HTTP/1.1\r\n\r\n")) == 400);
    CHECK(StatusOf(Exchange(server.port(), "GET /a b HTTP/1.1\r\n\r\n")) == 400);
    CHECK(StatusOf(Exchange(server.port(), "GET /hello HTTP/1.1\r\nno colon\r\n\r\n")) == 400);
  }
  SECTION("another HTTP version: 505") {
    CHECK(StatusOf(Exchange(server.port(), "GET /hello HTTP/2.0\r\n\r\n")) == 505);
  }
  SECTION("headers over the limit: 431") {
    std::string big = "GET /hello HTTP/1.1\r\nX: " + std::string(100 * 1024, 'a') + "\r\n\r\n";
    CHECK(StatusOf(Exchange(server.port(), big)) == 431);
  }
  SECTION("a client that sends nothing: 408 after the read timeout") {
    CHECK(StatusOf(Exchange(server.port(), "")) == 408);
    CHECK(StatusOf(Exchange(server.port(), "GET /hel")) == 408);
  }
  SECTION("a client that goes away mid-request is just closed") {
    CHECK(Exchange(server.port(), "GET /hel", 10000, true).empty());
  }
  CHECK(server.calls == 0);
  CHECK(StatusOf(Exchange(server.port(), "GET /hello HTTP/1.1\r\n\r\n")) == 200);
}

TEST_CASE("HttpEndpoint: a port in use is refused with the address, and Stop is prompt") {
  Server server;
  auto second = HttpEndpoint::Start("127.0.0.1:" + std::to_string(server.port()),
                                    [](const HttpRequest&) { return HttpResponse{}; });
  REQUIRE_FALSE(second.ok());
  CHECK(second.status().code() == StatusCode::kUnavailable);
  CHECK(std::string(second.status().message()).find("127.0.0.1:" + std::to_string(server.port())) !=
        std::string::npos);
  auto t0 = std::chrono::steady_clock::now();
  server.endpoint->Stop();
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));
}

TEST_CASE("HttpGet (sluice status's client) against the endpoint, unreachable names the address") {
  Server server;
  auto answer = HttpGet("http://127.0.0.1:" + std::to_string(server.port()) + "/ignored", "/hello");
  REQUIRE(answer.ok());
  CHECK(answer->status == 200);
  CHECK(answer->body == "hello GET \n");
  auto plain = HttpGet("127.0.0.1:" + std::to_string(server.port()), "/nope");
  REQUIRE(plain.ok());
  CHECK(plain->status == 404);

  const int port = server.port();
  server.endpoint.reset();
  auto gone = HttpGet("http://127.0.0.1:" + std::to_string(port), "/hello");
  REQUIRE_FALSE(gone.ok());
  CHECK(std::string(gone.status().message()).find("127.0.0.1:" + std::to_string(port)) !=
        std::string::npos);
  CHECK_FALSE(HttpGet("https://127.0.0.1:1", "/").ok());
}

// HttpClient: URLs and responses from hand-written bytes (RFC 9110/9112),
// and the connection rules against a scripted server on loopback.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "platform/http_client.h"

using namespace sluice;

namespace {

// Feeds `bytes` in pieces of `step` bytes.
Status FeedInSteps(HttpResponseParser& parser, std::string_view bytes, size_t step) {
  for (size_t at = 0; at < bytes.size(); at += step) {
    RETURN_IF_ERROR(parser.Feed(bytes.substr(at, step)));
  }
  return Status::Ok();
}

// A loopback server that runs `serve` on each accepted connection, one at a
// time, and counts them.
class ScriptedServer {
 public:
  explicit ScriptedServer(std::function<void(int fd, int connection)> serve)
      : serve_(std::move(serve)) {
    listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    REQUIRE(listen(listener_, 8) == 0);
    thread_ = std::thread([this] {
      for (int n = 0;; ++n) {
        int fd = accept(listener_, nullptr, nullptr);
        if (fd < 0) return;
        accepted_++;
        serve_(fd, n);
        close(fd);
      }
    });
  }
  ~ScriptedServer() {
    shutdown(listener_, SHUT_RDWR);
    close(listener_);
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/in"; }
  int accepted() const { return accepted_.load(); }

 private:
  std::function<void(int, int)> serve_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

// Reads one request (head and Content-Length body); false at end of stream.
bool ReadRequest(int fd, std::string* head = nullptr) {
  std::string in;
  char c;
  while (in.find("\r\n\r\n") == std::string::npos) {
    if (recv(fd, &c, 1, 0) != 1) return false;
    in += c;
  }
  size_t length = 0;
  if (size_t at = in.find("Content-Length: "); at != std::string::npos) {
    length = std::stoul(in.substr(at + 16));
  }
  for (size_t got = 0; got < length; ++got) {
    if (recv(fd, &c, 1, 0) != 1) return false;
  }
  if (head != nullptr) *head = in;
  return true;
}

void Reply(int fd, const std::string& bytes) {
  (void)!send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
}

const std::string kOk = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

HttpUrl Url(const std::string& text) {
  StatusOr<HttpUrl> url = ParseHttpUrl(text);
  REQUIRE(url.ok());
  return *url;
}

}  // namespace

TEST_CASE("URLs: host, port, target, Host header, credentials, and what is refused") {
  HttpUrl u = Url("https://ops.example.com/in?token=abc#frag");
  CHECK(u.tls);
  CHECK(u.host == "ops.example.com");
  CHECK(u.port == 443);
  CHECK(u.target == "/in?token=abc");
  CHECK(u.host_header == "ops.example.com");
  CHECK(u.display == "https://ops.example.com/in?…");
  CHECK(u.authorization.empty());

  u = Url("HTTP://127.0.0.1:8080");
  CHECK_FALSE(u.tls);
  CHECK(u.port == 8080);
  CHECK(u.target == "/");
  CHECK(u.host_header == "127.0.0.1:8080");
  CHECK(u.display == "http://127.0.0.1:8080/");

  u = Url("http://[::1]:9000/a/b");
  CHECK(u.host == "::1");
  CHECK(u.host_header == "[::1]:9000");

  // RFC 7617's example: "Aladdin:open sesame".
  u = Url("http://Aladdin:open%20sesame@gw.local/x");
  CHECK(u.authorization == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
  CHECK(u.display == "http://gw.local/x");
  CHECK(u.host_header == "gw.local");

  for (const char* bad : {"ftp://h/x", "h:80/x", "http://", "http://[::1", "http://[nope]/",
                          "http://h:0/", "http://h:65536/", "http://h:8x/", "http://h/a b",
                          "http://h/a\r\nX: y", "http://h!/", "http://u:p%zz@h/"}) {
    INFO(bad);
    StatusOr<HttpUrl> r = ParseHttpUrl(bad);
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
  }
  StatusOr<HttpUrl> secret = ParseHttpUrl("http://user:hunter2@h:99999/");
  CHECK(std::string(secret.status().message()).find("hunter2") == std::string::npos);
}

TEST_CASE("responses: Content-Length, chunked, until close, 1xx skipped, fed in any pieces") {
  for (size_t step : {size_t{1}, size_t{3}, size_t{1000}}) {
    INFO("step " << step);
    {
      HttpResponseParser p(1024);
      REQUIRE(FeedInSteps(p, "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\n"
                             "content-length: 5\r\n\r\nbusy!", step).ok());
      CHECK(p.done());
      CHECK(p.keep_alive());
      CHECK(p.reply().status == 503);
      CHECK(p.reply().reason == "Service Unavailable");
      REQUIRE(p.reply().Header("RETRY-AFTER") != nullptr);
      CHECK(*p.reply().Header("retry-after") == "7");
      CHECK(p.reply().body == "busy!");
    }
    {
      // Two chunks with an extension and a trailer; the body is kept up to 6 bytes.
      HttpResponseParser p(6);
      REQUIRE(FeedInSteps(p, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "4;x=y\r\nabcd\r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n", step).ok());
      CHECK(p.done());
      CHECK(p.keep_alive());
      CHECK(p.reply().body == "abcd01");
    }
    {
      HttpResponseParser p(1024);
      REQUIRE(FeedInSteps(p, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n"
                             "Content-Length: 0\r\n\r\n", step).ok());
      CHECK(p.done());
      CHECK(p.reply().status == 201);
      CHECK(p.reply().Header("Content-Length") != nullptr);
    }
    {
      // HTTP/1.0 without a length: the body ends with the connection.
      HttpResponseParser p(1024);
      REQUIRE(FeedInSteps(p, "HTTP/1.0 200\r\n\r\nall of it", step).ok());
      CHECK_FALSE(p.done());
      CHECK(p.FeedEnd().ok());
      CHECK(p.done());
      CHECK_FALSE(p.keep_alive());
      CHECK(p.reply().reason.empty());
      CHECK(p.reply().body == "all of it");
    }
  }
  {
    HttpResponseParser p(1024);
    REQUIRE(p.Feed("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n").ok());
    CHECK(p.done());
    CHECK_FALSE(p.keep_alive());
  }
  {
    HttpResponseParser p(1024);
    REQUIRE(p.Feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf").ok());
    CHECK_FALSE(p.FeedEnd().ok());  // cut short
  }
  for (const char* bad : {"SSH-2.0-OpenSSH_9.2\r\n", "HTTP/1.1 2000 OK\r\n", "HTTP/1.1 20 OK\r\n",
                          "HTTP/1.x 200 OK\r\n",
                          "HTTP/1.1 200 OK\r\nno colon here\r\n",
                          "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                          "HTTP/1.1 101 Switching Protocols\r\n\r\n"}) {
    INFO(bad);
    HttpResponseParser p(1024);
    CHECK(p.Feed(bad).code() == StatusCode::kUnavailable);
  }
  HttpResponseParser huge(1024);
  CHECK_FALSE(huge.Feed("HTTP/1.1 200 OK\r\nX: " + std::string(70000, 'a')).ok());
}

TEST_CASE("the client keeps its connection, and sends again once on a kept one found closed") {
  std::vector<std::string> heads;
  ScriptedServer server([&](int fd, int connection) {
    std::string head;
    // Connection 0 answers two requests, then closes without saying so;
    // connection 1 answers one.
    for (int i = 0; i < (connection == 0 ? 2 : 1) && ReadRequest(fd, &head); ++i) {
      heads.push_back(head);
      Reply(fd, kOk);
    }
  });
  HttpClient client(Url(server.url()), nullptr, Millis(5000));
  const std::vector<std::string> lines = {"Content-Type: application/json"};
  for (int i = 0; i < 3; ++i) {
    StatusOr<HttpReply> r = client.Send("POST", lines, "[1]");
    INFO(i << ": " << r.status().ToString());
    REQUIRE(r.ok());
    CHECK(r->status == 200);
    CHECK(r->body == "ok");
    // Let the server close connection 0 before the third request.
    if (i == 1) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(server.accepted() == 2);
  REQUIRE(heads.size() == 3);
  CHECK(heads[0].rfind("POST /in HTTP/1.1\r\nHost: 127.0.0.1:", 0) == 0);
  CHECK(heads[0].find("Content-Length: 3\r\n") != std::string::npos);
  CHECK(heads[0].find("Content-Type: application/json\r\n") != std::string::npos);
}

TEST_CASE("the client does not take bytes a kept connection got between answers for an answer") {
  ScriptedServer server([&](int fd, int connection) {
    if (!ReadRequest(fd)) return;
    Reply(fd, kOk);
    // Connection 0 then says 408 unasked (as servers do before closing an
    // idle connection) and stays open a while; connection 1 answers 200.
    if (connection == 0) {
      Reply(fd, "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n");
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  });
  HttpClient client(Url(server.url()), nullptr, Millis(5000));
  REQUIRE(client.Send("POST", {}, "1").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  StatusOr<HttpReply> r = client.Send("POST", {}, "2");
  REQUIRE(r.ok());
  CHECK(r->status == 200);
  CHECK(server.accepted() == 2);
}

TEST_CASE("the client: no second try on a fresh connection, timeouts and Abort") {
  SECTION("a fresh connection closed without an answer is an error, sent once") {
    ScriptedServer server([](int fd, int) { ReadRequest(fd); });
    HttpClient client(Url(server.url()), nullptr, Millis(5000));
    StatusOr<HttpReply> r = client.Send("POST", {}, "x");
    CHECK(r.status().code() == StatusCode::kUnavailable);
    CHECK(std::string(r.status().message()).find("no answer from 127.0.0.1:") != std::string::npos);
    CHECK(server.accepted() == 1);
    CHECK_FALSE(client.connected());
  }
  SECTION("no answer within the timeout") {
    std::atomic<bool> release{false};
    ScriptedServer server([&](int fd, int) {
      ReadRequest(fd);
      while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    });
    HttpClient client(Url(server.url()), nullptr, Millis(300));
    StatusOr<HttpReply> r = client.Send("POST", {}, "x");
    release = true;
    CHECK(r.status().code() == StatusCode::kDeadlineExceeded);
    CHECK(std::string(r.status().message()).find("timed out after 300 ms") != std::string::npos);
  }
  SECTION("an answer that never ends still times out") {
    std::atomic<bool> release{false};
    ScriptedServer server([&](int fd, int) {
      ReadRequest(fd);
      Reply(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
      const std::string chunk = "400\r\n" + std::string(1024, 'x') + "\r\n";
      while (!release && send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL) > 0) {
      }
    });
    HttpClient client(Url(server.url()), nullptr, Millis(300));
    StatusOr<HttpReply> r = client.Send("POST", {}, "x");
    release = true;
    CHECK(r.status().code() == StatusCode::kDeadlineExceeded);
  }
  SECTION("Abort wakes a request in progress, and later ones fail at once") {
    std::atomic<bool> release{false};
    ScriptedServer server([&](int fd, int) {
      ReadRequest(fd);
      while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    });
    HttpClient client(Url(server.url()), nullptr, Millis(60000));
    std::thread aborter([&] {
      while (server.accepted() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      client.Abort();
    });
    StatusOr<HttpReply> r = client.Send("POST", {}, "x");
    aborter.join();
    release = true;
    CHECK(r.status().code() == StatusCode::kAborted);
    CHECK(client.Send("POST", {}, "x").status().code() == StatusCode::kAborted);
  }
}

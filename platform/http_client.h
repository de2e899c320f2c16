// HttpClient: HTTP/1.1 requests over one kept-alive connection (NetStream,
// so TLS is the same OpenSSL client, verified the same way, as the MQTT
// source's). Used by the HTTP sink and by `sluice status`.
//
//   ASSIGN_OR_RETURN(HttpUrl url, ParseHttpUrl("https://ops.example.com/in"));
//   HttpClient client(url, &tls_options, Millis(10000));
//   StatusOr<HttpReply> reply =
//       client.Send("POST", {"Content-Type: application/json"}, body);
//
// Why not libcurl: its dependency chain (GnuTLS, Kerberos, LDAP, SSH, RTMP)
// cost 4 MiB of resident memory in every agent, HTTP sink or not, and the
// sink needs one request at a time on one connection.
//
// What it does: http and https; user:password@ in the URL as Basic
// authorization; Content-Length, chunked and close-delimited response
// bodies; interim 1xx responses skipped; a connection kept between requests
// unless the server says close; a kept connection found closed by the server
// before any answer is opened again once and the request sent again (as
// browsers and libcurl do; the HTTP sink's requests carry an idempotency
// key). Redirects are never followed, proxies are not used.
#ifndef SLUICE_PLATFORM_HTTP_CLIENT_H_
#define SLUICE_PLATFORM_HTTP_CLIENT_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "platform/clock.h"
#include "platform/net_stream.h"
#include "platform/status.h"

namespace sluice {

struct HttpUrl {
  bool tls = false;
  std::string host;           // without IPv6 brackets
  int port = 0;
  std::string target;         // path and query as sent, at least "/"
  std::string host_header;    // the Host: value
  std::string authorization;  // "Basic …" from user:password@, else empty
  std::string password;       // from user:password@, decoded; for redacting echoes
  std::string display;        // scheme://host[:port]/path, no credentials, query as "?…"
};

// ASCII letters in any case (header names, tokens).
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

// Seconds since the epoch of an HTTP-date (RFC 9110 5.6.7: IMF-fixdate
// "Sun, 06 Nov 1994 08:49:37 GMT", the obsolete RFC 850 form
// "Sunday, 06-Nov-94 08:49:37 GMT" and asctime's "Sun Nov  6 08:49:37 1994");
// nullopt for anything else.
std::optional<int64_t> ParseHttpDate(std::string_view text);

// "http://" or "https://", a host (name, IPv4, or [IPv6]), an optional port
// and path. kInvalidArgument naming what is wrong; the message never holds
// the credentials or the query.
StatusOr<HttpUrl> ParseHttpUrl(std::string_view url);

struct HttpReply {
  int status = 0;
  std::string reason;                                        // as sent, may be empty
  std::vector<std::pair<std::string, std::string>> headers;  // as sent, trimmed
  std::string body;                                          // its first `max_body` bytes
  // The first header named `name` (any case); nullptr when none.
  const std::string* Header(std::string_view name) const;
};

// One response, from bytes as they arrive (pure; http_client_test.cpp).
class HttpResponseParser {
 public:
  // `max_body`: how much of the body is kept; the rest is read and dropped.
  explicit HttpResponseParser(size_t max_body) : max_body_(max_body) {}
  // kUnavailable for bytes that are not an HTTP/1.x response.
  Status Feed(std::string_view bytes);
  // The connection ended: completes a body that runs until close, and is
  // kUnavailable when the response was cut short.
  Status FeedEnd();
  bool done() const { return state_ == State::kDone; }
  bool started() const { return started_; }
  // Whether the connection may carry the next request.
  bool keep_alive() const { return keep_alive_; }
  const HttpReply& reply() const { return reply_; }
  HttpReply TakeReply() { return std::move(reply_); }

 private:
  enum class State { kHead, kBody, kChunkSize, kChunkData, kChunkEnd, kTrailers, kUntilClose, kDone };
  std::optional<std::string_view> NextLine();
  Status EndOfHead();
  void Keep(std::string_view bytes);
  Status Malformed(const std::string& what);

  const size_t max_body_;
  State state_ = State::kHead;
  std::string buffer_;
  size_t pos_ = 0;
  size_t head_bytes_ = 0;
  bool status_seen_ = false;
  bool started_ = false;
  bool keep_alive_ = true;
  uint64_t remaining_ = 0;  // of the body or of the chunk
  HttpReply reply_;
};

class HttpClient {
 public:
  // `tls` is used for https URLs (nullptr: the system's CA bundle, no client
  // certificate). Every Send completes within `timeout`, connecting included.
  HttpClient(HttpUrl url, const TlsOptions* tls, Millis timeout, size_t max_body = 1024);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends `method` with `header_lines` ("Name: value", no CR/LF) and `body`
  // (a Content-Length is added when it is not empty or the method is not
  // GET/HEAD; Host and Authorization come from the URL). kUnavailable for a
  // connection that fails or an answer that is not HTTP, kDeadlineExceeded
  // when `timeout` passes, kAborted after Abort(); the message says which.
  StatusOr<HttpReply> Send(std::string_view method, std::span<const std::string> header_lines,
                           std::string_view body);
  // Thread-safe: a Send in progress returns kAborted soon, and so does every
  // later one.
  void Abort();
  // Whether a connection is open (it may still turn out closed by the peer).
  bool connected() const { return stream_ != nullptr; }
  const HttpUrl& url() const { return url_; }

 private:
  StatusOr<HttpReply> SendOnce(std::string_view request, std::string_view body,
                               SteadyTime deadline, bool* retry);

  const HttpUrl url_;
  const std::optional<TlsOptions> tls_;
  const Millis timeout_;
  const size_t max_body_;
  int cancel_fd_ = -1;  // eventfd; readable once Abort() was called
  std::atomic<bool> aborted_{false};
  std::unique_ptr<NetStream> stream_;
};

}  // namespace sluice

#endif  // SLUICE_PLATFORM_HTTP_CLIENT_H_

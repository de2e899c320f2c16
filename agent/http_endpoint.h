// HttpEndpoint: a small HTTP/1.1 server for the agent's GET routes
// (/metrics, /healthz, /readyz, /status), with no dependency beyond POSIX.
//
// One thread, poll()-based. Every response carries `Connection: close`, so a
// connection serves one request. What a bad client can cost is bounded: a
// request (line and headers) larger than `max_request_bytes` gets 431, one
// that does not arrive within `read_timeout` gets 408, a line that is not
// "METHOD /path HTTP/1.x" gets 400, and at most `max_connections` are open
// at once (further clients wait in the listen backlog). Methods other than
// GET and HEAD get 405 (HEAD: the GET response without its body). The
// handler runs on the endpoint's thread: it must not block for long.
//
//   ASSIGN_OR_RETURN(auto endpoint, HttpEndpoint::Start("127.0.0.1:9464",
//       [](const HttpRequest& r) { return HttpResponse{200, "text/plain", "ok\n"}; }));
//   ...
//   endpoint.reset();  // stops serving, joins the thread
#ifndef SLUICE_AGENT_HTTP_ENDPOINT_H_
#define SLUICE_AGENT_HTTP_ENDPOINT_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "platform/clock.h"
#include "platform/status.h"

namespace sluice::agent {

struct HttpRequest {
  std::string method;  // "GET" or "HEAD" (others never reach the handler)
  std::string path;    // without the query string
  std::string query;   // after '?', undecoded; may be empty
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra ones
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

struct HttpEndpointOptions {
  size_t max_request_bytes = 8192;  // request line and headers
  Millis read_timeout{5000};        // for the whole request to arrive
  Millis write_timeout{10000};      // for the whole response to leave
  size_t max_connections = 8;
};

// "host:port": an IPv4 literal, "localhost", a host name, or "[v6]:port".
// InvalidArgument when it is none of these.
struct ListenAddress {
  std::string host;  // without brackets
  int port = 0;
};
StatusOr<ListenAddress> ParseListenAddress(std::string_view address);

class HttpEndpoint {
 public:
  // Binds `address` (kUnavailable naming it when it cannot, e.g. the port is
  // taken) and starts serving on a thread of its own.
  static StatusOr<std::unique_ptr<HttpEndpoint>> Start(const std::string& address,
                                                       HttpHandler handler,
                                                       HttpEndpointOptions options = {});
  ~HttpEndpoint();  // Stop()
  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  // Closes the listening socket and every connection; joins the thread.
  void Stop();

  // The port actually bound (useful with port 0).
  int port() const;

  class Impl;

 private:
  explicit HttpEndpoint(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The reason phrase of `status` ("Not Found"); "Unknown" for others.
std::string_view HttpReason(int status);

}  // namespace sluice::agent

#endif  // SLUICE_AGENT_HTTP_ENDPOINT_H_

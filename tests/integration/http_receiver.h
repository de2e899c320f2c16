// HttpReceiver: the test HTTP server (tests/integration/http_receiver.cc) as
// a child process on its own loopback port, with its fault switches and the
// requests it received.
//
//   HttpReceiver receiver;                        // free port, log in its TempDir; not started
//   receiver.Start();                             // returns once it listens
//   sink_config.url = receiver.url();             // http://127.0.0.1:PORT/ingest
//   HttpFault fault;
//   fault.retry_after = "1";
//   receiver.Fail(503, 3, fault);                 // the next 3 requests get 503, Retry-After: 1
//   receiver.Kill();                              // SIGKILL, reaped
//   receiver.Start();                             // again, same port, same log
//   REQUIRE(WaitUntil([&] { return receiver.RecordIds().size() >= 1000; }, 60s));
//   for (const ReceivedRequest& r : receiver.Requests()) ...
//
// The log survives restarts: Requests() returns every request any run of
// the receiver logged, in arrival order. A request is logged before it is
// answered, so a request the sender saw fail may still be in the log (with
// the status it was going to get). Throws std::runtime_error when the
// receiver cannot be started or controlled. Not thread-safe; start it from
// the test's main thread (see ChildProcess).
#ifndef SLUICE_TESTS_INTEGRATION_HTTP_RECEIVER_H_
#define SLUICE_TESTS_INTEGRATION_HTTP_RECEIVER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/integration/harness.h"

namespace sluice::testing {

// One logged request (see http_receiver.cc for the line format).
struct ReceivedRequest {
  int64_t time_ms = 0;  // wall clock, epoch ms
  int64_t mono_ms = 0;  // CLOCK_MONOTONIC ms: for gaps between arrivals
  std::string method;
  std::string path;
  int status = 0;       // what the receiver answered (or was about to)
  std::string idempotency_key;
  std::string content_encoding;
  std::string content_type;
  int content_type_count = 0;  // Content-Type headers in the request
  std::string user_agent;
  int64_t content_length = 0;  // bytes on the wire (compressed when gzip)
  int64_t body_bytes = 0;      // bytes after decoding
  int64_t records = -1;        // elements of the JSON array; -1 when not an array
  std::vector<std::string> ids;  // each element's "id" member, in order
  nlohmann::json body;           // the decoded body (a string when not JSON)
  nlohmann::json headers;        // every request header, by name
};

struct HttpFault {
  std::string retry_after;  // Retry-After header value; empty: none
  std::string body;         // response body; empty: "{}"
  std::string location;     // Location header (for 3xx)
  int delay_ms = 0;         // wait this long before answering
};

struct HttpReceiverOptions {
  // HTTPS when set: the server's certificate and key, and (optional) the CA
  // a client certificate must chain to (then one is required).
  std::string tls_cert;
  std::string tls_key;
  std::string client_ca;
  // For the control requests when the receiver requires a client certificate.
  std::string control_cert;
  std::string control_key;
};

class HttpReceiver {
 public:
  explicit HttpReceiver(HttpReceiverOptions options = {});  // picks a port; not started
  ~HttpReceiver();                                          // kills it if running
  HttpReceiver(const HttpReceiver&) = delete;
  HttpReceiver& operator=(const HttpReceiver&) = delete;

  // Starts it (again, on the same port, appending to the same log) and
  // returns once it listens; throws with its stderr if that takes over 10 s.
  void Start();
  void Stop();  // SIGTERM and wait
  void Kill();  // SIGKILL and wait
  bool Running();

  int port() const { return port_; }
  // "http://127.0.0.1:PORT/ingest" (https when TLS is on).
  std::string url(std::string_view path = "/ingest") const;

  // The next `count` requests get `status` (and the fault's headers, body, delay).
  void Fail(int status, int count = 1, const HttpFault& fault = {});
  void ClearFaults();

  // Every request logged so far, oldest first.
  std::vector<ReceivedRequest> Requests() const;
  // The ids of every record in requests answered 2xx, in arrival order.
  std::vector<std::string> RecordIds() const;

  std::string log_path() const { return dir_.File("requests.jsonl"); }
  std::string stderr_text() const { return ReadFile(dir_.File("receiver.err")); }

 private:
  void Control(const std::string& query);

  HttpReceiverOptions options_;
  TempDir dir_;
  int port_;
  std::unique_ptr<ChildProcess> process_;
};

// The test receiver's executable (compile definition HTTP_RECEIVER_BINARY).
std::string HttpReceiverBinary();

// With the openssl command line in `dir`: ca.crt/ca.key, server.crt/.key for
// 127.0.0.1 (signed by ca), client.crt/.key (signed by ca), and other.crt, a
// CA nothing chains to. Throws when openssl fails.
void MakeTestCertificates(const std::string& dir);

}  // namespace sluice::testing

#endif  // SLUICE_TESTS_INTEGRATION_HTTP_RECEIVER_H_

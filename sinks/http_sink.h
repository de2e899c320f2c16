// HttpSink: sends each batch as one HTTP request (platform/http_client.h).
//
//   config::HttpSinkConfig http;
//   http.url = "https://ops.example.com/alerts";
//   StatusOr<std::unique_ptr<Sink>> sink = NewHttpSink("ops", http);
//   DeliveryLoop loop("ops", **sink, *queue, *dead_letters, clock);
//
// The request: POST (or PUT) of a JSON array of the records' bodies as they
// are queued (`[{...},{...}]`), Content-Type: application/json, optionally
// gzip-compressed (Content-Encoding: gzip), the configured headers, and an
// `Idempotency-Key` derived from the batch's record ids, so a retried batch
// (the delivery loop retries a batch exactly as it was) carries the same key.
//
// The verdict (WriteResult):
//   2xx                                   delivered
//   408, 5xx, connection or timeout error kUnavailable, transient (Retry-After honoured)
//   429                                   kResourceExhausted, transient (Retry-After honoured)
//   3xx                                   kUnavailable: redirects are never followed; the
//                                         error names the target so the url can be fixed
//   401, 403                              kPermissionDenied: refused for good (dead-lettered)
//   other 4xx                             kInvalidArgument: refused for good (dead-lettered)
//   Abort()                               kAborted, transient: the batch stays queued
//                                         (and every later Write returns it at once)
// Header values never appear in errors or logs. One connection is kept open
// between requests; the whole request, connecting included, must finish
// within `timeout`; redirects are never followed, proxies (http_proxy) not
// used; User-Agent is sluice/<version>.
#ifndef SLUICE_SINKS_HTTP_SINK_H_
#define SLUICE_SINKS_HTTP_SINK_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "config/config.h"
#include "platform/envelope.h"
#include "platform/status.h"
#include "sinks/sink.h"

namespace sluice::sinks {

// kInvalidArgument for a url that is not http(s)://host[:port][/path] or a
// header that would break the request (CR/LF in a name or value).
StatusOr<std::unique_ptr<Sink>> NewHttpSink(const std::string& sink_name,
                                            const config::HttpSinkConfig& config);
// NewHttpSink's checks of the url and headers (`sluice validate`).
Status CheckHttpSink(const config::HttpSinkConfig& config);

// The pieces of a request, pure functions for tests (http_sink_test.cpp).

// `[b1,b2,...]`: the bodies as they are (each already a JSON object).
std::string HttpBatchBody(std::span<const Envelope> batch);

// 32 hex digits from the batch's record ids, in order; the same ids give the
// same key in every process and build.
std::string HttpIdempotencyKey(std::span<const Envelope> batch);

// A gzip member (RFC 1952) holding `data`.
StatusOr<std::string> GzipCompress(std::string_view data);

// Retry-After as delta-seconds or an HTTP-date, relative to `now_epoch_ms`,
// at most `cap`; a date in the past is 0. nullopt for anything else.
std::optional<Millis> ParseRetryAfter(std::string_view value, int64_t now_epoch_ms,
                                      Millis cap = Millis(600000));

// What the sink learnt from one response, for HttpVerdict.
struct HttpResponse {
  long status = 0;                         // e.g. 503
  std::string reason;                      // "Service Unavailable", from the status line
  std::string body_excerpt;                // the first bytes of the body
  std::optional<std::string> retry_after;  // the header's value
  std::optional<std::string> location;     // for 3xx
};

// The WriteResult for a response to `request` ("sink 'ops': POST https://…"),
// per the table at the top of this file.
WriteResult HttpVerdict(const std::string& request, const HttpResponse& response,
                        int64_t now_epoch_ms);

}  // namespace sluice::sinks

#endif  // SLUICE_SINKS_HTTP_SINK_H_

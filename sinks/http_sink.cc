#include "sinks/http_sink.h"

#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <mutex>
#include <set>
#include <vector>

#include "platform/build_info.h"
#include "platform/fnv1a.h"
#include "platform/http_client.h"
#include "platform/json_text.h"

namespace sluice::sinks {
namespace {

// How much of an error response's body goes into the reason.
constexpr size_t kBodyExcerptBytes = 200;
// How much of a response body is kept at all; the rest is read and dropped,
// so a huge body costs no memory and the connection stays reusable.
constexpr size_t kBodyKeptBytes = 1024;
// Longest Retry-After value looked at.
constexpr size_t kHeaderKeptBytes = 2048;

// ---------------------------------------------------------------------------
// Pure pieces.

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Printable, valid UTF-8, at most kBodyExcerptBytes (plus "…" when cut): a
// receiver's body goes into errors, logs and dead-letter reasons.
std::string Excerpt(std::string_view body) {
  bool cut = body.size() > kBodyExcerptBytes;
  std::string s(body.substr(0, kBodyExcerptBytes));
  // Do not end inside a multi-byte character.
  for (int i = 0; i < 3 && !s.empty() && !IsValidUtf8(s); ++i) s.pop_back();
  if (!IsValidUtf8(s)) {
    for (char& c : s) {
      if (static_cast<unsigned char>(c) >= 0x80) c = '?';
    }
  }
  for (char& c : s) {
    if (c == '\r' || c == '\n' || c == '\t') {
      c = ' ';
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      c = '?';
    }
  }
  s = std::string(Trim(s));
  if (cut) s += "…";
  return s;
}

std::string_view StandardReason(long status) {
  switch (status) {
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "";
  }
}

// MurmurHash3's finaliser: spreads every input bit over the output.
uint64_t Mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

void AppendHex(std::string& out, uint64_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (int shift = 60; shift >= 0; shift -= 4) out += kDigits[(v >> shift) & 0xf];
}

// ---------------------------------------------------------------------------

class HttpSink : public Sink {
 public:
  HttpSink(std::string name, config::HttpSinkConfig config)
      : name_(std::move(name)), config_(std::move(config)) {}

  Status Init() {
    RETURN_IF_ERROR(CheckHttpSink(config_));
    StatusOr<HttpUrl> url = ParseHttpUrl(config_.url);
    if (!url.ok()) return url.status();
    request_context_ = "sink '" + name_ + "': " + config_.method + " " + url->display;
    if (!url->authorization.empty()) {
      secrets_.push_back(url->authorization.substr(url->authorization.find(' ') + 1));
      secrets_.push_back(url->password);
    }
    std::optional<TlsOptions> tls;
    if (config_.tls) tls = TlsOptions{config_.tls->ca, config_.tls->cert, config_.tls->key};
    const Millis timeout = std::max(Millis(1), config_.timeout);
    client_ = std::make_unique<HttpClient>(std::move(*url), tls ? &*tls : nullptr, timeout,
                                           kBodyKeptBytes);
    // Content-Type and User-Agent in `headers` replace the sink's own.
    auto configured = [&](std::string_view name) {
      return std::any_of(config_.headers.begin(), config_.headers.end(),
                         [&](const auto& h) { return EqualsIgnoreCase(h.first, name); });
    };
    fixed_headers_.clear();
    if (!configured("Content-Type")) fixed_headers_.push_back("Content-Type: application/json");
    if (!configured("User-Agent")) {
      fixed_headers_.push_back(std::string("User-Agent: sluice/") + build_info::kVersion);
    }
    if (config_.gzip) fixed_headers_.push_back("Content-Encoding: gzip");
    for (const auto& [header, value] : config_.headers) {
      fixed_headers_.push_back(header + ": " + value.value());
      secrets_.push_back(value.value());
    }
    return Status::Ok();
  }

  BatchLimits batch_limits() const override {
    // The loop counts each body plus one separator; the array's brackets
    // make the request one byte longer than that, so leave room for it:
    // max_bytes then bounds the (uncompressed) request body.
    uint64_t max_bytes = config_.max_bytes > 1 ? config_.max_bytes - 1 : config_.max_bytes;
    return {static_cast<size_t>(std::max(1, config_.max_records)), max_bytes, config_.max_delay};
  }

  WriteResult Write(std::span<const Envelope> batch) override {
    if (aborted_.load()) return {Aborted("shutting down, not sent"), {}, std::nullopt};
    std::string body = HttpBatchBody(batch);
    if (config_.gzip) {
      StatusOr<std::string> compressed = GzipCompress(body);
      if (!compressed.ok()) {
        return {compressed.status().WithContext(request_context_), {}, std::nullopt};
      }
      body = std::move(*compressed);
    }
    fixed_headers_.push_back("Idempotency-Key: " + HttpIdempotencyKey(batch));
    tried_.store(true);
    StatusOr<HttpReply> reply = client_->Send(config_.method, fixed_headers_, body);
    fixed_headers_.pop_back();

    if (!reply.ok()) {
      if (reply.status().code() == StatusCode::kAborted) {
        return {Aborted("shutting down, request abandoned (the batch stays queued)"), {},
                std::nullopt};
      }
      connected_.store(false);
      return {Status::Unavailable(request_context_ + ": " + std::string(reply.status().message())),
              {}, std::nullopt};
    }
    connected_.store(true);
    HttpResponse response;
    response.status = reply->status;
    response.reason = Excerpt(reply->reason);
    if (response.reason.empty()) response.reason = std::string(StandardReason(response.status));
    if (const std::string* retry_after = reply->Header("Retry-After")) {
      response.retry_after = retry_after->substr(0, kHeaderKeptBytes);
    }
    if (const std::string* location = reply->Header("Location")) {
      response.location = Excerpt(*location);
    }
    // Redacted before the cut, so that no part of a secret is left at its end.
    response.body_excerpt = Excerpt(RedactSecrets(reply->body));
    const int64_t now_ms = std::chrono::duration_cast<Millis>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
    return HttpVerdict(request_context_, response, now_ms);
  }

  void Abort() override {
    aborted_.store(true);
    if (client_) client_->Abort();  // thread-safe; wakes a request in progress
  }

  // Unknown until the first request: an alerts sink idle since the start is
  // not down.
  std::optional<bool> connected() const override {
    if (!tried_.load()) return std::nullopt;
    return connected_.load();
  }

 private:
  Status Aborted(const std::string& what) const {
    return Status(StatusCode::kAborted, request_context_ + ": " + what);
  }

  // A receiver that echoes the request must not put a header's value or the
  // url's credentials (the Basic token, the password) into our logs, the
  // sink's last error or a dead letter.
  // Every occurrence is found in the answer as it came, then replaced: a
  // secret that is part of "<secret>" cannot match the marker again.
  std::string RedactSecrets(const std::string& text) const {
    std::vector<bool> hidden(text.size(), false);
    for (const std::string& secret : secrets_) {
      if (secret.size() < 4) continue;
      for (size_t at = text.find(secret); at != std::string::npos; at = text.find(secret, at + 1)) {
        std::fill(hidden.begin() + static_cast<std::ptrdiff_t>(at),
                  hidden.begin() + static_cast<std::ptrdiff_t>(at + secret.size()), true);
      }
    }
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
      if (!hidden[i]) {
        out += text[i];
      } else if (i == 0 || !hidden[i - 1]) {
        out += "<secret>";
      }
    }
    return out;
  }

  const std::string name_;
  const config::HttpSinkConfig config_;
  std::string request_context_;  // "sink 'ops': POST https://host/path"
  std::vector<std::string> secrets_;  // redacted from what the server answers
  std::vector<std::string> fixed_headers_;  // every request's, the key appended per request
  std::unique_ptr<HttpClient> client_;

  std::atomic<bool> aborted_{false};
  std::atomic<bool> connected_{false};
  std::atomic<bool> tried_{false};
};

}  // namespace

// ---------------------------------------------------------------------------

std::string HttpBatchBody(std::span<const Envelope> batch) {
  size_t size = 2;
  for (const Envelope& e : batch) size += e.body.size() + 1;
  std::string out;
  out.reserve(size);
  out += '[';
  for (size_t i = 0; i < batch.size(); ++i) {
    if (i > 0) out += ',';
    out += batch[i].body;
  }
  out += ']';
  return out;
}

std::string HttpIdempotencyKey(std::span<const Envelope> batch) {
  // Two 64-bit FNV-1a streams with different seeds, each id preceded by its
  // length (so "ab","c" and "a","bc" differ), finished with a mixer.
  uint64_t a = kFnv1aBasis;
  uint64_t b = 0x84222325cbf29ce4ull;
  for (const Envelope& e : batch) {
    const uint64_t n = e.id.size();
    const char len[8] = {static_cast<char>(n), static_cast<char>(n >> 8),
                         static_cast<char>(n >> 16), static_cast<char>(n >> 24),
                         static_cast<char>(n >> 32), static_cast<char>(n >> 40),
                         static_cast<char>(n >> 48), static_cast<char>(n >> 56)};
    a = Fnv1a(e.id, Fnv1a(std::string_view(len, 8), a));
    b = Fnv1a(std::string_view(len, 8), Fnv1a(e.id, b));
  }
  std::string key;
  key.reserve(32);
  AppendHex(key, Mix(a ^ (b >> 1)));
  AppendHex(key, Mix(b + 0x9e3779b97f4a7c15ull * batch.size()));
  return key;
}

StatusOr<std::string> GzipCompress(std::string_view data) {
  if (data.size() > (1ull << 31)) {
    return Status::InvalidArgument("gzip: a body of " + std::to_string(data.size()) +
                                   " bytes is larger than one request may be");
  }
  z_stream z{};
  // windowBits 15 + 16: a gzip header and trailer instead of zlib's.
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return Status::Internal("gzip: deflateInit2 failed");
  }
  std::string out;
  out.resize(deflateBound(&z, static_cast<uLong>(data.size())));
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&z, Z_FINISH);
  const size_t written = out.size() - z.avail_out;
  deflateEnd(&z);
  if (rc != Z_STREAM_END) return Status::Internal("gzip: deflate failed (" + std::to_string(rc) + ")");
  out.resize(written);
  return out;
}

std::optional<Millis> ParseRetryAfter(std::string_view value, int64_t now_epoch_ms, Millis cap) {
  value = Trim(value);
  if (value.empty() || value.size() > 64) return std::nullopt;
  if (std::all_of(value.begin(), value.end(),
                  [](char c) { return c >= '0' && c <= '9'; })) {
    // Delta-seconds; more digits than fit are simply "longer than the cap".
    if (value.size() > 9) return cap;
    int64_t seconds = 0;
    for (char c : value) seconds = seconds * 10 + (c - '0');
    return std::min(cap, Millis(seconds * 1000));
  }
  // An HTTP-date: "Sun, 06 Nov 1994 08:49:37 GMT" (or the obsolete RFC 850
  // and asctime forms). Must contain a letter: bare
  // signs or decimals ("-1", "1.5") are garbage, not a date.
  if (!std::any_of(value.begin(), value.end(),
                   [](char c) { return std::isalpha(static_cast<unsigned char>(c)); })) {
    return std::nullopt;
  }
  const std::optional<int64_t> when = ParseHttpDate(value);
  if (!when) return std::nullopt;
  const int64_t delta_ms = *when * 1000 - now_epoch_ms;
  if (delta_ms <= 0) return Millis(0);
  return std::min(cap, Millis(delta_ms));
}

WriteResult HttpVerdict(const std::string& request, const HttpResponse& response,
                        int64_t now_epoch_ms) {
  const long code = response.status;
  std::string what = request + ": " + std::to_string(code);
  if (!response.reason.empty()) what += " " + response.reason;
  if (code >= 200 && code < 300) return {Status::Ok(), {}, std::nullopt};
  if (code >= 300 && code < 400) {
    // Not followed: a POST redirected may turn into a GET, and a redirect
    // may point anywhere. Nothing is lost; the operator fixes the url.
    what += ": redirects are not followed; fix the sink's url";
    what += response.location ? " (the server points to " + *response.location + ")"
                              : " (no Location given)";
    return {Status::Unavailable(what), {}, std::nullopt};
  }
  if (!response.body_excerpt.empty()) what += ": " + response.body_excerpt;
  std::optional<Millis> retry_after;
  if (response.retry_after) retry_after = ParseRetryAfter(*response.retry_after, now_epoch_ms);
  if (code == 429) return {Status::ResourceExhausted(what), {}, retry_after};
  if (code == 408 || code >= 500) return {Status::Unavailable(what), {}, retry_after};
  if (code == 401 || code == 403) return {Status::PermissionDenied(what), {}, std::nullopt};
  if (code >= 400 && code < 500) return {Status::InvalidArgument(what), {}, std::nullopt};
  // 1xx as a final answer, or a code outside 100-599: not a verdict we can trust.
  return {Status::Unavailable(what + ": unexpected HTTP status"), {}, std::nullopt};
}

Status CheckHttpSink(const config::HttpSinkConfig& config) {
  std::set<std::string> seen;  // header names, lower case
  for (const auto& [header, value] : config.headers) {
    std::string lower = header;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!seen.insert(lower).second) {
      return Status::InvalidArgument("header '" + Excerpt(header) +
                                     "' is given twice (names are case-insensitive)");
    }
    // RFC 9110's token characters only.
    const bool token = !header.empty() && std::all_of(header.begin(), header.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) ||
             std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    });
    if (!token) {
      return Status::InvalidArgument("header name '" + Excerpt(header) +
                                     "' is not a valid HTTP header name");
    }
    // The request's framing is the sink's: a second length or coding
    // would make the receiver read another body than the one sent, a second
    // key could make it drop batches it never saw.
    for (const char* own : {"Content-Length", "Transfer-Encoding", "Host", "Content-Encoding",
                            "Idempotency-Key"}) {
      if (EqualsIgnoreCase(header, own)) {
        return Status::InvalidArgument("header '" + header + "' is set by the sink itself");
      }
    }
    if (EqualsIgnoreCase(header, "Authorization") && config.url.find('@') != std::string::npos) {
      StatusOr<HttpUrl> url = ParseHttpUrl(config.url);
      if (url.ok() && !url->authorization.empty()) {
        return Status::InvalidArgument(
            "header 'Authorization' and credentials in the url: give one of them");
      }
    }
    if (value.value().find_first_of("\r\n") != std::string::npos) {
      return Status::InvalidArgument("the value of header '" + header +
                                     "' holds a line break");  // the value is a secret
    }
  }
  return ParseHttpUrl(config.url).status();
}

StatusOr<std::unique_ptr<Sink>> NewHttpSink(const std::string& sink_name,
                                            const config::HttpSinkConfig& config) {
  auto sink = std::make_unique<HttpSink>(sink_name, config);
  RETURN_IF_ERROR(sink->Init());
  return std::unique_ptr<Sink>(std::move(sink));
}

}  // namespace sluice::sinks

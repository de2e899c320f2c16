// The HTTP sink's pure pieces, without a network: request body, idempotency
// key, gzip, Retry-After parsing and the response → verdict mapping.
#include <catch2/catch.hpp>
#include <zlib.h>

#include "sinks/http_sink.h"

using namespace sluice;
using namespace sluice::sinks;

namespace {

std::vector<Envelope> Batch(std::initializer_list<std::string> ids) {
  std::vector<Envelope> v;
  for (const std::string& id : ids) v.push_back({id, "", "{\"id\":\"" + id + "\"}"});
  return v;
}

std::string Gunzip(const std::string& in) {
  z_stream z{};
  REQUIRE(inflateInit2(&z, 15 + 16) == Z_OK);
  std::string out(1 << 20, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  int rc = inflate(&z, Z_FINISH);
  out.resize(out.size() - z.avail_out);
  inflateEnd(&z);
  REQUIRE(rc == Z_STREAM_END);
  return out;
}

constexpr int64_t kNow = 784111777000;  // Sun, 06 Nov 1994 08:49:37 GMT
const std::string kRequest = "sink 'ops': POST http://127.0.0.1:8080/ingest";

HttpResponse Response(long status, std::string reason = "", std::string body = "") {
  HttpResponse r;
  r.status = status;
  r.reason = std::move(reason);
  r.body_excerpt = std::move(body);
  return r;
}

}  // namespace

TEST_CASE("the body is a JSON array of the records' bodies as they are") {
  CHECK(HttpBatchBody(Batch({"a", "b"})) == R"([{"id":"a"},{"id":"b"}])");
  CHECK(HttpBatchBody(Batch({"a"})) == R"([{"id":"a"}])");
  CHECK(HttpBatchBody({}) == "[]");
}

TEST_CASE("the idempotency key depends on the ids, in order, and nothing else") {
  const std::string key = HttpIdempotencyKey(Batch({"a", "b", "c"}));
  CHECK(key.size() == 32);
  CHECK(key.find_first_not_of("0123456789abcdef") == std::string::npos);
  std::vector<Envelope> same_ids = Batch({"a", "b", "c"});
  same_ids[1].body = "{\"other\":1}";
  CHECK(HttpIdempotencyKey(same_ids) == key);
  CHECK(HttpIdempotencyKey(Batch({"a", "c", "b"})) != key);
  CHECK(HttpIdempotencyKey(Batch({"a", "b"})) != key);
  CHECK(HttpIdempotencyKey(Batch({"ab", "c"})) != HttpIdempotencyKey(Batch({"a", "bc"})));
  // Fixed across builds and processes: a receiver may compare keys from
  // before and after an agent restart.
  CHECK(HttpIdempotencyKey(Batch({"a", "b", "c"})) == key);
}

TEST_CASE("gzip bodies gunzip to the original") {
  std::string text;
  for (int i = 0; i < 1000; ++i) text += R"({"id":"r)" + std::to_string(i) + R"(","v":21.5},)";
  StatusOr<std::string> packed = GzipCompress(text);
  REQUIRE(packed.ok());
  CHECK(packed->size() < text.size() / 4);
  CHECK(static_cast<unsigned char>((*packed)[0]) == 0x1f);
  CHECK(static_cast<unsigned char>((*packed)[1]) == 0x8b);
  CHECK(Gunzip(*packed) == text);
  CHECK(Gunzip(*GzipCompress("")).empty());
}

TEST_CASE("Retry-After: delta-seconds, HTTP-dates, a cap, and garbage ignored") {
  CHECK(ParseRetryAfter("1", kNow) == Millis(1000));
  CHECK(ParseRetryAfter(" 120 ", kNow) == Millis(120000));
  CHECK(ParseRetryAfter("0", kNow) == Millis(0));
  CHECK(ParseRetryAfter("3600", kNow) == Millis(600000));  // capped at 10 minutes
  CHECK(ParseRetryAfter("99999999999999999999999", kNow) == Millis(600000));
  CHECK(ParseRetryAfter("Sun, 06 Nov 1994 08:49:47 GMT", kNow) == Millis(10000));
  CHECK(ParseRetryAfter("Sunday, 06-Nov-94 08:49:47 GMT", kNow) == Millis(10000));  // RFC 850
  CHECK(ParseRetryAfter("Sun Nov  6 08:49:47 1994", kNow) == Millis(10000));  // asctime
  CHECK(ParseRetryAfter("Sun, 06 Nov 1994 08:49:00 GMT", kNow) == Millis(0));  // past
  CHECK(ParseRetryAfter("Mon, 07 Nov 1994 08:49:37 GMT", kNow) == Millis(600000));
  for (const char* garbage : {"", "  ", "-1", "1.5", "soon", "0x10", "1 2", "\x01\xff",
                              "Sun, 99 Foo 1994 99:99:99 GMT",
                              "Sun, 06 Nov 1994 25:00:00 GMT", "Sun, 06 Nov 1994 08:49 GMT",
                              "Sun, 32 Nov 1994 08:49:47 GMT"}) {
    INFO(garbage);
    CHECK_FALSE(ParseRetryAfter(garbage, kNow).has_value());
  }
  CHECK_FALSE(ParseRetryAfter(std::string(10000, '9') + "x", kNow).has_value());
}

TEST_CASE("responses map to verdicts") {
  SECTION("2xx: delivered") {
    for (long code : {200L, 201L, 202L, 204L}) {
      WriteResult r = HttpVerdict(kRequest, Response(code), kNow);
      CHECK(r.status.ok());
      CHECK(r.rejected.empty());
    }
  }
  SECTION("5xx and 408: transient, with Retry-After") {
    HttpResponse resp = Response(503, "Service Unavailable", "down for maintenance");
    resp.retry_after = "7";
    WriteResult r = HttpVerdict(kRequest, resp, kNow);
    CHECK(r.status.code() == StatusCode::kUnavailable);
    CHECK(r.status.message() == kRequest + ": 503 Service Unavailable: down for maintenance");
    CHECK(r.retry_after == Millis(7000));
    CHECK(HttpVerdict(kRequest, Response(500), kNow).status.code() == StatusCode::kUnavailable);
    CHECK(HttpVerdict(kRequest, Response(408), kNow).status.code() == StatusCode::kUnavailable);
    CHECK_FALSE(HttpVerdict(kRequest, Response(502), kNow).retry_after.has_value());
  }
  SECTION("429: resource exhausted, transient, garbage Retry-After ignored") {
    HttpResponse resp = Response(429, "Too Many Requests");
    resp.retry_after = "whenever";
    WriteResult r = HttpVerdict(kRequest, resp, kNow);
    CHECK(r.status.code() == StatusCode::kResourceExhausted);
    CHECK(IsTransient(r.status));
    CHECK_FALSE(r.retry_after.has_value());
  }
  SECTION("3xx: transient, naming the target, never followed") {
    HttpResponse resp = Response(301, "Moved Permanently");
    resp.location = "https://new.example.com/in";
    WriteResult r = HttpVerdict(kRequest, resp, kNow);
    CHECK(r.status.code() == StatusCode::kUnavailable);
    CHECK(r.status.message().find("301 Moved Permanently") != std::string::npos);
    CHECK(r.status.message().find("https://new.example.com/in") != std::string::npos);
    CHECK(r.status.message().find("fix the sink's url") != std::string::npos);
  }
  SECTION("401, 403: refused for good as permission denied") {
    CHECK(HttpVerdict(kRequest, Response(401, "Unauthorized"), kNow).status.code() ==
          StatusCode::kPermissionDenied);
    CHECK(HttpVerdict(kRequest, Response(403), kNow).status.code() == StatusCode::kPermissionDenied);
  }
  SECTION("other 4xx: refused for good as invalid, with the body excerpt") {
    WriteResult r = HttpVerdict(kRequest, Response(400, "Bad Request", "missing field"), kNow);
    CHECK(r.status.code() == StatusCode::kInvalidArgument);
    CHECK_FALSE(IsTransient(r.status));
    CHECK(r.status.message() == kRequest + ": 400 Bad Request: missing field");
    CHECK(HttpVerdict(kRequest, Response(413), kNow).status.code() == StatusCode::kInvalidArgument);
    CHECK(HttpVerdict(kRequest, Response(404), kNow).status.code() == StatusCode::kInvalidArgument);
  }
  SECTION("nonsense status codes are not trusted as delivery") {
    CHECK(HttpVerdict(kRequest, Response(0), kNow).status.code() == StatusCode::kUnavailable);
    CHECK(HttpVerdict(kRequest, Response(999), kNow).status.code() == StatusCode::kUnavailable);
    CHECK(HttpVerdict(kRequest, Response(101), kNow).status.code() == StatusCode::kUnavailable);
  }
}

TEST_CASE("bad sink config fails at creation, without printing header values") {
  config::HttpSinkConfig c;
  c.url = "http://127.0.0.1:1/in";
  c.headers["X-Token"] = config::Secret("line1\r\nInjected: yes");
  StatusOr<std::unique_ptr<Sink>> s = NewHttpSink("ops", c);
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().code() == StatusCode::kInvalidArgument);
  CHECK(s.status().message().find("Injected") == std::string::npos);

  for (const char* name : {"X Token", "X-\x01", "", "Content-Length", "transfer-encoding", "Host"}) {
    INFO(name);
    c.headers.clear();
    c.headers[name] = config::Secret("v");
    CHECK(NewHttpSink("ops", c).status().code() == StatusCode::kInvalidArgument);
  }
  c.headers.clear();
  c.headers["X-Api-Key_1"] = config::Secret("v");
  CHECK(NewHttpSink("ops", c).ok());
  c.headers.clear();
  c.url = "http://[::1";
  CHECK_FALSE(NewHttpSink("ops", c).ok());

  c.url = "http://127.0.0.1:1/in";
  c.max_records = 50;
  c.max_bytes = 4000;
  c.max_delay = Millis(250);
  auto sink = NewHttpSink("ops", c);
  REQUIRE(sink.ok());
  BatchLimits limits = (*sink)->batch_limits();
  CHECK(limits.max_records == 50);
  CHECK(limits.max_bytes == 3999);  // room for the array's brackets
  CHECK(limits.max_delay == Millis(250));
}

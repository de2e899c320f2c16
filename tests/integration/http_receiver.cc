// http_receiver: a real HTTP server for tests of the HTTP sink, with fault
// switches. Driven by tests/integration/http_receiver.h (HttpReceiver).
//
//   http_receiver --port 18080 --log requests.jsonl --ready ready.txt
//                 [--tls-cert server.crt --tls-key server.key [--client-ca ca.crt]]
//
// Listens on 127.0.0.1:PORT (SO_REUSEADDR, so it can be SIGKILLed and
// started again on the same port at once). Every request except the control
// endpoint is appended to the log as one JSON line, written (one write(2) on
// an O_APPEND file) before the answer goes out, so a line exists for every
// request that got an answer, and possibly for one that did not:
//
//   {"time_ms":…,"mono_ms":…,"method":"POST","path":"/ingest","status":200,
//    "idempotency_key":"…","content_encoding":"gzip","content_type":"application/json",
//    "content_type_count":<Content-Type headers in the request>,
//    "user_agent":"sluice/0.1.0","content_length":<bytes on the wire>,
//    "body_bytes":<decoded bytes>,"records":<array length, -1 if not an array>,
//    "ids":[<each element's "id">],"body":<the decoded body as JSON, or a string>,
//    "headers":{<every request header>}}
//
// mono_ms is CLOCK_MONOTONIC, comparable across restarts of the receiver.
// Answers 200 unless a fault is queued:
//
//   POST /_control?status=503&retry_after=1&count=3   next 3 requests: 503, Retry-After: 1
//   POST /_control?status=400&body=bad+record          next request: 400 with that body
//   POST /_control?status=301&location=http://x/       a redirect
//   POST /_control?status=200&delay_ms=5000            answer late (timeouts, Abort)
//   POST /_control?clear=1                             forget every queued fault
//
// Faults queue in order: each applies to `count` (default 1) requests, then
// the next one does. Once it listens it writes "listening 127.0.0.1:PORT"
// to the --ready file (atomically, by rename) and to stdout.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <zlib.h>

namespace {

struct Fault {
  int status = 200;
  int count = 1;
  std::string retry_after;
  std::string body;
  std::string location;
  int delay_ms = 0;
};

struct Answer {
  int status = 200;
  std::string retry_after;
  std::string body;
  std::string location;
  int delay_ms = 0;
};

class Faults {
 public:
  void Push(Fault f) {
    std::lock_guard<std::mutex> lock(mu_);
    if (f.count > 0) faults_.push_back(std::move(f));
  }
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    faults_.clear();
  }
  Answer Next() {
    std::lock_guard<std::mutex> lock(mu_);
    Answer a;
    if (faults_.empty()) return a;
    Fault& f = faults_.front();
    a.status = f.status;
    a.retry_after = f.retry_after;
    a.body = f.body;
    a.location = f.location;
    a.delay_ms = f.delay_ms;
    if (--f.count <= 0) faults_.pop_front();
    return a;
  }

 private:
  std::mutex mu_;
  std::deque<Fault> faults_;
};

int64_t NowMs(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// gunzip with zlib; false on a broken stream.
bool Gunzip(const std::string& in, std::string* out) {
  z_stream z{};
  if (inflateInit2(&z, 15 + 16) != Z_OK) return false;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  char buf[65536];
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    out->append(buf, sizeof buf - z.avail_out);
    if (rc == Z_BUF_ERROR && z.avail_in == 0) break;
  }
  inflateEnd(&z);
  return rc == Z_STREAM_END;
}

std::string Arg(int argc, char** argv, const std::string& name) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == name) return argv[i + 1];
  }
  return "";
}

int IntParam(const httplib::Request& req, const char* name, int fallback) {
  if (!req.has_param(name)) return fallback;
  return std::atoi(req.get_param_value(name).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  const int port = std::atoi(Arg(argc, argv, "--port").c_str());
  const std::string log_path = Arg(argc, argv, "--log");
  const std::string ready_path = Arg(argc, argv, "--ready");
  const std::string tls_cert = Arg(argc, argv, "--tls-cert");
  const std::string tls_key = Arg(argc, argv, "--tls-key");
  const std::string client_ca = Arg(argc, argv, "--client-ca");
  if (port <= 0 || log_path.empty()) {
    std::cerr << "usage: http_receiver --port PORT --log FILE [--ready FILE] "
                 "[--tls-cert CRT --tls-key KEY [--client-ca CA]]\n";
    return 2;
  }
  const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    std::cerr << "http_receiver: open " << log_path << ": " << std::strerror(errno) << "\n";
    return 1;
  }

  std::unique_ptr<httplib::Server> server;
  if (!tls_cert.empty()) {
    auto tls = std::make_unique<httplib::SSLServer>(
        tls_cert.c_str(), tls_key.c_str(), client_ca.empty() ? nullptr : client_ca.c_str());
    if (!tls->is_valid()) {
      std::cerr << "http_receiver: cannot load the TLS certificate/key/CA\n";
      return 1;
    }
    server = std::move(tls);
  } else {
    server = std::make_unique<httplib::Server>();
  }

  // Answers go out at once (no Nagle delay against the client's delayed ACK).
  server->set_tcp_nodelay(true);
  Faults faults;
  std::mutex log_mu;

  server->Post("/_control", [&](const httplib::Request& req, httplib::Response& res) {
    if (req.has_param("clear")) {
      faults.Clear();
    } else {
      Fault f;
      f.status = IntParam(req, "status", 200);
      f.count = IntParam(req, "count", 1);
      f.delay_ms = IntParam(req, "delay_ms", 0);
      if (req.has_param("retry_after")) f.retry_after = req.get_param_value("retry_after");
      if (req.has_param("body")) f.body = req.get_param_value("body");
      if (req.has_param("location")) f.location = req.get_param_value("location");
      faults.Push(std::move(f));
    }
    res.set_content("ok\n", "text/plain");
  });

  auto ingest = [&](const httplib::Request& req, httplib::Response& res) {
    Answer answer = faults.Next();
    nlohmann::json line;
    line["time_ms"] = NowMs(CLOCK_REALTIME);
    line["mono_ms"] = NowMs(CLOCK_MONOTONIC);
    line["method"] = req.method;
    line["path"] = req.path;
    line["status"] = answer.status;
    line["idempotency_key"] = req.get_header_value("Idempotency-Key");
    line["content_encoding"] = req.get_header_value("Content-Encoding");
    line["content_type"] = req.get_header_value("Content-Type");
    line["content_type_count"] = req.get_header_value_count("Content-Type");
    line["user_agent"] = req.get_header_value("User-Agent");
    line["content_length"] = std::atoll(req.get_header_value("Content-Length").c_str());
    nlohmann::json headers = nlohmann::json::object();
    for (const auto& [name, value] : req.headers) headers[name] = value;
    line["headers"] = headers;

    // cpp-httplib built with zlib (Debian's is) gunzips a gzip body before
    // the handler sees it; a build without it hands over the gzip bytes, and
    // then we gunzip here.
    std::string body = req.body;
    bool decoded = true;
    if (body.size() >= 2 && static_cast<unsigned char>(body[0]) == 0x1f &&
        static_cast<unsigned char>(body[1]) == 0x8b) {
      std::string plain;
      decoded = Gunzip(body, &plain);
      body = std::move(plain);
    }
    line["body_bytes"] = body.size();
    nlohmann::json parsed = nlohmann::json::parse(body, nullptr, false);
    if (!decoded || parsed.is_discarded()) {
      line["body"] = body.substr(0, 4096);
      line["records"] = -1;
      line["body_error"] = decoded ? "not JSON" : "broken gzip stream";
    } else {
      line["body"] = parsed;
      line["records"] = parsed.is_array() ? static_cast<int64_t>(parsed.size()) : -1;
      nlohmann::json ids = nlohmann::json::array();
      if (parsed.is_array()) {
        for (const auto& r : parsed) {
          if (r.is_object() && r.contains("id")) ids.push_back(r["id"]);
        }
      }
      line["ids"] = ids;
    }
    std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    {
      std::lock_guard<std::mutex> lock(log_mu);
      if (::write(log_fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
        std::cerr << "http_receiver: writing the log failed\n";
      }
    }
    if (answer.delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(answer.delay_ms));
    res.status = answer.status;
    if (!answer.retry_after.empty()) res.set_header("Retry-After", answer.retry_after);
    if (!answer.location.empty()) res.set_header("Location", answer.location);
    res.set_content(answer.body.empty() ? std::string("{}") : answer.body,
                    answer.body.empty() ? "application/json" : "text/plain");
  };
  server->Post(".*", ingest);
  server->Put(".*", ingest);

  if (!server->bind_to_port("127.0.0.1", port)) {
    std::cerr << "http_receiver: cannot listen on 127.0.0.1:" << port << "\n";
    return 1;
  }
  const std::string ready = "listening 127.0.0.1:" + std::to_string(port) + "\n";
  if (!ready_path.empty()) {
    const std::string tmp = ready_path + ".tmp";
    if (FILE* f = std::fopen(tmp.c_str(), "w")) {
      std::fputs(ready.c_str(), f);
      std::fclose(f);
      std::rename(tmp.c_str(), ready_path.c_str());
    }
  }
  std::cout << ready << std::flush;
  return server->listen_after_bind() ? 0 : 1;
}

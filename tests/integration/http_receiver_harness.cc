#include <signal.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include <httplib.h>

#include "tests/integration/http_receiver.h"

namespace sluice::testing {
namespace {

[[noreturn]] void Throw(const std::string& what) { throw std::runtime_error(what); }

std::string UrlEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  return out;
}

}  // namespace

std::string HttpReceiverBinary() {
  if (const char* env = std::getenv("SLUICE_HTTP_RECEIVER")) return env;
#ifdef HTTP_RECEIVER_BINARY
  return HTTP_RECEIVER_BINARY;
#else
  Throw("HTTP_RECEIVER_BINARY is not defined and SLUICE_HTTP_RECEIVER is not set");
#endif
}

HttpReceiver::HttpReceiver(HttpReceiverOptions options)
    : options_(std::move(options)), port_(FreeLoopbackPort()) {}

HttpReceiver::~HttpReceiver() {
  if (process_) process_->Stop(SIGKILL, milliseconds(10000));
}

void HttpReceiver::Start() {
  if (process_ && process_->Running()) Throw("HttpReceiver::Start: already running");
  process_.reset();
  const std::string ready = dir_.File("ready");
  std::error_code ec;
  std::filesystem::remove(ready, ec);
  std::vector<std::string> argv = {HttpReceiverBinary(), "--port", std::to_string(port_),
                                   "--log", log_path(), "--ready", ready};
  if (!options_.tls_cert.empty()) {
    argv.insert(argv.end(), {"--tls-cert", options_.tls_cert, "--tls-key", options_.tls_key});
    if (!options_.client_ca.empty()) argv.insert(argv.end(), {"--client-ca", options_.client_ca});
  }
  ChildOptions child;
  child.stderr_path = dir_.File("receiver.err");
  process_ = std::make_unique<ChildProcess>(argv, child);
  const bool up = WaitUntil(
      [&] { return std::filesystem::exists(ready) || !process_->Running(); }, milliseconds(10000));
  if (!up || !process_->Running()) {
    Throw("http_receiver on port " + std::to_string(port_) +
         " did not start; its stderr: " + stderr_text());
  }
}

void HttpReceiver::Stop() {
  if (process_) process_->Stop(SIGTERM, milliseconds(10000));
}

void HttpReceiver::Kill() {
  if (process_) process_->Stop(SIGKILL, milliseconds(10000));
}

bool HttpReceiver::Running() { return process_ && process_->Running(); }

std::string HttpReceiver::url(std::string_view path) const {
  return std::string(options_.tls_cert.empty() ? "http" : "https") + "://127.0.0.1:" +
         std::to_string(port_) + std::string(path);
}

void HttpReceiver::Control(const std::string& query) {
  std::unique_ptr<httplib::ClientImpl> client;
  if (options_.tls_cert.empty()) {
    client = std::make_unique<httplib::ClientImpl>("127.0.0.1", port_);
  } else {
    auto tls = std::make_unique<httplib::SSLClient>("127.0.0.1", port_, options_.control_cert,
                                                    options_.control_key);
    tls->enable_server_certificate_verification(false);
    client = std::move(tls);
  }
  client->set_connection_timeout(10, 0);
  client->set_read_timeout(10, 0);
  httplib::Result r = client->Post("/_control?" + query, "", "text/plain");
  if (!r || r->status != 200) {
    Throw("http_receiver control '" + query + "' failed: " +
         (r ? "status " + std::to_string(r->status) : httplib::to_string(r.error())));
  }
}

void HttpReceiver::Fail(int status, int count, const HttpFault& fault) {
  std::string q = "status=" + std::to_string(status) + "&count=" + std::to_string(count);
  if (!fault.retry_after.empty()) q += "&retry_after=" + UrlEncode(fault.retry_after);
  if (!fault.body.empty()) q += "&body=" + UrlEncode(fault.body);
  if (!fault.location.empty()) q += "&location=" + UrlEncode(fault.location);
  if (fault.delay_ms > 0) q += "&delay_ms=" + std::to_string(fault.delay_ms);
  Control(q);
}

void HttpReceiver::ClearFaults() { Control("clear=1"); }

std::vector<ReceivedRequest> HttpReceiver::Requests() const {
  std::vector<ReceivedRequest> out;
  for (const std::string& line : ReadLines(log_path())) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) Throw("http_receiver log: not JSON: " + line.substr(0, 200));
    ReceivedRequest r;
    r.time_ms = j.value("time_ms", int64_t{0});
    r.mono_ms = j.value("mono_ms", int64_t{0});
    r.method = j.value("method", "");
    r.path = j.value("path", "");
    r.status = j.value("status", 0);
    r.idempotency_key = j.value("idempotency_key", "");
    r.content_encoding = j.value("content_encoding", "");
    r.content_type = j.value("content_type", "");
    r.content_type_count = j.value("content_type_count", 0);
    r.user_agent = j.value("user_agent", "");
    r.content_length = j.value("content_length", int64_t{0});
    r.body_bytes = j.value("body_bytes", int64_t{0});
    r.records = j.value("records", int64_t{-1});
    if (j.contains("ids")) {
      for (const auto& id : j["ids"]) r.ids.push_back(id.is_string() ? id.get<std::string>() : id.dump());
    }
    r.body = j.value("body", nlohmann::json());
    r.headers = j.value("headers", nlohmann::json::object());
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<std::string> HttpReceiver::RecordIds() const {
  std::vector<std::string> ids;
  for (const ReceivedRequest& r : Requests()) {
    if (r.status >= 200 && r.status < 300) ids.insert(ids.end(), r.ids.begin(), r.ids.end());
  }
  return ids;
}

void MakeTestCertificates(const std::string& dir) {
  auto run = [&](const std::string& command) {
    const std::string full = "cd '" + dir + "' && " + command + " >/dev/null 2>&1";
    if (std::system(full.c_str()) != 0) Throw("certificate set-up failed: " + command);
  };
  run("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca "
      "-keyout ca.key -out ca.crt");
  run("openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr");
  WriteFile(dir + "/san.ext", "subjectAltName=IP:127.0.0.1\n");
  run("openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
      "-extfile san.ext -out server.crt");
  run("openssl req -newkey rsa:2048 -nodes -subj /CN=sluice-test -keyout client.key -out client.csr");
  run("openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
      "-out client.crt");
  run("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca "
      "-keyout other.key -out other.crt");
}

}  // namespace sluice::testing

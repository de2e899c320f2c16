#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <mqtt/async_client.h>

extern char** environ;

namespace sluice::testing {
namespace {

constexpr const char* kMosquittoBinary = "/usr/sbin/mosquitto";
constexpr milliseconds kAckTimeout{30000};

[[noreturn]] void Fail(const std::string& what) { throw std::runtime_error(what); }

std::string ErrnoText(const std::string& what) { return what + ": " + std::strerror(errno); }

// True when something accepts TCP connections on 127.0.0.1:port.
bool PortAccepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Fail(ErrnoText("socket"));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

// Paho counts publishes not yet written to the socket against the buffer
// limit even while connected (default 100); the window below needs more.
std::unique_ptr<mqtt::async_client> NewClient(const std::string& url,
                                              const std::string& client_id) {
  mqtt::create_options create_options(MQTTVERSION_DEFAULT);
  create_options.set_max_buffered_messages(10000);
  return std::make_unique<mqtt::async_client>(url, client_id, create_options, nullptr);
}

mqtt::connect_options CleanConnectOptions(bool clean = true) {
  return mqtt::connect_options_builder()
      .clean_session(clean)
      .connect_timeout(std::chrono::seconds(5))
      .keep_alive_interval(std::chrono::seconds(20))
      .finalize();
}

std::string UniqueClientId(const char* role) {
  static std::atomic<int> counter{0};
  return std::string("sluice-test-") + role + "-" + std::to_string(getpid()) + "-" +
         std::to_string(++counter);
}

}  // namespace

// ---------------------------------------------------------------------------

int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Fail(ErrnoText("socket"));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    Fail(ErrnoText("bind 127.0.0.1:0"));
  }
  socklen_t len = sizeof addr;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    Fail(ErrnoText("getsockname"));
  }
  close(fd);
  return ntohs(addr.sin_port);
}

// ---------------------------------------------------------------------------

TempDir::TempDir() {
  char tmpl[] = "/tmp/sluice-test-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) Fail(ErrnoText("mkdtemp"));
  path_ = tmpl;
}

TempDir::~TempDir() {
  if (std::getenv("SLUICE_KEEP_TEST_DIRS") != nullptr) {
    std::cerr << "kept test directory " << path_ << "\n";
    return;
  }
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string TempDir::File(std::string_view name) const { return path_ + "/" + std::string(name); }

// ---------------------------------------------------------------------------

ChildProcess::ChildProcess(std::vector<std::string> argv, ChildOptions options)
    : argv_(std::move(argv)) {
  if (argv_.empty()) Fail("ChildProcess: empty argv");

  // Everything the child needs is built before fork: between fork and exec
  // only async-signal-safe calls are allowed (the parent has threads).
  std::vector<char*> args;
  for (auto& a : argv_) args.push_back(a.data());
  args.push_back(nullptr);

  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view entry(*e);
    std::string_view name = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const auto& [k, v] : options.env) replaced = replaced || k == name;
    if (!replaced) env_strings.emplace_back(entry);
  }
  for (const auto& [k, v] : options.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  const std::string out_path = options.stdout_path.empty() ? "/dev/null" : options.stdout_path;
  const std::string err_path = options.stderr_path.empty() ? "/dev/null" : options.stderr_path;

  // The child reports a failed exec through this pipe; a successful exec
  // closes it (O_CLOEXEC) and the parent reads EOF.
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) Fail(ErrnoText("pipe2"));
  const pid_t parent = getpid();

  pid_t pid = fork();
  if (pid < 0) {
    close(report[0]);
    close(report[1]);
    Fail(ErrnoText("fork"));
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the parent died before prctl
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);  // the test may have blocked signals
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &dfl, nullptr);
    int err = 0;
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    int errfd = open(err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    int in = open("/dev/null", O_RDONLY);
    if (out < 0 || errfd < 0 || in < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 ||
        dup2(errfd, 2) < 0) {
      err = errno;
    } else {
      // Paho's sockets and other test descriptors stay with the test.
      if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {  // kernels before 5.11
        for (int fd = 3; fd < 1024; ++fd) fcntl(fd, F_SETFD, FD_CLOEXEC);
      }
      execve(args[0], args.data(), envp.data());
      err = errno;
    }
    ssize_t ignored = write(report[1], &err, sizeof err);
    (void)ignored;
    _exit(127);
  }

  close(report[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = read(report[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  close(report[0]);
  pid_ = pid;
  if (n > 0) {
    Reap(0);
    errno = child_errno;
    Fail(ErrnoText("cannot execute " + argv_[0]));
  }
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !exit_code_) {
    kill(pid_, SIGKILL);
    Reap(0);
  }
}

bool ChildProcess::Reap(int flags) {
  if (exit_code_) return true;
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &status, flags);
  } while (r < 0 && errno == EINTR);
  if (r != pid_) return false;
  exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return true;
}

void ChildProcess::Signal(int sig) {
  // Until it is reaped the PID cannot be reused, so this reaches our child.
  if (!exit_code_) kill(pid_, sig);
}

bool ChildProcess::Running() { return !Reap(WNOHANG); }

std::optional<int> ChildProcess::WaitExit(milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!Reap(WNOHANG)) {
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return exit_code_;
}

std::optional<int> ChildProcess::Stop(int sig, milliseconds timeout) {
  Signal(sig);
  return WaitExit(timeout);
}

// ---------------------------------------------------------------------------

Mosquitto::Mosquitto(MosquittoOptions options) : port_(FreeLoopbackPort()) {
  std::ostringstream conf;
  conf << "listener " << port_ << " 127.0.0.1\n"
       << "allow_anonymous true\n"
       << "log_dest stderr\n"
       << "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
       << "log_type subscribe\n"  // WaitForSubscription() reads these lines
       << "connection_messages true\n";
  // Run as root, mosquitto switches to the `mosquitto` user and can no
  // longer write its database into our root-owned 0700 directory.
  if (geteuid() == 0) conf << "user root\n";
  if (options.persistence) {
    conf << "persistence true\n"
         << "persistence_location " << dir_.path() << "/\n";
  }
  if (options.max_queued_messages)
    conf << "max_queued_messages " << *options.max_queued_messages << "\n";
  if (options.max_inflight_messages) {
    conf << "max_inflight_messages " << *options.max_inflight_messages << "\n";
  }
  for (const std::string& line : options.extra_config) conf << line << "\n";
  WriteFile(conf_path(), conf.str());
}

Mosquitto::~Mosquitto() {
  if (process_) process_->Stop(SIGKILL, milliseconds(10000));
}

std::string Mosquitto::url() const { return "tcp://127.0.0.1:" + std::to_string(port_); }

std::string Mosquitto::Log() const { return ReadFile(log_path()); }

int Mosquitto::SubscriptionCount(const std::string& client_id, const std::string& filter) const {
  // Lines look like "1700000000: <client id> <qos> <filter>".
  int count = 0;
  for (const std::string& line : ReadLines(log_path())) {
    size_t colon = line.find(": ");
    if (colon == std::string::npos) continue;
    std::string_view rest = std::string_view(line).substr(colon + 2);
    if (rest.size() == client_id.size() + 3 + filter.size() && rest.starts_with(client_id) &&
        rest[client_id.size()] == ' ' && rest[client_id.size() + 1] >= '0' &&
        rest[client_id.size() + 1] <= '2' && rest[client_id.size() + 2] == ' ' &&
        rest.ends_with(filter)) {
      ++count;
    }
  }
  return count;
}

bool Mosquitto::Running() { return process_ && process_->Running(); }

void Mosquitto::Start() {
  if (Running()) Fail("mosquitto is already running on port " + std::to_string(port_));
  if (PortAccepts(port_)) {
    Fail("port " + std::to_string(port_) +
         " was taken by another process before mosquitto started");
  }
  ChildOptions child_options;
  child_options.stderr_path = log_path();
  process_ = std::make_unique<ChildProcess>(
      std::vector<std::string>{kMosquittoBinary, "-c", conf_path()}, child_options);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!PortAccepts(port_)) {
    if (!process_->Running()) {
      Fail("mosquitto exited with code " +
           std::to_string(process_->WaitExit(milliseconds(0)).value_or(-1)) +
           " before accepting connections on port " + std::to_string(port_) + "; its log:\n" +
           Log());
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      Fail("mosquitto did not accept connections on port " + std::to_string(port_) +
           " within 5 s; its log:\n" + Log());
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
}

void Mosquitto::Stop() {
  if (!process_) return;
  if (!process_->Stop(SIGTERM, milliseconds(30000))) {
    process_->Stop(SIGKILL, milliseconds(10000));
    Fail("mosquitto did not exit within 30 s of SIGTERM; its log:\n" + Log());
  }
  process_.reset();
}

void Mosquitto::Kill() {
  if (!process_) return;
  process_->Stop(SIGKILL, milliseconds(30000));
  process_.reset();
}

void Mosquitto::Restart() {
  Stop();
  Start();
}

// ---------------------------------------------------------------------------

TestPublisher::TestPublisher(const std::string& url, const std::string& client_id) : url_(url) {
  client_ = NewClient(url, client_id.empty() ? UniqueClientId("pub") : client_id);
  try {
    client_->connect(CleanConnectOptions())->wait();
  } catch (const mqtt::exception& e) {
    Fail("TestPublisher cannot connect to " + url + ": " + e.what());
  }
}

TestPublisher::~TestPublisher() {
  try {
    if (client_->is_connected()) client_->disconnect()->wait_for(std::chrono::seconds(5));
  } catch (const mqtt::exception&) {
    // Going away anyway.
  }
}

void TestPublisher::Publish(const std::string& topic, const std::string& payload, int qos,
                            bool retain) {
  try {
    if (!client_->publish(mqtt::make_message(topic, payload, qos, retain))->wait_for(kAckTimeout)) {
      Fail("TestPublisher: no acknowledgement within 30 s for a message to '" + topic + "'");
    }
  } catch (const mqtt::exception& e) {
    Fail("TestPublisher: publish to '" + topic + "' failed: " + e.what());
  }
}

void TestPublisher::PublishAll(const std::vector<TestMessage>& messages, int qos) {
  // Mosquitto drops QoS 2 publishes past its in-flight limit (default 20)
  // with "quota exceeded", which a 3.1.1 client never sees: stay under it.
  const size_t kWindow = qos == 2 ? 10 : 100;
  std::vector<mqtt::delivery_token_ptr> tokens;
  size_t acked = 0;
  auto wait_one = [&] {
    try {
      if (!tokens[acked]->wait_for(kAckTimeout)) {
        Fail("TestPublisher: no acknowledgement within 30 s for a message to '" +
             messages[acked].topic + "'");
      }
    } catch (const mqtt::exception& e) {
      Fail("TestPublisher: publish to '" + messages[acked].topic + "' failed: " + e.what());
    }
    ++acked;
  };
  tokens.reserve(messages.size());
  for (const auto& m : messages) {
    while (tokens.size() - acked >= kWindow) wait_one();
    try {
      tokens.push_back(client_->publish(mqtt::make_message(m.topic, m.payload, qos, false)));
    } catch (const mqtt::exception& e) {
      Fail("TestPublisher: publish to '" + m.topic + "' failed: " + e.what());
    }
  }
  while (acked < tokens.size()) wait_one();
}

void TestPublisher::PublishNumbered(const std::string& topic, int64_t first, int64_t count,
                                    int qos) {
  std::vector<TestMessage> messages;
  messages.reserve(static_cast<size_t>(count));
  for (int64_t n = first; n < first + count; ++n) messages.push_back({topic, NumberedPayload(n)});
  PublishAll(messages, qos);
}

bool TestPublisher::Connected() const { return client_->is_connected(); }

void TestPublisher::Reconnect(milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string last_error;
  while (!client_->is_connected()) {
    try {
      client_->connect(CleanConnectOptions())->wait();
      return;
    } catch (const mqtt::exception& e) {
      last_error = e.what();
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      Fail("TestPublisher cannot reconnect to " + url_ + ": " + last_error);
    }
    std::this_thread::sleep_for(milliseconds(100));
  }
}

std::string TestPublisher::NumberedPayload(int64_t n) {
  char buf[128];
  std::snprintf(buf, sizeof buf, R"({"n":%lld,"ts":%lld,"temp":%lld.%lld})",
                static_cast<long long>(n), static_cast<long long>(NumberedTime(n)),
                static_cast<long long>(20 + n % 100 / 10), static_cast<long long>(n % 10));
  return buf;
}

int64_t TestPublisher::NumberedTime(int64_t n) { return 1700000000000 + n; }

// ---------------------------------------------------------------------------

TestSubscriber::TestSubscriber(const std::string& url, const std::string& filter, int qos,
                               const std::string& client_id, bool persistent_session) {
  client_ = NewClient(url, client_id.empty() ? UniqueClientId("sub") : client_id);
  try {
    client_->start_consuming();
    client_->connect(CleanConnectOptions(!persistent_session))->wait();
    client_->subscribe(filter, qos)->wait();
  } catch (const mqtt::exception& e) {
    Fail("TestSubscriber cannot subscribe to '" + filter + "' at " + url + ": " + e.what());
  }
}

TestSubscriber::~TestSubscriber() {
  try {
    if (client_->is_connected()) client_->disconnect()->wait_for(std::chrono::seconds(5));
  } catch (const mqtt::exception&) {
    // Going away anyway.
  }
}

std::optional<TestMessage> TestSubscriber::Next(milliseconds timeout) {
  mqtt::const_message_ptr m;
  if (!client_->try_consume_message_for(&m, timeout) || !m) return std::nullopt;
  return TestMessage{m->get_topic(), m->to_string()};
}

// ---------------------------------------------------------------------------

std::string SluiceBinary() {
  if (const char* env = std::getenv("SLUICE_BINARY"); env != nullptr && *env != '\0') return env;
#ifdef SLUICE_BINARY
  return SLUICE_BINARY;
#else
  Fail("no sluice binary: set SLUICE_BINARY or build the `sluice` target");
#endif
}

bool WaitUntil(const std::function<bool()>& pred, milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return pred();
}

std::vector<std::string> ReadLines(const std::string& path) {
  std::vector<std::string> lines;
  LineTail(path).ReadNew(&lines);
  return lines;
}

size_t LineTail::ReadNew(std::vector<std::string>* lines) {
  std::ifstream in(path_, std::ios::binary);
  if (!in) return 0;
  in.seekg(static_cast<std::streamoff>(offset_));
  std::string chunk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  offset_ += chunk.size();
  partial_ += chunk;
  size_t added = 0;
  size_t start = 0;
  for (size_t nl = partial_.find('\n'); nl != std::string::npos; nl = partial_.find('\n', start)) {
    lines->push_back(partial_.substr(start, nl - start));
    ++added;
    start = nl + 1;
  }
  partial_.erase(0, start);
  return added;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void WriteFile(const std::string& path, std::string_view content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out.flush()) Fail("cannot write " + path);
}

}  // namespace sluice::testing

// Integration-test harness: real servers and real processes on loopback.
//
//   TempDir dir;
//   Mosquitto broker;                       // conf in its own TempDir, free port
//   broker.Start();                         // returns once the port accepts TCP
//   ChildOptions logs;
//   logs.stderr_path = dir.File("agent.err");
//   ChildProcess agent({SluiceBinary(), "run", "-c", dir.File("sluice.yaml")}, logs);
//   TestPublisher pub(broker.url());
//   pub.PublishNumbered("sensors/site-01/dev-0001", 0, 100);
//   LineTail sink(dir.File("out.jsonl"));
//   std::vector<std::string> lines;
//   REQUIRE(WaitUntil([&] { sink.ReadNew(&lines); return lines.size() == 100; }, 60s));
//
// Set-up failures throw std::runtime_error with the reason (and the server's
// log where there is one): Catch reports it as the test's failure, which is
// what a test wants when its world cannot be built.
//
// Processes are only ever signalled by their own PID, and every child is
// reaped by the object that started it (TOOLCHAIN.md: an unreaped mosquitto
// keeps its port for seconds). Not thread-safe: use each object from one
// thread, and start children from the test's main thread (see ChildProcess).
#ifndef SLUICE_TESTS_INTEGRATION_HARNESS_H_
#define SLUICE_TESTS_INTEGRATION_HARNESS_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mqtt {
class async_client;
}  // namespace mqtt

namespace sluice::testing {

using std::chrono::milliseconds;

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, read
// back, closed). Another process may take it before it is used; the harness
// fails loudly rather than silently sharing it.
int FreeLoopbackPort();

// A fresh directory under /tmp, removed with its contents by the destructor
// (kept, and its path printed, when SLUICE_KEEP_TEST_DIRS is set).
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path()/name
  std::string File(std::string_view name) const;

 private:
  std::string path_;
};

struct ChildOptions {
  // Set in the child's environment on top of (or replacing) the parent's.
  std::vector<std::pair<std::string, std::string>> env;
  std::string stdout_path;  // appended to, so restarts keep earlier output; empty: /dev/null
  std::string stderr_path;
};

// A child process started with fork/exec. The destructor SIGKILLs it if it
// still runs and always reaps it. The child gets SIGKILL when the thread that
// started it exits (PR_SET_PDEATHSIG), so a crashed test leaves no server
// behind: start children from a thread that outlives them.
class ChildProcess {
 public:
  // argv[0] is the path of the executable. Throws when it cannot be executed.
  explicit ChildProcess(std::vector<std::string> argv, ChildOptions options = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Sends `sig` to this child only; a no-op once it has been reaped.
  void Signal(int sig);
  // False once it has exited (and then it is reaped).
  bool Running();
  // Its exit code (128 + signal number when a signal ended it), or nullopt
  // if it still runs after `timeout`.
  std::optional<int> WaitExit(milliseconds timeout);
  // Signal(sig), then WaitExit(timeout).
  std::optional<int> Stop(int sig, milliseconds timeout);
  const std::vector<std::string>& argv() const { return argv_; }

 private:
  bool Reap(int flags);

  std::vector<std::string> argv_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

struct MosquittoOptions {
  bool persistence = false;                  // persistence_location in its TempDir
  std::optional<int> max_queued_messages;    // mosquitto's default: 1000
  std::optional<int> max_inflight_messages;  // mosquitto's default: 20
  // Lines appended to the conf. They follow the only listener, so listener
  // options (cafile, certfile, keyfile, require_certificate) apply to it.
  std::vector<std::string> extra_config;
};

// A mosquitto broker on its own loopback port, started as a direct child,
// logging to log_path() (connections and subscriptions included). Run as
// root it keeps root (`user root`): mosquitto would otherwise switch to the
// `mosquitto` user and fail to save its database in our 0700 directory.
class Mosquitto {
 public:
  explicit Mosquitto(MosquittoOptions options = {});  // writes the conf; not started
  ~Mosquitto();                                       // kills it if running
  Mosquitto(const Mosquitto&) = delete;
  Mosquitto& operator=(const Mosquitto&) = delete;

  // Returns once the port accepts TCP connections; throws (with the broker's
  // log) if it does not within 5 s.
  void Start();
  // SIGTERM and wait: a persistent broker writes its database first.
  void Stop();
  // SIGKILL and wait: the broker loses what it had not saved.
  void Kill();
  // Stop() and Start() on the same port.
  void Restart();
  bool Running();

  int port() const { return port_; }
  std::string url() const;  // "tcp://127.0.0.1:PORT"
  std::string conf_path() const { return dir_.File("mosquitto.conf"); }
  std::string log_path() const { return dir_.File("mosquitto.log"); }
  std::string Log() const;  // the log so far
  // How often `client_id` has subscribed to `filter` (any QoS) since the
  // broker was first started; restarts keep counting. Once it has grown, a
  // message published afterwards reaches that subscription: mosquitto
  // handles one packet at a time and logs the SUBSCRIBE as it adds it.
  int SubscriptionCount(const std::string& client_id, const std::string& filter) const;

 private:
  TempDir dir_;
  int port_;
  std::unique_ptr<ChildProcess> process_;
};

struct TestMessage {
  std::string topic;
  std::string payload;
};

// An MQTT publisher (Paho async client, clean session, no persistence).
// Every publish waits for the broker's acknowledgement at QoS >= 1 and
// throws when it does not come within 30 s or the connection is down.
//
// Every Paho client after the first in a process takes ~2 s to connect
// (paho.mqtt.c issue 1430, fixed after the 1.3.12 in Debian 12): a test is
// quicker with one publisher and, if it needs one, one subscriber.
class TestPublisher {
 public:
  // Connects; throws on failure.
  explicit TestPublisher(const std::string& url, const std::string& client_id = "");
  ~TestPublisher();
  TestPublisher(const TestPublisher&) = delete;
  TestPublisher& operator=(const TestPublisher&) = delete;

  void Publish(const std::string& topic, const std::string& payload, int qos = 1,
               bool retain = false);
  // Pipelined (up to 100 unacknowledged), in order; returns once all are acked.
  void PublishAll(const std::vector<TestMessage>& messages, int qos = 1);
  // Readings n = first .. first+count-1, payload NumberedPayload(n).
  void PublishNumbered(const std::string& topic, int64_t first, int64_t count, int qos = 1);

  bool Connected() const;
  // Connects again after the broker went away, retrying until `timeout`;
  // throws if it could not.
  void Reconnect(milliseconds timeout = milliseconds(30000));

  // {"n":<n>,"ts":<NumberedTime(n)>,"temp":<20 + n % 100 / 10>}
  static std::string NumberedPayload(int64_t n);
  static int64_t NumberedTime(int64_t n);  // a fixed epoch-ms base + n

 private:
  std::string url_;
  std::unique_ptr<::mqtt::async_client> client_;
};

// An MQTT subscriber that queues what it receives (clean session).
class TestSubscriber {
 public:
  // Connects and subscribes; throws on failure. With a persistent session
  // (and a fixed client id) the broker keeps queueing for it while it is
  // away, across broker restarts when the broker has persistence on.
  TestSubscriber(const std::string& url, const std::string& filter, int qos = 1,
                 const std::string& client_id = "", bool persistent_session = false);
  ~TestSubscriber();
  TestSubscriber(const TestSubscriber&) = delete;
  TestSubscriber& operator=(const TestSubscriber&) = delete;

  // The next message received, waiting up to `timeout`.
  std::optional<TestMessage> Next(milliseconds timeout);

 private:
  std::unique_ptr<::mqtt::async_client> client_;
};

// The `sluice` executable under test: $SLUICE_BINARY if set, else the build's
// (compile definition SLUICE_BINARY). Throws when neither is there.
std::string SluiceBinary();

// Polls `pred` every 20 ms until it holds or `timeout` passes; one last try at
// the deadline. True when it held.
bool WaitUntil(const std::function<bool()>& pred, milliseconds timeout);

// The complete lines of a file (each ended by '\n': a line still being
// written is left out). A missing file has none.
std::vector<std::string> ReadLines(const std::string& path);

// Reads a growing file line by line without reading it again from the
// start: for polling a sink's output while an agent writes it.
class LineTail {
 public:
  explicit LineTail(std::string path) : path_(std::move(path)) {}
  // Appends the complete lines written since the last call to *lines;
  // returns how many were added. A file not there yet has none.
  size_t ReadNew(std::vector<std::string>* lines);

 private:
  std::string path_;
  uint64_t offset_ = 0;
  std::string partial_;
};

// The whole file; empty when missing.
std::string ReadFile(const std::string& path);
// Creates or replaces the file.
void WriteFile(const std::string& path, std::string_view content);

}  // namespace sluice::testing

#endif  // SLUICE_TESTS_INTEGRATION_HARNESS_H_

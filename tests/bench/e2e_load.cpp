// e2e_load: the load side of tests/bench/e2e.sh (issue 7), independent of
// the agent's own MQTT and HTTP code: libmosquitto for the publisher, plain
// MQTT 3.1.1 on a socket for the counting subscriber, cpp-httplib for the
// HTTP receiver.
//
//   e2e_load launch --ready-file F [--ready-timeout-s S] -- sluice run -c X
//       Plays the service manager: binds a NOTIFY_SOCKET, starts the command
//       with it and writes "<pid> <ms from start to READY=1> <start, epoch
//       µs>" to F once READY=1 arrives; -1 instead of the ms when none came
//       within S seconds (default 10; the command keeps running), -2 when the
//       command exited first. Then drains the socket, forwards SIGTERM/SIGINT
//       to the command and exits with its status.
//
//   e2e_load run --mode ceiling|file|http --port P --qos Q --devices N
//                --rate R (0: full speed) --seconds D
//                [--agent-pid PID] [--file PATH] [--http-port H]
//                [--alert-every K] [--quiet-ms MS] [--label TEXT] [--warmup W]
//       One measurement: starts the receiver (ceiling: a plain subscriber
//       that only counts; file: tails the file sink's output;
//       http: a loopback HTTP server the agent's HTTP sink posts to), then
//       publishes simulator-shaped readings for D seconds, waits until every
//       sent reading is accounted for at the receiver (or nothing moved for
//       --quiet-ms), and prints one CSV line (header: `e2e_load header`).
//       --warmup W: publishes W seconds more first; cpu_pct_core is then the
//       agent's CPU over the D seconds after them (sending only), the
//       sustained cost at that rate rather than one that includes start-up.
//
//   e2e_load publish --port P --qos Q --devices N --rate R --seconds D
//       The publisher alone.
//
// Payloads: the simulator's shape (agent/simulate.cc) plus a sequence number
// and the send time in microseconds:
//   sensors/site-07/dev-0061  {"ts":1795663490055,"temp":25.6,"hum":42.9,"vib":2.498,"seq":60,"sent_us":1795663490055123}
// Device d's j-th reading is hot (temp 95.0) when (j + d) % K == K - 1
// (--alert-every K, 0 = never), so an alert rule `temp > 80` (for: 0s,
// clear: temp < 75) fires on it and resolves on the device's next reading:
// 2/K alert records per reading, each carrying the causing reading's sent_us.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <vector>

#include <httplib.h>
#include <mosquitto.h>
#include <nlohmann/json.hpp>

namespace {

int64_t NowUs() {  // wall clock: the receiver compares it with sent_us
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1000000 + ts.tv_nsec / 1000;
}

double MonoS() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "e2e_load: %s\n", what.c_str());
  std::exit(2);
}

struct Args {
  std::map<std::string, std::string> kv;
  std::vector<std::string> rest;  // after "--"
  std::string Get(const std::string& k, const std::string& def = "") const {
    auto it = kv.find(k);
    return it == kv.end() ? def : it->second;
  }
  int64_t Int(const std::string& k, int64_t def) const {
    auto it = kv.find(k);
    return it == kv.end() ? def : std::strtoll(it->second.c_str(), nullptr, 10);
  }
  double Num(const std::string& k, double def) const {
    auto it = kv.find(k);
    return it == kv.end() ? def : std::strtod(it->second.c_str(), nullptr);
  }
};

Args Parse(int argc, char** argv, int from) {
  Args a;
  for (int i = from; i < argc; ++i) {
    std::string s = argv[i];
    if (s == "--") {
      for (++i; i < argc; ++i) a.rest.push_back(argv[i]);
      break;
    }
    if (s.rfind("--", 0) != 0 || i + 1 >= argc) Die("bad argument '" + s + "'");
    a.kv[s.substr(2)] = argv[++i];
  }
  return a;
}

// ---------------------------------------------------------------------------
// launch

volatile sig_atomic_t g_child = 0;
void Forward(int sig) {
  if (g_child > 0) kill(g_child, sig);
}

int Launch(const Args& a) {
  std::string ready_file = a.Get("ready-file");
  if (ready_file.empty() || a.rest.empty()) Die("launch: --ready-file F -- COMMAND...");
  double timeout = a.Num("ready-timeout-s", 10);
  std::string dir = ready_file.substr(0, ready_file.find_last_of('/') + 1);
  std::string sock_path = dir + "notify-" + std::to_string(getpid()) + ".sock";
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (sock_path.size() >= sizeof addr.sun_path) Die("socket path too long: " + sock_path);
  std::memcpy(addr.sun_path, sock_path.c_str(), sock_path.size() + 1);
  unlink(sock_path.c_str());
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    Die("cannot bind " + sock_path + ": " + std::strerror(errno));
  }
  signal(SIGTERM, Forward);
  signal(SIGINT, Forward);
  const double t0 = MonoS();
  const int64_t start_us = NowUs();
  pid_t child = fork();
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    setenv("NOTIFY_SOCKET", sock_path.c_str(), 1);
    std::vector<char*> argv;
    for (const std::string& s : a.rest) argv.push_back(const_cast<char*>(s.c_str()));
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    std::fprintf(stderr, "e2e_load launch: cannot run %s: %s\n", argv[0], std::strerror(errno));
    _exit(127);
  }
  g_child = child;
  auto write_ready = [&](double ms) {
    std::string tmp = ready_file + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (f) {
      std::fprintf(f, "%d %.1f %" PRId64 "\n", int(child), ms, start_us);
      std::fclose(f);
      std::rename(tmp.c_str(), ready_file.c_str());
    }
  };
  bool ready = false;
  int status = 0;
  char buf[4096];
  while (true) {
    pid_t w = waitpid(child, &status, WNOHANG);
    if (w == child) break;
    pollfd p{fd, POLLIN, 0};
    int n = poll(&p, 1, ready ? 200 : 1);
    if (n > 0) {
      ssize_t got;
      while ((got = recv(fd, buf, sizeof buf - 1, 0)) > 0) {
        buf[got] = '\0';
        if (!ready && std::strstr(buf, "READY=1") != nullptr) {
          ready = true;
          write_ready((MonoS() - t0) * 1000.0);
        }
      }
    }
    if (!ready && MonoS() - t0 >= timeout) {
      ready = true;  // stop waiting for it
      write_ready(-1);
    }
  }
  if (!ready) write_ready(-2);
  close(fd);
  unlink(sock_path.c_str());
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

// ---------------------------------------------------------------------------
// Receivers

// Distinct sequence numbers seen, duplicates, arrival times.
struct Tally {
  std::mutex mu;
  std::vector<uint8_t> seen;
  std::atomic<int64_t> distinct{0};
  std::atomic<int64_t> dups{0};
  std::atomic<int64_t> last_arrival_us{0};
  std::vector<int64_t> latency_us;  // under mu

  void Mark(int64_t seq, int64_t arrival_us) {  // caller holds mu
    if (seq < 0) return;
    if (size_t(seq) >= seen.size()) seen.resize(std::max<size_t>(size_t(seq) + 1, seen.size() * 2));
    if (seen[size_t(seq)]) {
      ++dups;
    } else {
      seen[size_t(seq)] = 1;
      ++distinct;
      last_arrival_us = arrival_us;
    }
  }
};

// The integer after `"name":` in text, or -1.
int64_t FieldInt(std::string_view text, std::string_view quoted_name_colon) {
  size_t at = text.find(quoted_name_colon);
  if (at == std::string_view::npos) return -1;
  const char* p = text.data() + at + quoted_name_colon.size();
  const char* end = text.data() + text.size();
  while (p < end && *p == ' ') ++p;
  if (p >= end || *p < '0' || *p > '9') return -1;
  int64_t v = 0;
  while (p < end && *p >= '0' && *p <= '9') v = v * 10 + (*p++ - '0');
  return v;
}

// The ceiling: a subscriber that only counts (and notes the broker's
// latency). Plain MQTT 5 on a socket, read in large chunks, PUBACKs of a
// chunk written at once: libmosquitto reads every packet in several small
// read() calls, which made it slower than the agent (the counter must not
// be the bottleneck of the ceiling). MQTT 5 with a Receive Maximum of 65535,
// as the agent asks for: over 3.1.1 the broker allows only 20 QoS 1
// messages in flight (mosquitto's max_inflight_messages), which would bound
// the ceiling by round trips rather than by the broker.
class CountingSubscriber {
 public:
  CountingSubscriber(Tally& t, int port, int qos) : tally_(t) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) Die("count: connect");
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::string id = "e2e-count-" + std::to_string(getpid());
    std::string body;  // CONNECT: "MQTT", level 5, clean start, keep-alive 0,
                       // properties: Receive Maximum 65535
    body.append("\x00\x04MQTT\x05\x02\x00\x00\x03\x21\xff\xff", 14);
    AppendString(body, id);
    Send(Packet(0x10, body));
    std::string sub;  // SUBSCRIBE, packet id 1
    sub.append("\x00\x01\x00", 3);  // packet id 1, no properties
    AppendString(sub, "sensors/+/+");
    sub.push_back(char(qos));
    Send(Packet(0x82, sub));
    // CONNACK then SUBACK, before anything is published.
    int acks = 0;
    while (acks < 2) {
      ssize_t n = read(fd_, buf_.data() + len_, buf_.size() - len_);
      if (n <= 0) Die("count: connection closed during connect");
      len_ += size_t(n);
      size_t used = 0;
      while (true) {
        uint8_t type;
        size_t header, rem;
        if (!Next(used, &type, &header, &rem)) break;
        if ((type >> 4) == 2 || (type >> 4) == 9) ++acks;
        used += header + rem;
      }
      std::memmove(buf_.data(), buf_.data() + used, len_ - used);
      len_ -= used;
    }
    thread_ = std::thread([this] { Run(); });
  }
  ~CountingSubscriber() {
    stop_ = true;
    thread_.join();
    Send(std::string("\xe0\x00", 2));  // DISCONNECT
    close(fd_);
  }

 private:
  static void AppendString(std::string& out, std::string_view s) {
    out.push_back(char(s.size() >> 8));
    out.push_back(char(s.size() & 0xff));
    out.append(s);
  }
  static std::string Packet(uint8_t type, const std::string& body) {
    std::string p(1, char(type));
    size_t n = body.size();
    do {
      uint8_t b = n % 128;
      n /= 128;
      p.push_back(char(n > 0 ? b | 0x80 : b));
    } while (n > 0);
    return p + body;
  }
  void Send(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = write(fd_, data.data() + off, data.size() - off);
      if (n <= 0) return;
      off += size_t(n);
    }
  }
  // The packet at buf_[at]: false when it is not complete yet.
  bool Next(size_t at, uint8_t* type, size_t* header, size_t* rem) const {
    if (len_ - at < 2) return false;
    *type = uint8_t(buf_[at]);
    size_t value = 0, mult = 1, i = at + 1;
    while (true) {
      if (i >= len_) return false;
      uint8_t b = uint8_t(buf_[i++]);
      value += (b & 0x7f) * mult;
      mult *= 128;
      if (!(b & 0x80)) break;
    }
    *header = i - at;
    *rem = value;
    return len_ - at >= *header + *rem;
  }

  void Run() {
    std::string acks;
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      if (len_ == buf_.size()) buf_.resize(buf_.size() * 2);
      ssize_t n = read(fd_, buf_.data() + len_, buf_.size() - len_);
      if (n <= 0) break;
      len_ += size_t(n);
      const int64_t now = NowUs();
      size_t used = 0;
      {
        std::lock_guard<std::mutex> lock(tally_.mu);
        uint8_t type;
        size_t header, rem;
        while (Next(used, &type, &header, &rem)) {
          if ((type >> 4) == 3) {  // PUBLISH
            const char* v = buf_.data() + used + header;
            size_t topic_len = (size_t(uint8_t(v[0])) << 8) | uint8_t(v[1]);
            size_t off = 2 + topic_len;
            if ((type >> 1) & 3) {
              acks.append("\x40\x02", 2);
              acks.append(v + off, 2);  // packet id
              off += 2;
            }
            size_t props = 0;  // MQTT 5 property length (a variable byte integer)
            for (int shift = 0;; shift += 7) {
              uint8_t b = uint8_t(v[off++]);
              props |= size_t(b & 0x7f) << shift;
              if (!(b & 0x80)) break;
            }
            off += props;
            std::string_view payload(v + off, rem - off);
            tally_.Mark(FieldInt(payload, "\"seq\":"), now);
            int64_t sent = FieldInt(payload, "\"sent_us\":");
            if (sent > 0) tally_.latency_us.push_back(now - sent);
          }
          used += header + rem;
        }
      }
      std::memmove(buf_.data(), buf_.data() + used, len_ - used);
      len_ -= used;
      if (!acks.empty()) {
        Send(acks);
        acks.clear();
      }
    }
  }

  Tally& tally_;
  int fd_ = -1;
  std::vector<char> buf_ = std::vector<char>(1 << 20);
  size_t len_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Tails the file sink's output: one record per line, `"seq":N` in fields.
class FileTail {
 public:
  FileTail(Tally& t, std::string path) : tally_(t), path_(std::move(path)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~FileTail() {
    stop_ = true;
    thread_.join();
  }

 private:
  void Run() {
    int fd = -1;
    std::string partial;
    std::vector<char> buf(1 << 20);
    while (!stop_) {
      if (fd < 0) {
        fd = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
          usleep(2000);
          continue;
        }
      }
      ssize_t n = read(fd, buf.data(), buf.size());
      if (n <= 0) {
        usleep(2000);
        continue;
      }
      int64_t now = NowUs();
      partial.append(buf.data(), size_t(n));
      size_t start = 0, nl;
      std::lock_guard<std::mutex> lock(tally_.mu);
      while ((nl = partial.find('\n', start)) != std::string::npos) {
        std::string_view line(partial.data() + start, nl - start);
        tally_.Mark(FieldInt(line, "\"seq\":"), now);
        start = nl + 1;
      }
      partial.erase(0, start);
    }
    if (fd >= 0) close(fd);
  }

  Tally& tally_;
  std::string path_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// The loopback HTTP receiver: counts aggregate readings (deduplicated by
// record id) and alert records, and the latency of each alert from its
// reading's publish to its arrival here.
class HttpReceiver {
 public:
  HttpReceiver(int port) {
    server_.set_tcp_nodelay(true);
    server_.set_payload_max_length(64 << 20);
    server_.Post(".*", [this](const httplib::Request& req, httplib::Response& res) {
      int64_t now = NowUs();
      nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
      if (!body.is_array()) {
        res.status = 400;
        return;
      }
      std::lock_guard<std::mutex> lock(mu_);
      ++requests;
      for (const auto& r : body) {
        std::string id = r.value("id", "");
        if (!ids_.insert(id).second) {
          ++dup_records;
          continue;
        }
        std::string kind = r.value("kind", "");
        if (kind == "aggregate") {
          const auto& key = r["key"];
          if (key.is_object() && key.value("device", "") == "flush-0") continue;
          const auto& values = r["values"];
          if (values.is_object() && values.contains("readings") && values["readings"].is_number()) {
            readings += values["readings"].get<int64_t>();
            last_arrival_us = now;
          }
          ++aggregates;
        } else if (kind == "alert") {
          ++alerts;
          last_arrival_us = now;
          const auto& v = r["value"];
          if (v.is_object() && v.contains("sent_us") && v["sent_us"].is_number()) {
            latency_us.push_back(now - v["sent_us"].get<int64_t>());
          }
        } else {
          ++other;
        }
      }
      res.set_content("ok", "text/plain");
    });
    // cpp-httplib closes a kept-alive connection after 5 requests by default;
    // a collector (nginx: 1,000) keeps it far longer.
    server_.set_keep_alive_max_count(1000);
    if (!server_.bind_to_port("127.0.0.1", port)) Die("http: cannot bind port " + std::to_string(port));
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) usleep(1000);
  }
  ~HttpReceiver() {
    server_.stop();
    thread_.join();
  }

  std::mutex mu_;
  std::atomic<int64_t> readings{0}, alerts{0}, aggregates{0}, other{0}, requests{0};
  std::atomic<int64_t> dup_records{0}, last_arrival_us{0};
  std::vector<int64_t> latency_us;  // under mu_

 private:
  httplib::Server server_;
  std::unordered_set<std::string> ids_;
  std::thread thread_;
};

// ---------------------------------------------------------------------------
// Publisher

struct Device {
  std::string topic;
  int64_t base_temp;  // milli-degrees
  int64_t base_hum;
  int64_t base_vib;
  int64_t readings = 0;
  bool last_hot = false;
};

class Publisher {
 public:
  Publisher(int port, int qos, int devices, int alert_every)
      : qos_(qos), alert_every_(alert_every) {
    uint64_t rng = 42;
    auto next = [&rng] {
      uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      return z ^ (z >> 31);
    };
    int sites = std::max(1, (devices + 9) / 10);
    for (int i = 0; i < devices; ++i) {
      char topic[64];
      std::snprintf(topic, sizeof topic, "sensors/site-%02d/dev-%04d", i % sites + 1, i + 1);
      devices_.push_back({topic, 18000 + int64_t(next() % 12000), 35000 + int64_t(next() % 30000),
                          500 + int64_t(next() % 2500)});
    }
    rng_ = next();
    mosq_ = mosquitto_new(("e2e-pub-" + std::to_string(getpid())).c_str(), true, this);
    mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_int_option(mosq_, MOSQ_OPT_TCP_NODELAY, 1);  // no Nagle delay in the latency
    // QoS 1: many in flight, so the publisher is not bound by the round trip.
    mosquitto_max_inflight_messages_set(mosq_, kWindow);
    mosquitto_connect_callback_set(mosq_, [](mosquitto*, void* self, int rc) {
      if (rc == 0) static_cast<Publisher*>(self)->connected_ = true;
    });
    mosquitto_publish_callback_set(mosq_, [](mosquitto*, void* self, int) {
      ++static_cast<Publisher*>(self)->acked_;
    });
    if (mosquitto_connect(mosq_, "127.0.0.1", port, 60) != MOSQ_ERR_SUCCESS) Die("publish: connect");
    for (int i = 0; i < 5000 && !connected_; ++i) mosquitto_loop(mosq_, 1, 1);
    if (!connected_) Die("publish: no CONNACK");
  }
  ~Publisher() {
    mosquitto_disconnect(mosq_);
    mosquitto_loop(mosq_, 10, 1);
    mosquitto_destroy(mosq_);
  }

  // Publishes for `seconds` at `rate` (0: as fast as the broker takes them),
  // in 1 ms bursts; returns once every QoS 1 message was acknowledged.
  // `at_mark`, if given, is called once `mark_s` seconds in.
  void Run(double rate, double seconds, double mark_s = 0, const std::function<void()>& at_mark = {}) {
    const double t0 = MonoS();
    first_send_us = NowUs();
    int64_t since_loop = 0;
    bool marked = !at_mark;
    while (true) {
      double elapsed = MonoS() - t0;
      if (elapsed >= seconds) break;
      if (!marked && elapsed >= mark_s) {
        marked = true;
        at_mark();
      }
      int64_t target = rate > 0 ? int64_t(rate * elapsed) + 1 : sent + 64;
      bool blocked = false;
      while (sent < target) {
        if (mosquitto_want_write(mosq_) || (qos_ > 0 && sent - acked_ >= kWindow)) {
          blocked = true;
          break;
        }
        PublishOne();
        if (++since_loop >= 64) {
          mosquitto_loop(mosq_, 0, 1);
          since_loop = 0;
        }
      }
      if (blocked) {
        mosquitto_loop(mosq_, 2, 1);  // waits for room: a writable socket, acks
      } else if (rate > 0) {
        mosquitto_loop(mosq_, 0, 1);
        double next_tick = (std::floor(elapsed * 1000) + 1) / 1000;
        double wait = next_tick - (MonoS() - t0);
        if (wait > 0) usleep(useconds_t(wait * 1e6));
      }
    }
    last_send_us = last_publish_us_;
    Drain();
  }

  // One reading dated `ahead_ms` in the future for device "flush-0": moves
  // the windows' watermark past every open window so they close now.
  void Flush(int64_t ahead_ms) {
    int64_t now = NowUs();
    char payload[256];
    for (int i = 0; i < 3; ++i) {
      int n = std::snprintf(payload, sizeof payload,
                            "{\"ts\":%" PRId64 ",\"temp\":20.0,\"hum\":50.0,\"vib\":1.000,\"seq\":-1,\"sent_us\":%" PRId64 "}",
                            now / 1000 + ahead_ms + i, now);
      mosquitto_publish(mosq_, nullptr, "sensors/flush/flush-0", n, payload, qos_, false);
      ++flushed_;
    }
    Drain();
  }

  int64_t sent = 0, hot = 0, expected_alerts = 0;
  int64_t first_send_us = 0, last_send_us = 0;

 private:
  static constexpr int kWindow = 1000;

  uint64_t Next() {
    uint64_t z = (rng_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  static void Decimal(char*& p, int64_t milli, int decimals) {
    int64_t unit = decimals == 1 ? 100 : 1;
    int64_t v = (milli + unit / 2) / unit;  // non-negative here
    int64_t scale = decimals == 1 ? 10 : 1000;
    p += std::sprintf(p, "%" PRId64 ".%0*" PRId64, v / scale, decimals, v % scale);
  }

  void PublishOne() {
    const int64_t seq = sent;
    Device& d = devices_[size_t(seq % int64_t(devices_.size()))];
    const int64_t index = seq % int64_t(devices_.size());
    const bool is_hot = alert_every_ > 0 && (d.readings + index) % alert_every_ == alert_every_ - 1;
    if (d.last_hot) ++expected_alerts;  // resolved on this reading
    if (is_hot) {
      ++expected_alerts;  // firing
      ++hot;
    }
    d.last_hot = is_hot;
    ++d.readings;
    uint64_t bits = Next();
    int64_t temp = is_hot ? 95000 : d.base_temp + int64_t(bits & 0x3ff) - 512;
    int64_t hum = d.base_hum + int64_t((bits >> 10) & 0x7ff) - 1024;
    int64_t vib = d.base_vib + int64_t((bits >> 21) & 0x7f);
    char payload[256];
    char* p = payload;
    int64_t now = NowUs();
    p += std::sprintf(p, "{\"ts\":%" PRId64 ",\"temp\":", now / 1000);
    Decimal(p, temp, 1);
    p += std::sprintf(p, ",\"hum\":");
    Decimal(p, hum, 1);
    p += std::sprintf(p, ",\"vib\":");
    Decimal(p, vib, 3);
    p += std::sprintf(p, ",\"seq\":%" PRId64 ",\"sent_us\":%" PRId64 "}", seq, now);
    int rc = mosquitto_publish(mosq_, nullptr, d.topic.c_str(), int(p - payload), payload, qos_, false);
    if (rc != MOSQ_ERR_SUCCESS) Die(std::string("publish: ") + mosquitto_strerror(rc));
    last_publish_us_ = now;
    ++sent;
  }

  void Drain() {
    const double t0 = MonoS();
    while (MonoS() - t0 < 60 && (mosquitto_want_write(mosq_) || (qos_ > 0 && acked_ < sent + flushed_))) {
      mosquitto_loop(mosq_, 5, 1);
    }
  }

  int qos_;
  int alert_every_;
  std::vector<Device> devices_;
  uint64_t rng_ = 0;
  mosquitto* mosq_;
  bool connected_ = false;
  int64_t acked_ = 0;
  int64_t flushed_ = 0;
  int64_t last_publish_us_ = 0;
};

// ---------------------------------------------------------------------------
// run

struct ProcStats {
  double cpu_s = -1;
  int64_t hwm_kib = -1, rss_kib = -1;
};

ProcStats ReadProc(int pid) {
  ProcStats s;
  if (pid <= 0) return s;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (std::getline(stat, line)) {
    size_t close = line.rfind(')');
    std::vector<std::string> f;
    std::string tok;
    for (size_t i = close + 2; i <= line.size(); ++i) {
      if (i == line.size() || line[i] == ' ') {
        f.push_back(tok);
        tok.clear();
      } else {
        tok += line[i];
      }
    }
    // fields after ")": state is field 3, utime 14, stime 15 (1-based)
    if (f.size() > 12) {
      s.cpu_s = double(std::atoll(f[11].c_str()) + std::atoll(f[12].c_str())) / double(sysconf(_SC_CLK_TCK));
    }
  }
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) s.hwm_kib = std::atoll(line.c_str() + 6);
    if (line.rfind("VmRSS:", 0) == 0) s.rss_kib = std::atoll(line.c_str() + 6);
  }
  return s;
}

int64_t Percentile(std::vector<int64_t>& v, double q) {
  if (v.empty()) return -1;
  size_t k = size_t(std::floor(q * double(v.size() - 1)));
  std::nth_element(v.begin(), v.begin() + long(k), v.end());
  return v[k];
}

const char* kHeader =
    "label,mode,qos,devices,target_rate,seconds,sent,accounted,lost,dups,throughput,pub_rate,"
    "drain_ms,agent_cpu_s,cpu_s_per_100k,readings_per_cpu_s,cpu_pct_core,agent_peak_rss_kib,"
    "agent_rss_kib,lat_n,lat_p50_us,lat_p99_us,alerts,alerts_expected";

int Run(const Args& a) {
  const std::string mode = a.Get("mode");
  const int port = int(a.Int("port", 0));
  const int qos = int(a.Int("qos", 0));
  const int devices = int(a.Int("devices", 1000));
  const double rate = a.Num("rate", 0);
  const double seconds = a.Num("seconds", 5);
  const int agent = int(a.Int("agent-pid", 0));
  const int alert_every = int(a.Int("alert-every", mode == "http" ? 100 : 0));
  const double quiet_s = a.Num("quiet-ms", 3000) / 1000.0;
  const double warmup = a.Num("warmup", 0);
  if (port <= 0) Die("run: --port");

  Tally tally;
  std::unique_ptr<CountingSubscriber> sub;
  std::unique_ptr<FileTail> tail;
  std::unique_ptr<HttpReceiver> http;
  if (mode == "ceiling") {
    sub = std::make_unique<CountingSubscriber>(tally, port, qos);
  } else if (mode == "file") {
    tail = std::make_unique<FileTail>(tally, a.Get("file"));
  } else if (mode == "http") {
    http = std::make_unique<HttpReceiver>(int(a.Int("http-port", 0)));
  } else {
    Die("run: --mode ceiling|file|http");
  }
  auto accounted = [&]() -> int64_t { return http ? http->readings.load() : tally.distinct.load(); };
  auto progress = [&]() -> int64_t {
    return http ? http->readings + http->alerts + http->aggregates : tally.distinct + tally.dups;
  };

  Publisher pub(port, qos, devices, alert_every);
  ProcStats before = ReadProc(agent);
  // With --warmup, cpu_pct_core is the agent's CPU while sending after the
  // warm-up (the first keys, allocations, one-off start-up work excluded;
  // the flush and the drain too): the sustained cost at this rate.
  ProcStats warm, sent_all;
  double warm_at = 0, sent_at = 0;
  pub.Run(rate, warmup + seconds, warmup, [&] {
    warm = ReadProc(agent);
    warm_at = MonoS();
  });
  if (warmup > 0) {
    sent_all = ReadProc(agent);
    sent_at = MonoS();
  }
  if (http) pub.Flush(15000);

  // Wait until everything sent is accounted for, or nothing moves.
  double last_move = MonoS();
  int64_t last_progress = progress();
  while (true) {
    bool done = accounted() >= pub.sent && (!http || http->alerts >= pub.expected_alerts);
    if (done) break;
    usleep(5000);
    int64_t p = progress();
    if (p != last_progress) {
      last_progress = p;
      last_move = MonoS();
    } else if (MonoS() - last_move > quiet_s) {
      break;
    }
    if (agent > 0 && kill(agent, 0) != 0) {
      std::fprintf(stderr, "e2e_load: the agent (pid %d) is gone\n", agent);
      break;
    }
  }
  if (http) usleep(100000);  // late duplicates, the last alerts
  ProcStats after = ReadProc(agent);

  const int64_t got = accounted();
  const int64_t last_arrival = http ? http->last_arrival_us.load() : tally.last_arrival_us.load();
  const double span = std::max(1e-6, double(last_arrival - pub.first_send_us) / 1e6);
  const double throughput = got > 0 ? double(got) / span : 0;
  const double pub_rate = double(pub.sent) / std::max(1e-6, double(pub.last_send_us - pub.first_send_us) / 1e6);
  const double drain_ms = got > 0 ? double(last_arrival - pub.last_send_us) / 1000 : -1;
  std::vector<int64_t> lat;
  {
    if (http) {
      std::lock_guard<std::mutex> lock(http->mu_);
      lat = http->latency_us;
    } else {
      std::lock_guard<std::mutex> lock(tally.mu);
      lat = tally.latency_us;
    }
  }
  const int64_t p50 = Percentile(lat, 0.50), p99 = Percentile(lat, 0.99);
  const std::string p50s = lat.empty() ? "" : std::to_string(p50);
  const std::string p99s = lat.empty() ? "" : std::to_string(p99);
  const int64_t dups = http ? http->dup_records.load() : tally.dups.load();

  std::string cpu = "", per100k = "", per_cpu_s = "", pct = "", hwm = "", rss = "";
  if (agent > 0 && before.cpu_s >= 0 && after.cpu_s >= 0) {
    double c = after.cpu_s - before.cpu_s;
    char b[64];
    std::snprintf(b, sizeof b, "%.2f", c), cpu = b;
    if (got > 0) {
      std::snprintf(b, sizeof b, "%.3f", c * 1e5 / double(got)), per100k = b;
      if (c > 0) std::snprintf(b, sizeof b, "%.0f", double(got) / c), per_cpu_s = b;
    }
    std::snprintf(b, sizeof b, "%.1f", 100.0 * c / span), pct = b;
    if (warmup > 0 && warm.cpu_s >= 0 && sent_all.cpu_s >= 0 && sent_at > warm_at) {
      std::snprintf(b, sizeof b, "%.1f", 100.0 * (sent_all.cpu_s - warm.cpu_s) / (sent_at - warm_at));
      pct = b;
    }
    hwm = std::to_string(after.hwm_kib);
    rss = std::to_string(after.rss_kib);
  }
  std::printf("%s,%s,%d,%d,%.0f,%.1f,%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64
              ",%.0f,%.0f,%.0f,%s,%s,%s,%s,%s,%s,%zu,%s,%s,%s,%s\n",
              a.Get("label", "-").c_str(), mode.c_str(), qos, devices, rate, seconds, pub.sent, got,
              pub.sent - got, dups, throughput, pub_rate, drain_ms, cpu.c_str(), per100k.c_str(),
              per_cpu_s.c_str(), pct.c_str(), hwm.c_str(), rss.c_str(), lat.size(), p50s.c_str(), p99s.c_str(),
              http ? std::to_string(http->alerts.load()).c_str() : "",
              http ? std::to_string(pub.expected_alerts).c_str() : "");
  std::fflush(stdout);
  return 0;
}

int PublishOnly(const Args& a) {
  Publisher pub(int(a.Int("port", 0)), int(a.Int("qos", 0)), int(a.Int("devices", 1000)),
                int(a.Int("alert-every", 0)));
  pub.Run(a.Num("rate", 0), a.Num("seconds", 5));
  double span = double(pub.last_send_us - pub.first_send_us) / 1e6;
  std::printf("sent %" PRId64 " in %.2f s: %.0f/s\n", pub.sent, span, double(pub.sent) / span);
  return 0;
}


int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    Die("freeport");
  }
  std::printf("%d\n", ntohs(a.sin_port));
  close(fd);
  return 0;
}

// ---------------------------------------------------------------------------
// summarize: the per-configuration figures from the rows `run` printed.

using Row = std::map<std::string, std::string>;

std::vector<Row> ReadCsv(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::vector<std::string> head;
  std::vector<Row> rows;
  auto split = [](const std::string& l) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : l) {
      if (c == ',') {
        out.push_back(cur);
        cur.clear();
      } else {
        cur += c;
      }
    }
    out.push_back(cur);
    return out;
  };
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto f = split(line);
    if (head.empty()) {
      head = f;
      continue;
    }
    if (f.size() != head.size() || f[0] == "label") continue;
    Row r;
    for (size_t i = 0; i < f.size(); ++i) r[head[i]] = f[i];
    rows.push_back(std::move(r));
  }
  return rows;
}

double D(const Row& r, const char* k) {
  auto it = r.find(k);
  if (it == r.end() || it->second.empty()) return NAN;
  return std::strtod(it->second.c_str(), nullptr);
}

double Median(std::vector<double> v) {
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return std::isnan(x); }), v.end());
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string Fmt(double v, const char* f) {
  if (std::isnan(v)) return "-";
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string Thousands(double v) {
  if (std::isnan(v)) return "-";
  const std::string digits = std::to_string(int64_t(std::llround(v)));
  std::string s;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && digits[i - 1] != '-' && (digits.size() - i) % 3 == 0) s += ',';
    s += digits[i];
  }
  return s;
}

int Summarize(const Args& a) {
  std::vector<Row> rows = ReadCsv(a.Get("csv"));
  const double max_drain_ms = a.Num("max-drain-ms", 1000);
  FILE* out = std::fopen(a.Get("out").c_str(), "w");
  if (!out) Die("summarize: cannot write " + a.Get("out"));
  std::fprintf(out,
               "qos,devices,pipeline,sustained_per_s,ratio_to_ceiling,full_speed_per_s,full_speed_ratio,"
               "full_lost_max,cpu_s_per_100k,readings_per_cpu_s,peak_rss_kib,alert_p50_us_at_50pct,"
               "alert_p99_us_at_50pct,cpu_pct_core_at_5000\n");
  std::printf("%-4s %-7s %-12s %12s %8s %12s %9s %10s %9s %8s %15s %9s\n", "qos", "devices",
              "pipeline", "sustained/s", "ratio", "full-speed/s", "lost@full",
              "cpu s/100k", "rdg/cpu-s", "peak RSS", "alert p50/p99", "cpu@5k/s");
  std::printf("%-4s %-7s %-12s %12s %8s %12s %9s %10s %9s %8s %15s %9s\n", "", "", "",
              "(zero loss)", "(to ceil)", "(median)", "(max)", "(full)", "(full)", "MiB",
              "ms @50% ceiling", "% core");
  std::vector<std::pair<int, int>> cells;
  for (const Row& r : rows) {
    std::pair<int, int> c{int(D(r, "qos")), int(D(r, "devices"))};
    if (std::find(cells.begin(), cells.end(), c) == cells.end()) cells.push_back(c);
  }
  for (auto [qos, devices] : cells) {
    auto select = [&](const std::string& mode, const std::string& label_prefix) {
      std::vector<const Row*> out;
      for (const Row& r : rows) {
        if (int(D(r, "qos")) == qos && int(D(r, "devices")) == devices && r.at("mode") == mode &&
            r.at("label").rfind(label_prefix, 0) == 0) {
          out.push_back(&r);
        }
      }
      return out;
    };
    auto column = [](const std::vector<const Row*>& rs, const char* k) {
      std::vector<double> v;
      for (const Row* r : rs) v.push_back(D(*r, k));
      return v;
    };
    auto ceil_rows = select("ceiling", "full");
    const double ceiling = Median(column(ceil_rows, "throughput"));
    double ceiling_sustained = NAN;
    for (const char* mode : {"ceiling", "file", "http"}) {
      auto full = select(mode, "full");
      if (full.empty()) continue;
      const double full_tp = Median(column(full, "throughput"));
      double lost_max = 0;
      for (const Row* r : full) lost_max = std::max(lost_max, D(*r, "lost"));
      // The highest rate offered (pub_rate: what the publisher achieved,
      // median of a step's runs) at which every run arrived whole and
      // drained in time; full speed counts if no run lost.
      double sustained = NAN;
      std::map<std::string, std::vector<const Row*>> steps;
      for (const Row* r : select(mode, "x")) steps[r->at("label")].push_back(r);
      for (const auto& [label, runs] : steps) {
        const bool whole = std::all_of(runs.begin(), runs.end(), [&](const Row* r) {
          return D(*r, "lost") == 0 && D(*r, "dups") == 0 && D(*r, "drain_ms") <= max_drain_ms;
        });
        const double got = Median(column(runs, "pub_rate"));
        if (whole && (std::isnan(sustained) || got > sustained)) sustained = got;
      }
      if (lost_max == 0 && (std::isnan(sustained) || full_tp > sustained)) sustained = full_tp;
      if (std::string(mode) == "ceiling") ceiling_sustained = sustained;
      const auto half = select(mode, "x0.50");
      const double p50 = Median(column(half, "lat_p50_us")), p99 = Median(column(half, "lat_p99_us"));
      const double cpu5k = Median(column(select(mode, "r5000"), "cpu_pct_core"));
      double peak = NAN;
      for (const Row* r : select(mode, "")) {
        double h = D(*r, "agent_peak_rss_kib");
        if (!std::isnan(h) && (std::isnan(peak) || h > peak)) peak = h;
      }
      const double per100k = Median(column(full, "cpu_s_per_100k"));
      const double per_cpu_s = Median(column(full, "readings_per_cpu_s"));
      const char* name = std::string(mode) == "ceiling" ? "ceiling" : std::string(mode) == "file" ? "passthrough" : "demo/http";
      const double ratio = sustained / ceiling_sustained, full_ratio = full_tp / ceiling;
      std::string lat = std::isnan(p50) || p50 < 0 ? "-" : Fmt(p50 / 1000, "%.2f") + "/" + Fmt(p99 / 1000, "%.2f");
      std::printf("%-4d %-7d %-12s %12s %8s %12s %9s %10s %9s %8s %15s %9s\n", qos, devices, name,
                  Thousands(sustained).c_str(),
                  Fmt(ratio * 100, "%.0f%%").c_str(), Thousands(full_tp).c_str(),
                  Thousands(lost_max).c_str(), Fmt(per100k, "%.3f").c_str(),
                  Thousands(per_cpu_s).c_str(), Fmt(peak / 1024, "%.1f").c_str(), lat.c_str(),
                  Fmt(cpu5k, "%.1f").c_str());
      auto c = [](double v) { return std::isnan(v) ? std::string() : Fmt(v, "%.6g"); };
      std::fprintf(out, "%d,%d,%s,%s,%s,%.0f,%s,%.0f,%s,%s,%s,%s,%s,%s\n", qos, devices, name,
                   c(std::round(sustained)).c_str(), c(ratio).c_str(), full_tp,
                   c(full_ratio).c_str(), lost_max, c(per100k).c_str(), c(per_cpu_s).c_str(),
                   c(peak).c_str(), c(p50).c_str(), c(p99).c_str(), c(cpu5k).c_str());
    }
  }
  std::fclose(out);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) Die("usage: e2e_load launch|run|publish|header ... (see the top of e2e_load.cpp)");
  std::string cmd = argv[1];
  signal(SIGPIPE, SIG_IGN);
  if (cmd == "launch") return Launch(Parse(argc, argv, 2));
  if (cmd == "header") return std::puts(kHeader) < 0;
  if (cmd == "freeport") return FreePort();
  if (cmd == "summarize") return Summarize(Parse(argc, argv, 2));
  mosquitto_lib_init();
  int rc = 0;
  if (cmd == "run") {
    rc = Run(Parse(argc, argv, 2));
  } else if (cmd == "publish") {
    rc = PublishOnly(Parse(argc, argv, 2));
  } else {
    Die("unknown command " + cmd);
  }
  mosquitto_lib_cleanup();
  return rc;
}

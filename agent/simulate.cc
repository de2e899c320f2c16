#include "agent/simulate.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "platform/clock.h"
#include "platform/fs.h"
#include "platform/mqtt_publisher.h"
#include "platform/signals.h"
#include "platform/status.h"

namespace sluice::agent {
namespace {

constexpr double kTwoPow53 = 9007199254740992.0;

// Appends value / 10^scale, rounded half away from zero to `decimals` digits.
// Integer-only so the text is the same on every platform.
void AppendDecimal(std::string* out, int64_t value, int scale, int decimals) {
  uint64_t step = 1;
  for (int i = decimals; i < scale; ++i) step *= 10;
  uint64_t unit = 1;
  for (int i = 0; i < decimals; ++i) unit *= 10;
  bool negative = value < 0;
  uint64_t magnitude = negative ? 0 - static_cast<uint64_t>(value) : static_cast<uint64_t>(value);
  magnitude = (magnitude + step / 2) / step;
  if (magnitude == 0) negative = false;  // no "-0.0"
  char buf[48];
  std::snprintf(buf, sizeof buf, "%s%" PRIu64 ".%0*" PRIu64, negative ? "-" : "", magnitude / unit,
                decimals, magnitude % unit);
  out->append(buf);
}

std::string NumberedName(const char* prefix, int width, int number) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s%0*d", prefix, width, number);
  return buf;
}

// Why a topic pattern cannot be published to, or OK.
Status CheckTopicPattern(std::string_view pattern) {
  if (pattern.empty()) return Status::InvalidArgument("the topic is empty");
  if (pattern.find_first_of("+#") != std::string_view::npos) {
    return Status::InvalidArgument("a topic to publish to cannot hold the wildcards + or #");
  }
  for (size_t i = pattern.find('{'); i != std::string_view::npos; i = pattern.find('{', i + 1)) {
    std::string_view rest = pattern.substr(i);
    if (!rest.starts_with("{site}") && !rest.starts_with("{device}")) {
      return Status::InvalidArgument("unknown placeholder in topic (expected {site} or {device})");
    }
  }
  return Status::Ok();
}

Status CheckUrl(std::string_view url) {
  const Status expected = Status::InvalidArgument("expected a URL like tcp://host:port");
  if (!url.starts_with("tcp://") && !url.starts_with("mqtt://")) return expected;
  // The port is not guessed: a broker on another one would look absent.
  const MqttEndpoint e = ParseMqttUrl(std::string(url));
  const size_t colon = url.rfind(':');
  const std::string_view port = url.substr(colon + 1);
  if (e.host.empty() || colon < url.find("://") + 3 || port.empty() ||
      port.find_first_not_of("0123456789") != std::string_view::npos || e.port < 1 || e.port > 65535) {
    return expected;
  }
  return Status::Ok();
}

Status CheckOptions(const SimulateOptions& o) {
  RETURN_IF_ERROR(CheckUrl(o.url));
  RETURN_IF_ERROR(CheckTopicPattern(o.topic));
  if (o.devices < 1) return Status::InvalidArgument("--devices must be at least 1");
  if (o.sites < 0) return Status::InvalidArgument("--sites must not be negative");
  if (!(o.rate >= 0)) return Status::InvalidArgument("--rate must not be negative");
  if (o.count < 0) return Status::InvalidArgument("--count must not be negative");
  if (o.qos < 0 || o.qos > 2) return Status::InvalidArgument("--qos must be 0, 1 or 2");
  if (!(o.anomaly_rate >= 0 && o.anomaly_rate <= 1)) {
    return Status::InvalidArgument("--anomaly-rate must be within [0, 1]");
  }
  return Status::Ok();
}

// CLI11 validators return an empty string for "fine" or the complaint.
std::string AsCliCheck(const Status& s) {
  return s.ok() ? std::string() : std::string(s.message());
}

// Publishes with a bounded window of unacknowledged messages and, when the
// broker goes away, reconnects without giving up (what was in flight then
// counts as not acknowledged). Everything runs on the caller's thread.
class Publisher {
 public:
  Publisher(const SimulateOptions& options, SignalWaiter& signals)
      : options_(options), signals_(signals), window_(options.qos == 2 ? kQos2Window : kWindow) {
    client_options_.url = options_.url;
    client_options_.connect.client_id =
        options_.client_id.empty() ? "sluice-sim-" + HostName() + "-" + std::to_string(getpid())
                                   : options_.client_id;
    client_options_.connect.clean_session = true;
    client_options_.connect.keep_alive_s = 20;
    client_options_.timeout = Millis(5000);
  }

  ~Publisher() { Disconnect(); }

  Status Connect() {
    StatusOr<std::unique_ptr<MqttPublisher>> client = MqttPublisher::Connect(client_options_);
    if (!client.ok()) {
      return Status::Unavailable("cannot connect to " + options_.url + ": " +
                                 std::string(client.status().message()));
    }
    client_ = std::move(*client);
    return Status::Ok();
  }

  // Hands one reading to the broker once there is room in the window; while
  // the connection is down, waits for it to come back. Returns kCancelled
  // when a stop signal arrived first.
  Status Publish(const std::string& topic, const std::string& payload) {
    while (true) {
      if (!client_ && !Reconnect()) return Status::Cancelled("stopped");
      if (client_->in_flight() >= window_) {
        const uint64_t before = client_->completed();
        Status s = client_->Await(window_ - 1, RealClock().Now() + Millis(50));
        if (client_->completed() != before) last_progress_ = RealClock().Now();
        if (!s.ok() && s.code() != StatusCode::kDeadlineExceeded) {
          Lost(s);
        } else if (RealClock().Now() - last_progress_ >= kAckTimeout) {
          // The broker answers pings but not these publishes (a quota, an
          // ACL): give them up rather than wait for ever.
          Lost(Status::DeadlineExceeded("no acknowledgement for " +
                                        std::to_string(kAckTimeout.count() / 1000) + " s"));
        }
        if (PollStop(Millis(0))) return Status::Cancelled("stopped");
        continue;
      }
      if (client_->in_flight() == 0) last_progress_ = RealClock().Now();
      Status s = client_->Publish(topic, payload, options_.qos);
      if (s.ok()) {
        ++published_;
        return s;
      }
      Lost(s);
    }
  }

  // Counts the acknowledgements that have come in, and keeps the connection
  // alive, without waiting.
  void ReapCompleted() {
    if (!client_) return;
    if (Status s = client_->KeepAlive(); !s.ok()) Lost(s);
  }

  // Waits for every outstanding acknowledgement, until `deadline` or a
  // further stop signal.
  void Drain(SteadyTime deadline) {
    int stops_before = stop_signals_;
    while (client_ && client_->in_flight() > 0 && RealClock().Now() < deadline) {
      Status s = client_->Await(0, std::min(deadline, RealClock().Now() + Millis(50)));
      if (!s.ok() && s.code() != StatusCode::kDeadlineExceeded) {
        Lost(s);
        break;
      }
      if (PollStop(Millis(0)) && stop_signals_ > stops_before) break;
    }
  }

  void Disconnect() {
    if (client_) {
      acknowledged_before_ += client_->completed();
      client_->Disconnect();
      client_.reset();
    }
  }

  // Waits up to `timeout` for SIGINT or SIGTERM; true once one has arrived.
  bool PollStop(Millis timeout) {
    std::optional<int> sig = signals_.Wait(timeout);
    if (sig && (*sig == SIGINT || *sig == SIGTERM)) ++stop_signals_;  // SIGHUP: ignored
    return stop_signals_ > 0;
  }

  bool stop_requested() const { return stop_signals_ > 0; }
  int64_t published() const { return published_; }
  // At QoS 0 there is no acknowledgement: a message counts once handed over.
  int64_t acknowledged() const {
    if (options_.qos == 0) return published_;
    return acknowledged_before_ + static_cast<int64_t>(client_ ? client_->completed() : 0);
  }
  size_t in_flight() const { return client_ ? client_->in_flight() : 0; }

 private:
  // Keeps the window (and memory) bounded; ~1000 lets a loopback broker run
  // at full speed while the oldest ack is waited for.
  static constexpr size_t kWindow = 1000;
  // Mosquitto takes at most max_inflight_messages (default 20) unfinished
  // QoS 2 publishes from one client and drops the rest with "quota exceeded"
  // (rc 151) — which an MQTT 3.1.1 publisher cannot see. Stay under it.
  static constexpr size_t kQos2Window = 10;
  static constexpr Millis kAckTimeout{60000};
  static constexpr Millis kMinBackoff{250};
  // Capped low: a demo should resume soon after the broker does.
  static constexpr Millis kMaxBackoff{2000};

  // The connection broke: what was in flight is given up.
  void Lost(const Status& why) {
    std::fprintf(stderr, "sluice simulate: connection lost: %s; reconnecting\n",
                 std::string(why.message()).c_str());
    acknowledged_before_ += client_->completed();
    client_.reset();
  }

  // False when a stop signal came first. The first failure is said, with
  // its reason; the attempts go on quietly.
  bool Reconnect() {
    Millis backoff = kMinBackoff;
    bool said = false;
    while (!PollStop(backoff)) {
      Status s = Connect();
      if (s.ok()) {
        std::fprintf(stderr, "sluice simulate: reconnected\n");
        return true;
      }
      if (!said) {
        std::fprintf(stderr, "sluice simulate: %s; retrying until it answers\n",
                     std::string(s.message()).c_str());
        said = true;
      }
      backoff = std::min(kMaxBackoff, backoff * 2);
    }
    return false;
  }

  const SimulateOptions& options_;
  SignalWaiter& signals_;
  const size_t window_;  // publishes in flight at most
  MqttPublisher::Options client_options_;
  std::unique_ptr<MqttPublisher> client_;
  int stop_signals_ = 0;
  int64_t published_ = 0;
  int64_t acknowledged_before_ = 0;  // by connections since closed
  SteadyTime last_progress_ = RealClock().Now();  // an ack came, or none was awaited
};

std::chrono::steady_clock::duration Seconds(double s) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(s));
}

double SecondsSince(SteadyTime t) {
  return std::chrono::duration<double>(RealClock().Now() - t).count();
}

}  // namespace

// ---------------------------------------------------------------------------
// SensorSimulator

SensorSimulator::SensorSimulator(int devices, int sites, uint64_t seed, double anomaly_rate)
    : rng_state_(seed), sites_(std::max(sites, 1)) {
  anomaly_rate = std::clamp(anomaly_rate, 0.0, 1.0);  // NaN stays NaN: compare below
  // Scaling by a power of two is exact, so the threshold is the same everywhere.
  anomaly_threshold_ = anomaly_rate >= 1.0  ? static_cast<uint64_t>(kTwoPow53)
                       : anomaly_rate > 0.0 ? static_cast<uint64_t>(anomaly_rate * kTwoPow53)
                                            : 0;
  for (int s = 0; s < sites_; ++s) site_names_.push_back(NumberedName("site-", 2, s + 1));
  devices = std::max(devices, 1);
  devices_.resize(static_cast<size_t>(devices));
  for (int i = 0; i < devices; ++i) {
    Device& d = devices_[static_cast<size_t>(i)];
    d.name = NumberedName("dev-", 4, i + 1);
    d.site = i % sites_;
    d.base_temp = Uniform(18000, 30000);
    d.base_hum = Uniform(35000, 65000);
    d.base_vib = Uniform(500, 3000);
  }
}

uint64_t SensorSimulator::NextBits() {
  // splitmix64 (Steele, Lea, Flood 2014): tiny, fast and fully specified.
  uint64_t z = (rng_state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

int64_t SensorSimulator::Uniform(int64_t lo, int64_t hi) {
  // The modulo bias is below 1e-13 for these small ranges.
  return lo + static_cast<int64_t>(NextBits() % static_cast<uint64_t>(hi - lo + 1));
}

int64_t SensorSimulator::Noise(int64_t sigma) {
  // Irwin–Hall: the sum of 12 uniforms minus their mean has standard
  // deviation 1, close enough to a normal for sensor noise, and needs no
  // log/cos (whose last bits differ between libms). 12 × 16 bits.
  int64_t sum = 0;
  for (int k = 0; k < 3; ++k) {
    uint64_t bits = NextBits();
    for (int j = 0; j < 4; ++j) sum += static_cast<int64_t>((bits >> (16 * j)) & 0xffff);
  }
  int64_t centered = sum - 12 * 65535 / 2;  // sd ≈ 65536
  return centered * sigma / 65536;
}

SimulatedReading SensorSimulator::Next(int64_t event_time_ms) {
  const size_t index = next_device_;
  next_device_ = (next_device_ + 1) % devices_.size();
  Device& d = devices_[index];

  // Slow drift: a random walk pulled back towards the baseline.
  d.temp_drift = std::clamp<int64_t>(d.temp_drift + Noise(80) - d.temp_drift / 200, -5000, 5000);
  d.hum_drift = std::clamp<int64_t>(d.hum_drift + Noise(150) - d.hum_drift / 200, -10000, 10000);
  d.vib_drift = std::clamp<int64_t>(d.vib_drift + Noise(15) - d.vib_drift / 200, -d.base_vib / 2,
                                    d.base_vib / 2);

  // Drawn for every reading, so the stream does not shift with episodes.
  const bool start_episode = (NextBits() >> 11) < anomaly_threshold_;
  if (d.anomaly_left == 0 && start_episode) {
    d.anomaly_left = static_cast<int>(Uniform(5, 20));
    d.anomaly_temp = Uniform(85000, 110000);
  }

  int64_t temp = d.base_temp + d.temp_drift + Noise(150);
  int64_t hum = std::clamp<int64_t>(d.base_hum + d.hum_drift + Noise(300), 0, 100000);
  int64_t vib = d.base_vib + d.vib_drift + Noise(50);
  const bool anomaly = d.anomaly_left > 0;
  if (anomaly) {
    --d.anomaly_left;
    // Above 80.0 even after rounding to one decimal.
    temp = std::max<int64_t>(d.anomaly_temp + Noise(1000), 80500);
    vib = vib * 3;
  }
  vib = std::max<int64_t>(vib, 0);

  SimulatedReading r;
  r.device = static_cast<int>(index);
  r.site = d.site;
  r.device_name = d.name;
  r.site_name = site_names_[static_cast<size_t>(d.site)];
  r.time_ms = event_time_ms;
  r.anomaly = anomaly;
  r.payload.reserve(80);
  r.payload.append("{\"ts\":").append(std::to_string(event_time_ms));
  r.payload.append(",\"temp\":");
  AppendDecimal(&r.payload, temp, 3, 1);
  r.payload.append(",\"hum\":");
  AppendDecimal(&r.payload, hum, 3, 1);
  r.payload.append(",\"vib\":");
  AppendDecimal(&r.payload, vib, 3, 3);
  r.payload.append("}");
  return r;
}

int DefaultSiteCount(int devices) { return std::max(1, (devices + 9) / 10); }

std::string RenderTopic(std::string_view pattern, const SimulatedReading& reading) {
  std::string out;
  out.reserve(pattern.size() + 16);
  size_t i = 0;
  while (i < pattern.size()) {
    std::string_view rest = pattern.substr(i);
    if (rest.starts_with("{site}")) {
      out += reading.site_name;
      i += 6;
    } else if (rest.starts_with("{device}")) {
      out += reading.device_name;
      i += 8;
    } else {
      out += pattern[i++];
    }
  }
  return out;
}

int64_t SyntheticEventTime(int64_t start_ms, int64_t index, double rate, int devices) {
  // One IEEE multiply and divide are correctly rounded everywhere.
  double interval_ms = rate > 0 ? 1000.0 / rate : 1000.0 / std::max(devices, 1);
  return start_ms + static_cast<int64_t>(std::floor(static_cast<double>(index) * interval_ms));
}

// ---------------------------------------------------------------------------
// The command

CLI::App* AddSimulateCommand(CLI::App& parent, SimulateOptions& options) {
  CLI::App* cmd = parent.add_subcommand(
      "simulate",
      "Publish realistic sensor readings to an MQTT broker (demos, load and field tests)");
  cmd->add_option("--url", options.url, "Broker URL, tcp://host:port")
      ->check([](const std::string& s) { return AsCliCheck(CheckUrl(s)); }, "URL")
      ->capture_default_str();
  cmd->add_option("--devices", options.devices, "Number of simulated devices")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  cmd->add_option("--rate", options.rate,
                  "Readings per second, all devices together; 0 = as fast as possible")
      ->check(CLI::Range(0.0, 10000000.0))
      ->capture_default_str();
  cmd->add_option("--count", options.count,
                  "Readings to publish before exiting; 0 = until SIGINT/SIGTERM")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--seed", options.seed, "Seed of the generator: same seed, same readings")
      ->capture_default_str();
  cmd->add_option("--qos", options.qos, "MQTT QoS of every publish")
      ->check(CLI::Range(0, 2))
      ->capture_default_str();
  cmd->add_option("--topic", options.topic, "Topic template; {site} and {device} are replaced")
      ->check([](const std::string& s) { return AsCliCheck(CheckTopicPattern(s)); }, "TEMPLATE")
      ->capture_default_str();
  cmd->add_option("--sites", options.sites,
                  "Number of sites; device i belongs to site i % sites; 0 = ceil(devices/10)")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  cmd->add_option("--anomaly-rate", options.anomaly_rate,
                  "Chance per reading that an overheat episode (temp > 80 °C) starts")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option_function<int64_t>(
         "--start-ms", [&options](const int64_t& v) { options.start_ms = v; },
         "Synthetic event time of the first reading (epoch ms); later readings follow "
         "at 1000/rate ms steps, making a seeded run reproducible. Default: the wall clock")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--client-id", options.client_id,
                  "MQTT client id; default sluice-sim-<host>-<pid>");
  return cmd;
}

int RunSimulate(const SimulateOptions& options) {
  if (Status s = CheckOptions(options); !s.ok()) {
    std::fprintf(stderr, "sluice simulate: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  // SIGINT/SIGTERM reach only signals.Wait() below.
  SignalWaiter signals;
  const int sites = options.sites > 0 ? options.sites : DefaultSiteCount(options.devices);
  SensorSimulator simulator(options.devices, sites, options.seed, options.anomaly_rate);

  Publisher publisher(options, signals);
  if (Status s = publisher.Connect(); !s.ok()) {
    std::fprintf(stderr, "sluice simulate: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  if (options.rate > 0) {
    std::fprintf(stderr,
                 "sluice simulate: connected to %s; %d devices on %d sites, %g readings/s\n",
                 options.url.c_str(), options.devices, sites, options.rate);
  } else {
    std::fprintf(stderr,
                 "sluice simulate: connected to %s; %d devices on %d sites, as fast as possible\n",
                 options.url.c_str(), options.devices, sites);
  }

  // At high rates one wake-up sends every reading that has come due: small
  // bursts instead of a sleep per message. A sender that fell more than a
  // second behind (broker stall) starts a new schedule rather than flooding.
  constexpr int64_t kMaxBurst = 256;
  const SteadyTime start = RealClock().Now();
  SteadyTime origin = start;
  int64_t origin_index = 0;
  SteadyTime last_progress = start;
  int64_t progress_published = 0;
  Status failure;

  int64_t i = 0;
  while (failure.ok() && !publisher.stop_requested() && (options.count == 0 || i < options.count)) {
    if (RealClock().Now() - last_progress >= std::chrono::seconds(10)) {
      publisher.ReapCompleted();
      const double interval = SecondsSince(last_progress);
      std::fprintf(stderr,
                   "sluice simulate: %" PRId64 " published (%.1f/s lately), %" PRId64
                   " acknowledged, %zu in flight\n",
                   publisher.published(),
                   static_cast<double>(publisher.published() - progress_published) / interval,
                   publisher.acknowledged(), publisher.in_flight());
      progress_published = publisher.published();
      last_progress = RealClock().Now();
    }

    int64_t burst = kMaxBurst;
    if (options.rate > 0) {
      const SteadyTime now = RealClock().Now();
      int64_t due =
          origin_index +
          static_cast<int64_t>(std::chrono::duration<double>(now - origin).count() * options.rate) +
          1;
      if (static_cast<double>(due - i) > std::max(options.rate, 1.0)) {
        origin = now;
        origin_index = i;
        due = i + 1;
      }
      if (due <= i) {
        const SteadyTime slot =
            origin + Seconds(static_cast<double>(i - origin_index) / options.rate);
        auto wait = std::chrono::ceil<Millis>(slot - now);
        publisher.ReapCompleted();  // and keeps an idle connection alive
        publisher.PollStop(std::clamp(wait, Millis(1), Millis(200)));
        continue;
      }
      burst = std::min(burst, due - i);
    }
    if (options.count > 0) burst = std::min(burst, options.count - i);

    for (int64_t k = 0; k < burst; ++k, ++i) {
      const int64_t time_ms =
          options.start_ms ? SyntheticEventTime(*options.start_ms, i, options.rate, options.devices)
                           : ToEpochMillis(RealClock().WallNow());
      SimulatedReading reading = simulator.Next(time_ms);
      Status s = publisher.Publish(RenderTopic(options.topic, reading), reading.payload);
      if (!s.ok()) {
        if (s.code() != StatusCode::kCancelled) failure = s;
        break;
      }
    }
    publisher.ReapCompleted();
    publisher.PollStop(Millis(0));
  }

  publisher.Drain(RealClock().Now() + std::chrono::seconds(30));
  publisher.Disconnect();
  // A late Ctrl-C still pending would kill the process once ~SignalWaiter
  // unblocks it, turning a clean exit into 130.
  while (signals.Wait(Millis(0))) {
  }

  const double seconds = SecondsSince(start);
  const int64_t n = publisher.published();
  const int64_t acked = options.qos == 0 ? n : publisher.acknowledged();
  std::printf("published %" PRId64 " readings in %.2f s (%.1f/s), acknowledged %" PRId64 "\n", n,
              seconds, seconds > 0 ? static_cast<double>(n) / seconds : 0.0, acked);
  std::fflush(stdout);

  if (!failure.ok()) {
    std::fprintf(stderr, "sluice simulate: %s\n", std::string(failure.message()).c_str());
    return 1;
  }
  if (acked < n) {
    std::fprintf(stderr,
                 "sluice simulate: %" PRId64 " readings were not acknowledged by the broker\n",
                 n - acked);
    return 1;
  }
  return 0;
}

}  // namespace sluice::agent

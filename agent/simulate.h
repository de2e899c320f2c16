// `sluice simulate`: publishes realistic sensor readings to an MQTT broker,
// for demos, load tests and field tests of a pipeline.
//
//   CLI::App app{"sluice"};
//   SimulateOptions sim;
//   CLI::App* cmd = AddSimulateCommand(app, sim);
//   CLI11_PARSE(app, argc, argv);
//   if (cmd->parsed()) return RunSimulate(sim);
//
// The readings come from SensorSimulator, a pure generator with no I/O: the
// same seed gives byte-identical payloads on every platform and compiler,
// so a seeded run (with --start-ms) can be replayed exactly, and tests can
// check the generator without a broker.
#ifndef SLUICE_AGENT_SIMULATE_H_
#define SLUICE_AGENT_SIMULATE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace CLI {
class App;
}  // namespace CLI

namespace sluice::agent {

struct SimulateOptions {
  std::string url = "tcp://127.0.0.1:1883";
  int devices = 10;
  double rate = 10;   // readings per second, all devices together; 0 = as fast as possible
  int64_t count = 0;  // readings to publish; 0 = until SIGINT/SIGTERM
  uint64_t seed = 1;
  int qos = 1;
  std::string topic = "sensors/{site}/{device}";
  int sites = 0;                // 0 = ceil(devices / 10)
  double anomaly_rate = 0.002;  // chance per reading that an overheat episode starts
  // Set: reading i carries the synthetic event time start_ms + i * 1000 / rate
  // (with rate 0: each device reports once per second of event time), so a
  // seeded run is reproducible byte for byte. Unset: the wall clock.
  std::optional<int64_t> start_ms;
  std::string client_id;  // empty: "sluice-sim-<host>-<pid>"
};

// Registers the `simulate` subcommand and its flags (with help text and
// range checks) on `parent`; parsed values land in *options, which must
// outlive the parse. Returns the subcommand so the caller can test parsed().
CLI::App* AddSimulateCommand(CLI::App& parent, SimulateOptions& options);

// Connects, publishes until `count` readings are sent or SIGINT/SIGTERM
// arrives, waits for the outstanding acknowledgements and disconnects.
// Prints `published N readings in S s (R/s), acknowledged A` on stdout and a
// progress line every 10 s on stderr. Returns the process exit code: 0, or 1
// with a one-line reason on stderr (broker unreachable, readings that were
// never acknowledged). Blocks SIGINT, SIGTERM and SIGHUP in the calling
// thread while it runs (platform/signals.h): call it before starting threads.
int RunSimulate(const SimulateOptions& options);

// One generated reading.
struct SimulatedReading {
  int device = 0;           // 0-based index; devices are visited round-robin
  int site = 0;             // 0-based; device i belongs to site i % sites
  std::string device_name;  // "dev-0001" for device 0
  std::string site_name;    // "site-01" for site 0
  int64_t time_ms = 0;      // event time, as given to Next()
  bool anomaly = false;     // part of an overheat episode (temp > 80 °C)
  std::string payload;      // {"ts":<ms>,"temp":21.3,"hum":48.0,"vib":1.234}
};

// Deterministic readings for `devices` devices spread over `sites` sites.
// Each device has its own baseline (temp 18–30 °C, humidity 35–65 %,
// vibration 0.5–3 mm/s), a slow mean-reverting drift and noise. With
// probability `anomaly_rate` per reading an overheat episode starts on the
// device: 5–20 of its readings above 80 °C with raised vibration. Outside
// episodes temp stays within 12–37 °C.
//
// All arithmetic is in integers (milli-units) from a splitmix64 stream: std
// distributions, libm and FMA contraction differ between platforms, so
// floating point would break byte-identical replays. Not thread-safe.
class SensorSimulator {
 public:
  // devices >= 1, sites >= 1, anomaly_rate in [0, 1] (clamped).
  SensorSimulator(int devices, int sites, uint64_t seed, double anomaly_rate);

  // The next device's reading, stamped `event_time_ms`.
  SimulatedReading Next(int64_t event_time_ms);

  int devices() const { return static_cast<int>(devices_.size()); }
  int sites() const { return sites_; }

 private:
  struct Device {
    std::string name;
    int site = 0;
    int64_t base_temp = 0;  // m°C
    int64_t base_hum = 0;   // m%
    int64_t base_vib = 0;   // µm/s
    int64_t temp_drift = 0;
    int64_t hum_drift = 0;
    int64_t vib_drift = 0;
    int anomaly_left = 0;  // readings left in the current episode
    int64_t anomaly_temp = 0;
  };

  uint64_t NextBits();
  int64_t Uniform(int64_t lo, int64_t hi);  // inclusive
  int64_t Noise(int64_t sigma);             // bell-shaped, |x| <= 6 sigma

  uint64_t rng_state_;
  uint64_t anomaly_threshold_;  // out of 2^53
  int sites_;
  std::vector<std::string> site_names_;
  std::vector<Device> devices_;
  size_t next_device_ = 0;
};

// ceil(devices / 10): the default number of sites.
int DefaultSiteCount(int devices);

// `pattern` with every {site} and {device} replaced by the reading's names.
std::string RenderTopic(std::string_view pattern, const SimulatedReading& reading);

// Event time of the i-th reading (0-based) of a run with a synthetic clock.
int64_t SyntheticEventTime(int64_t start_ms, int64_t index, double rate, int devices);

}  // namespace sluice::agent

#endif  // SLUICE_AGENT_SIMULATE_H_

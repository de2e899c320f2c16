// The agent's configuration as typed, validated data.
//
// LoadConfigFile() (config/loader.h) is the only producer: every value here
// has already been checked, units converted and secret references resolved.
// The shape follows the YAML of DESIGN.md one to one; positions point back
// into the file for errors that can only be found later (expressions).
#ifndef SLUICE_CONFIG_CONFIG_H_
#define SLUICE_CONFIG_CONFIG_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace sluice::config {

using Millis = std::chrono::milliseconds;

// 1-based line and column in `file`; line 0 means "no position".
struct Position {
  std::string file;
  int line = 0;
  int column = 0;
};

// A string that came from, or may contain, a secret reference. Its value is
// never printed: there is deliberately no operator<<.
class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) {}
  const std::string& value() const { return value_; }
  bool empty() const { return value_.empty(); }
  friend bool operator==(const Secret&, const Secret&) = default;

 private:
  std::string value_;
};

struct LogConfig {
  std::string level = "info";   // debug | info | warn | error
  std::string format = "text";  // text | json
};

struct AgentConfig {
  std::string id;                        // default: the host name
  std::string data_dir = "/var/lib/sluice";
  std::string http = "127.0.0.1:9464";   // "off" disables
  LogConfig log;
  Millis shutdown_grace{5000};
};

struct TlsConfig {
  std::string ca;    // CA bundle path
  std::string cert;  // client certificate path
  std::string key;   // client key path
};

enum class TimeUnit { kSeconds, kMillis, kMicros, kNanos, kRfc3339 };

struct TimeConfig {
  std::string field;                  // payload field holding the event time
  TimeUnit unit = TimeUnit::kMillis;
  // Readings whose event time is further ahead of their arrival are refused:
  // one would move every window pipeline's watermark that far ahead.
  Millis max_ahead{5 * 60 * 1000};
};

struct SourceConfig {
  std::string name;
  Position pos;
  std::string type = "mqtt";
  std::string url;                    // tcp://host:port or ssl://host:port
  std::optional<TlsConfig> tls;
  std::string client_id;              // default: "sluice-<agent id>-<source name>"
  std::vector<std::string> topics;    // MQTT filters, wildcards allowed
  int qos = 1;                        // 0, 1 or 2
  bool persistent_session = true;     // session: persistent | clean
  Secret username;
  Secret password;
  std::string topic_fields;           // e.g. "sensors/{site}/{device}"; empty: none
  std::string format = "json";
  std::optional<TimeConfig> time;     // absent: arrival time
};

// An expression's source text; compiled by operators/ (not by config/).
struct Expression {
  std::string text;
  Position pos;  // of the first character of `text`
};

enum class WindowType { kTumbling, kHopping, kSession };

struct WindowConfig {
  WindowType type = WindowType::kTumbling;
  Millis size{0};      // tumbling, hopping
  Millis step{0};      // hopping
  Millis gap{0};       // session
  Millis lateness{0};
  // With no record for this long (processing time), event time is taken to
  // move on with the clock so that windows still close; 0 disables.
  Millis idle{30000};
  Position pos;
};

// One `name: fn(args)` line under `aggregate:`.
// function is one of count sum avg min max first last stddev p50 p90 p95 p99
// percentile; `field` is empty only for count(); `quantile` is set for the
// p-functions and percentile(field, q) (0 < q < 1).
struct AggregateConfig {
  std::string name;
  std::string function;
  std::string field;
  std::optional<double> quantile;
  Position pos;
};

struct AlertConfig {
  Expression when;
  std::optional<Expression> clear;    // default: not `when`
  Millis for_duration{0};             // `for:`
  std::optional<Millis> renotify;
  std::string severity = "warning";
  std::vector<std::string> key;
  std::map<std::string, std::string> labels;
  Position pos;
};

struct PipelineConfig {
  std::string name;
  Position pos;
  std::string from;                   // a source or another pipeline
  Position from_pos;
  std::optional<Expression> where;
  std::optional<WindowConfig> window;
  std::vector<std::string> group_by;
  std::vector<AggregateConfig> aggregates;  // in file order
  std::optional<AlertConfig> alert;
  std::vector<std::string> to;        // sink names
  std::vector<Position> to_pos;       // one per entry of `to`

  bool passthrough() const { return !window && !alert && aggregates.empty(); }
};

enum class Overflow { kDropOldest, kDropNewest, kBlock };
enum class SyncLevel { kNormal, kFull };

struct BufferConfig {
  uint64_t max_size = 256ull << 20;  // bytes
  Overflow overflow = Overflow::kDropOldest;
  SyncLevel sync = SyncLevel::kNormal;
};

struct StdoutSinkConfig {};

struct FileSinkConfig {
  std::string path;
  uint64_t rotate_max_size = 0;  // bytes; 0: never rotate
  int rotate_keep = 5;           // rotated files kept besides the live one
};

struct SaslConfig {
  std::string mechanism;  // PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
  Secret username;
  Secret password;
};

// The producer always runs with enable.idempotence=true and acks=all (the
// loader refuses properties that would turn either off).
struct KafkaSinkConfig {
  std::vector<std::string> brokers;
  std::string topic;                       // may hold {field} templates
  std::string key;                         // template; empty: the record's group key
  std::string compression = "none";        // none | gzip | snappy | lz4 | zstd
  std::optional<TlsConfig> tls;            // security.protocol ssl (sasl_ssl with sasl)
  std::optional<SaslConfig> sasl;          // security.protocol sasl_plaintext without tls
  Millis linger{5};                        // linger.ms
  std::optional<uint64_t> batch_size;      // batch.size in bytes; absent: librdkafka's
  Millis timeout{30000};                   // one delivery attempt (message.timeout.ms)
  // Passed through to librdkafka last (they win over the keys above);
  // unknown names are refused when the sink is created.
  std::map<std::string, Secret> properties;
};

struct HttpSinkConfig {
  std::string url;
  std::string method = "POST";  // POST | PUT
  int max_records = 500;
  uint64_t max_bytes = 1ull << 20;
  Millis max_delay{1000};
  bool gzip = false;
  Millis timeout{10000};
  std::map<std::string, Secret> headers;
  std::optional<TlsConfig> tls;
};

struct MqttSinkConfig {
  std::string url;
  std::string topic;  // may hold {field} templates
  int qos = 1;
  std::string client_id;
  Secret username;
  Secret password;
  std::optional<TlsConfig> tls;
};

using SinkSpec = std::variant<StdoutSinkConfig, FileSinkConfig, KafkaSinkConfig,
                              HttpSinkConfig, MqttSinkConfig>;

struct SinkConfig {
  std::string name;
  Position pos;
  std::string type;  // stdout | file | kafka | http | mqtt
  BufferConfig buffer;
  SinkSpec spec;
};

struct Config {
  std::string file;  // the path it was loaded from
  AgentConfig agent;
  std::vector<SourceConfig> sources;      // in file order
  std::vector<PipelineConfig> pipelines;  // in file order
  std::vector<SinkConfig> sinks;          // in file order

  const SourceConfig* FindSource(const std::string& name) const;
  const PipelineConfig* FindPipeline(const std::string& name) const;
  const SinkConfig* FindSink(const std::string& name) const;
};

// Everything that shapes a pipeline's state, as one canonical text (no
// positions, no sinks): its own settings and the decoding of the source it
// reads. Two configs give the same text exactly when a checkpoint of one is
// valid state for the other — after a reload or a restart with an edited
// config, a pipeline whose text changed starts empty.
std::string StateDefinition(const Config& config, const PipelineConfig& pipeline);

}  // namespace sluice::config

#endif  // SLUICE_CONFIG_CONFIG_H_

#include "config/loader.h"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <utility>

#include "config/rules.h"
#include "config/secret_refs.h"
#include "config/text_guard.h"
#include "config/units_internal.h"

namespace sluice::config {
namespace {

using internal::DidYouMean;
using internal::HttpUrlScheme;
using internal::IsFieldName;
using internal::IsHeaderName;
using internal::IsName;
using internal::IsNameChar;
using internal::JoinComma;
using internal::JoinOr;
using internal::KeyList;
using internal::MqttUrlScheme;
using internal::ParseHostPort;
using internal::Quoted;
using internal::Suggest;
using internal::TemplateProblem;
using internal::TopicFilterProblem;
using internal::TopicPatternProblem;
using internal::Trim;

std::string HostName() {
  char buffer[256] = {};
  if (::gethostname(buffer, sizeof buffer - 1) != 0 || buffer[0] == '\0') return "sluice";
  return buffer;
}

// ---------------------------------------------------------------------------
// The schema

constexpr std::string_view kRootExpected = "a map with keys agent, sources, pipelines and sinks";
const KeyList kRootKeys = {"agent", "sources", "pipelines", "sinks"};
const KeyList kAgentKeys = {"id", "data_dir", "http", "log", "shutdown_grace"};
const KeyList kLogKeys = {"level", "format"};
const KeyList kSourceKeys = {"type",    "url",      "tls",      "client_id",    "topics", "qos",
                             "session", "username", "password", "topic_fields", "format", "time"};
const KeyList kTlsKeys = {"ca", "cert", "key"};
const KeyList kSaslKeys = {"mechanism", "username", "password"};
const KeyList kTimeKeys = {"field", "unit", "max_ahead"};
const KeyList kPipelineKeys = {"from", "where", "window", "group_by", "aggregate", "alert", "to"};
// Windows a reading of a hopping window counts in at once (size / step).
constexpr int64_t kMaxHoppingOverlap = 1000;
const KeyList kWindowKeys = {"type", "size", "step", "gap", "lateness", "idle"};
const KeyList kAlertKeys = {"when", "clear", "for", "renotify", "severity", "key", "labels"};
const KeyList kBufferKeys = {"max_size", "overflow", "sync"};
const KeyList kRotateKeys = {"max_size", "keep"};
const KeyList kBatchKeys = {"max_records", "max_bytes", "max_delay"};
const KeyList kSinkTypes = {"stdout", "file", "kafka", "http", "mqtt"};
const KeyList kSinkKeys = {"type",   "buffer", "path",        "rotate",     "brokers",
                           "topic",  "key",    "compression", "properties", "url",
                           "method", "batch",  "gzip",        "timeout",    "headers",
                           "tls",    "qos",    "client_id",   "username",   "password",
                           "sasl",   "linger", "batch_size"};
const std::map<std::string_view, KeyList> kSinkKeysByType = {
    {"stdout", {"type", "buffer"}},
    {"file", {"type", "buffer", "path", "rotate"}},
    {"kafka",
     {"type", "buffer", "brokers", "topic", "key", "compression", "tls", "sasl", "linger",
      "batch_size", "timeout", "properties"}},
    {"http", {"type", "buffer", "url", "method", "batch", "gzip", "timeout", "headers", "tls"}},
    {"mqtt", {"type", "buffer", "url", "topic", "qos", "client_id", "username", "password", "tls"}},
};
const std::map<std::string_view, KeyList> kWindowKeysByType = {
    {"tumbling", {"type", "size", "lateness", "idle"}},
    {"hopping", {"type", "size", "step", "lateness", "idle"}},
    {"session", {"type", "gap", "lateness", "idle"}},
};
const KeyList kAggregateFunctions = {"count",  "sum", "avg", "min", "max", "first",     "last",
                                     "stddev", "p50", "p90", "p95", "p99", "percentile"};
constexpr std::string_view kAggregateExpected =
    "expected an aggregate such as count(), avg(temp) or percentile(temp, 0.99), with one of "
    "count, sum, avg, min, max, first, last, stddev, p50, p90, p95, p99, percentile";
constexpr std::string_view kMqttUrlExpected =
    "expected a broker URL tcp://host:port, ssl://host:port, mqtt://host:port or "
    "mqtts://host:port such as tcp://127.0.0.1:1883";
constexpr std::string_view kFieldExpected = "a field name of letters, digits, '_', '-' or '.'";

// ---------------------------------------------------------------------------
// Walking the YAML tree with positions

struct Item {
  YAML::Node node;
  std::string path;  // "sources.plant.qos"; "" for the root
  Position pos;      // the node's, or its key's when the node is empty
};

struct Entry {
  std::string key;
  Position key_pos;
  Item value;
};

struct MapView {
  std::string path;
  Position pos;
  std::vector<Entry> entries;  // in file order, duplicates removed
  // Key to index in `entries`: a map may have many thousands of keys.
  std::map<std::string, size_t, std::less<>> index;

  const Entry* Find(std::string_view key) const {
    const auto it = index.find(key);
    return it == index.end() ? nullptr : &entries[it->second];
  }
};

// A scalar's value with secret references resolved.
struct Text {
  std::string value;
  // What messages may quote: the scalar as written, so that a resolved secret
  // never reaches a diagnostic.
  std::string shown;
  Position pos;
  bool plain = true;    // written without quotes
  bool secret = false;  // held a reference: say nothing derived from `value`
};

// " (why)" after a "got ...", unless `why` was derived from a secret.
std::string Detail(const Text& t, const std::string& why) {
  return t.secret ? "" : " (" + why + ")";
}

// How a value is named after "got": numbers bare ("got 3"), text quoted.
std::string Got(const Text& t) {
  const auto is_digit = [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; };
  const bool numeric = t.plain && std::any_of(t.shown.begin(), t.shown.end(), is_digit) &&
                       std::all_of(t.shown.begin(), t.shown.end(), [&](char c) {
                         return is_digit(c) || c == '-' || c == '+' || c == '.';
                       });
  return numeric ? t.shown : Quoted(t.shown);
}

std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return "nothing";
    case YAML::NodeType::Sequence:
      return node.size() == 0 ? "an empty list" : "a list";
    case YAML::NodeType::Map:
      return node.size() == 0 ? "an empty map" : "a map";
    case YAML::NodeType::Scalar:
      return Quoted(node.Scalar());
  }
  return "something else";
}

// After "unknown sink 'x'": a suggestion, else the names there are. Huge
// configs get neither, so that a file of typos costs no more than linear time.
constexpr size_t kMaxHintCandidates = 256;

std::string NameHint(std::string_view given, const KeyList& candidates, std::string_view what) {
  constexpr size_t kMaxListed = 20;
  if (candidates.empty() || candidates.size() > kMaxHintCandidates) {
    return "; expected the name of " + std::string(what);
  }
  const std::string suggestion = Suggest(given, candidates);
  if (!suggestion.empty()) return " (did you mean '" + suggestion + "'?)";
  if (candidates.size() <= kMaxListed) return "; expected one of: " + JoinComma(candidates);
  return "; expected one of: " +
         JoinComma(KeyList(candidates.begin(), candidates.begin() + kMaxListed)) + ", ...";
}

std::string Child(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

class Checker {
 public:
  Checker(std::string_view text, const std::string& file, const LoadOptions& options)
      : text_(text), file_(file), options_(options) {}

  void Run(const YAML::Node& root);
  // Last line of defence: no message may hold a resolved value, even one a
  // check derived by accident. Values too short to redact without mangling
  // the message ("1") are left to the checks, which quote the reference.
  void RedactSecrets();
  Config& config() { return config_; }
  std::vector<Diagnostic>& diagnostics() { return diagnostics_; }

 private:
  // Where a pipeline's references were written, for the checks that need
  // every section read first.
  struct PipelineRefs {
    std::string from_shown;
    std::vector<std::string> to_shown;
  };

  void Error(const Position& pos, const std::string& path, const std::string& message) {
    diagnostics_.push_back({pos, path.empty() ? message : path + ": " + message});
  }
  void Error(const Item& item, const std::string& message) { Error(item.pos, item.path, message); }

  // `parent_offset`: where the key or list holding `node` starts. An alias
  // shares the anchored node and its mark, which lies before that; the
  // alias's own place is then best told by its parent.
  Position PosOf(const YAML::Node& node, const Position& fallback, int parent_offset = -1) const {
    // An empty value's mark is that of the next token, often lines away.
    if (node.IsNull()) return fallback;
    const YAML::Mark mark = node.Mark();
    if (mark.is_null() || mark.pos < parent_offset) return fallback;
    return Position{file_, mark.line + 1, mark.column + 1};
  }

  void RememberSecret(const std::string& value) {
    if (!value.empty()) secret_values_.insert(value);
  }

  Position ExpressionPos(const Item& item) const;

  std::optional<MapView> AsMap(const Item& item, std::string_view expected, const KeyList& allowed);
  void CheckKeysApply(const MapView& map, const KeyList& allowed, const std::string& what);
  bool Require(const MapView& map, std::string_view key, std::string_view expected);
  std::optional<std::vector<Item>> AsList(const Item& item, std::string_view expected,
                                          bool non_empty);

  std::optional<Text> AsText(const Item& item, std::string_view expected);
  std::optional<Text> AsNonEmpty(const Item& item, std::string_view expected);
  std::optional<std::string> AsString(const Item& item, std::string_view expected) {
    std::optional<Text> t = AsNonEmpty(item, expected);
    if (!t) return std::nullopt;
    return std::move(t->value);
  }
  std::optional<Secret> AsSecret(const Item& item);
  std::optional<std::string> AsChoice(const Item& item, const KeyList& choices);
  std::optional<int64_t> AsInt(const Item& item, int64_t min, int64_t max,
                               std::string_view expected);
  std::optional<bool> AsBool(const Item& item);
  std::optional<Millis> AsDuration(const Item& item, bool positive);
  std::optional<uint64_t> AsSize(const Item& item, bool positive);
  std::optional<Expression> AsExpression(const Item& item);
  std::optional<std::vector<std::string>> AsFieldList(const Item& item);
  std::optional<std::string> AsTemplate(const Item& item, bool allow_empty);
  std::optional<std::map<std::string, Secret>> AsSecretMap(const Item& item, bool header_names);
  std::optional<int> AsQos(const Item& item);

  // Reads a map of named entries (sources, pipelines, sinks).
  bool ReadNamed(const Item& item, std::string_view singular,
                 std::vector<std::pair<std::string, Position>>* names,
                 const std::function<void(const Entry&)>& read_one);

  void ReadAgent(const Item& item);
  void ReadSource(const Entry& e);
  std::optional<TlsConfig> ReadTls(const Item& item);
  std::optional<SaslConfig> ReadSasl(const Item& item);
  void CheckKafkaProperties(const Item& item);
  void ReadPipeline(const Entry& e);
  std::optional<WindowConfig> ReadWindow(const Item& item);
  void ReadAggregates(const Item& item, PipelineConfig* p);
  std::optional<AlertConfig> ReadAlert(const Item& item);
  void ReadSink(const Entry& e);
  void ReadBuffer(const Item& item, BufferConfig* b);
  FileSinkConfig ReadFileSink(const MapView& m);
  KafkaSinkConfig ReadKafkaSink(const MapView& m);
  HttpSinkConfig ReadHttpSink(const MapView& m);
  MqttSinkConfig ReadMqttSink(const MapView& m);

  void CheckReferences();
  void ApplyDefaults();
  // Two sinks on one file lose records to each other's rotation, and a sink
  // writing the store's own files destroys it.
  void ClaimFilePath(const Item& item, const std::string& path, const std::string& user) {
    namespace fs = std::filesystem;
    // As the agent will open them: relative to its directory, through links.
    auto resolved = [](const fs::path& p) {
      std::error_code ec;
      fs::path r = fs::weakly_canonical(fs::absolute(p, ec), ec);
      return ec ? p.lexically_normal() : r;
    };
    const fs::path normal = resolved(path);
    const fs::path store = resolved(fs::path(config_.agent.data_dir) / "sluice.db");
    if (normal.parent_path() == store.parent_path() &&
        normal.filename().string().rfind("sluice.db", 0) == 0) {
      Error(item, "expected a file outside the agent's store; got " + Quoted(path) +
                      ", the store's own file in agent.data_dir");
      return;
    }
    auto [it, fresh] = file_paths_.emplace(normal.string(), user);
    if (!fresh) {
      Error(item, "file " + Quoted(path) + " is already written by " + it->second +
                      "; two sinks on one file lose records to each other's rotation");
    }
  }
  // A broker keeps one connection per client id and drops the older each
  // time the other connects: two users of one id would take turns forever.
  void ClaimClientId(const Item& item, const std::string& id, const std::string& url,
                     const std::string& user) {
    // One broker: the url without its scheme (tcp:// and mqtt:// are one port).
    const size_t scheme = url.find("://");
    const std::string broker = scheme == std::string::npos ? url : url.substr(scheme + 3);
    auto [it, fresh] = client_ids_.emplace(broker + '\n' + id, user);
    if (!fresh) {
      Error(item, "client id " + Quoted(id) + " is already used by " + it->second +
                      "; the broker would drop one connection each time the other connects");
    }
  }

  std::string_view text_;
  std::string file_;
  const LoadOptions& options_;
  Config config_;
  std::vector<Diagnostic> diagnostics_;
  std::set<std::string> secret_values_;

  bool agent_id_set_ = false;
  std::map<std::string, std::string> file_paths_;  // file sinks' paths, by user
  // Client ids given in the file, per broker, and who uses each.
  std::map<std::string, std::string> client_ids_;
  std::vector<bool> source_client_id_set_;
  std::vector<bool> sink_client_id_set_;
  std::vector<PipelineRefs> pipeline_refs_;  // parallel to config_.pipelines
  // Every name declared, valid or not, so that one bad entry does not make
  // each reference to it an error too. Empty optional: the section is unusable.
  std::optional<std::vector<std::pair<std::string, Position>>> source_names_;
  std::optional<std::vector<std::pair<std::string, Position>>> pipeline_names_;
  std::optional<std::vector<std::pair<std::string, Position>>> sink_names_;
};

void Checker::RedactSecrets() {
  for (Diagnostic& d : diagnostics_) {
    for (const std::string& secret : secret_values_) {
      if (secret.size() < 4) continue;
      for (size_t at = d.message.find(secret); at != std::string::npos;
           at = d.message.find(secret, at)) {
        d.message.replace(at, secret.size(), "<secret>");
      }
    }
  }
}

Position Checker::ExpressionPos(const Item& item) const {
  Position pos = item.pos;
  const YAML::Mark mark = item.node.Mark();
  if (mark.is_null() || mark.pos < 0 || static_cast<size_t>(mark.pos) >= text_.size()) return pos;
  const char c = text_[static_cast<size_t>(mark.pos)];
  if (c == '"' || c == '\'') {
    pos.column += 1;
  } else if (c == '|' || c == '>') {
    // The text starts on the first non-blank line after the indicator.
    size_t i = text_.find('\n', static_cast<size_t>(mark.pos));
    int line = pos.line;
    while (i != std::string_view::npos) {
      ++line;
      const size_t start = i + 1;
      size_t j = start;
      while (j < text_.size() && (text_[j] == ' ' || text_[j] == '\t')) ++j;
      if (j < text_.size() && text_[j] != '\n' && text_[j] != '\r') {
        return Position{file_, line, static_cast<int>(j - start) + 1};
      }
      i = text_.find('\n', start);
    }
  }
  return pos;
}

std::optional<MapView> Checker::AsMap(const Item& item, std::string_view expected,
                                      const KeyList& allowed) {
  if (!item.node.IsMap()) {
    Error(item, "expected " + std::string(expected) + "; got " + Describe(item.node));
    return std::nullopt;
  }
  MapView view{item.path, item.pos, {}, {}};
  for (auto it = item.node.begin(); it != item.node.end(); ++it) {
    const YAML::Node key = it->first;
    const Position key_pos = PosOf(key, item.pos);
    if (!key.IsScalar()) {
      Error(key_pos, item.path, "expected a key name; got " + Describe(key));
      continue;
    }
    const std::string name = key.Scalar();
    if (const Entry* first = view.Find(name)) {
      Error(key_pos, item.path,
            "duplicate key " + Quoted(name) + "; expected each key once (first at line " +
                std::to_string(first->key_pos.line) + ", column " +
                std::to_string(first->key_pos.column) + ")");
      continue;
    }
    if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      const std::string suggestion = Suggest(name, allowed);
      Error(key_pos, item.path,
            "unknown key " + Quoted(name) +
                (suggestion.empty() ? "; expected one of: " + JoinComma(allowed)
                                    : " (did you mean '" + suggestion + "'?)"));
      continue;
    }
    const YAML::Node value = it->second;
    view.index.emplace(name, view.entries.size());
    view.entries.push_back(Entry{
        name, key_pos, Item{value, Child(item.path, name), PosOf(value, key_pos, key.Mark().pos)}});
  }
  return view;
}

// For maps whose valid keys depend on a `type` read from the same map.
void Checker::CheckKeysApply(const MapView& map, const KeyList& allowed, const std::string& what) {
  for (const Entry& e : map.entries) {
    if (std::find(allowed.begin(), allowed.end(), e.key) == allowed.end()) {
      Error(e.key_pos, map.path,
            "key " + Quoted(e.key) + " does not apply to " + what +
                "; expected one of: " + JoinComma(allowed));
    }
  }
}

bool Checker::Require(const MapView& map, std::string_view key, std::string_view expected) {
  if (map.Find(key) != nullptr) return true;
  Error(map.pos, map.path,
        "missing required key '" + std::string(key) + "'; expected " + std::string(expected));
  return false;
}

std::optional<std::vector<Item>> Checker::AsList(const Item& item, std::string_view expected,
                                                 bool non_empty) {
  if (!item.node.IsSequence() || (non_empty && item.node.size() == 0)) {
    Error(item, "expected " + std::string(expected) + "; got " + Describe(item.node));
    return std::nullopt;
  }
  std::vector<Item> items;
  size_t index = 0;
  for (auto it = item.node.begin(); it != item.node.end(); ++it, ++index) {
    const YAML::Node element = *it;
    items.push_back(Item{element, item.path + "[" + std::to_string(index) + "]",
                         PosOf(element, item.pos, item.node.Mark().pos)});
  }
  return items;
}

std::optional<Text> Checker::AsText(const Item& item, std::string_view expected) {
  if (!item.node.IsScalar()) {
    Error(item, "expected " + std::string(expected) + "; got " + Describe(item.node));
    return std::nullopt;
  }
  const std::string& raw = item.node.Scalar();
  StatusOr<internal::Expanded> expanded = internal::ExpandSecretRefs(raw, options_.secrets);
  if (!expanded.ok()) {
    Error(item, std::string(expanded.status().message()));
    return std::nullopt;
  }
  if (expanded->had_reference) RememberSecret(expanded->value);
  return Text{std::move(expanded->value), raw, item.pos, item.node.Tag() != "!",
              expanded->had_reference};
}

std::optional<Text> Checker::AsNonEmpty(const Item& item, std::string_view expected) {
  std::optional<Text> t = AsText(item, expected);
  if (t && t->value.empty()) {
    Error(item, "expected " + std::string(expected) + "; got an empty string");
    return std::nullopt;
  }
  return t;
}

std::optional<Secret> Checker::AsSecret(const Item& item) {
  std::optional<Text> t = AsText(item, "a string");
  if (!t) return std::nullopt;
  return Secret(std::move(t->value));
}

std::optional<std::string> Checker::AsChoice(const Item& item, const KeyList& choices) {
  std::optional<Text> t = AsText(item, JoinOr(choices));
  if (!t) return std::nullopt;
  if (std::find(choices.begin(), choices.end(), t->value) != choices.end()) return t->value;
  Error(item, "expected " + JoinOr(choices) + "; got " + Got(*t) + DidYouMean(t->shown, choices));
  return std::nullopt;
}

std::optional<int64_t> Checker::AsInt(const Item& item, int64_t min, int64_t max,
                                      std::string_view expected) {
  std::optional<Text> t = AsText(item, expected);
  if (!t) return std::nullopt;
  int64_t value = 0;
  const std::string& s = t->value;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty() || value < min || value > max) {
    Error(item, "expected " + std::string(expected) + "; got " + Got(*t));
    return std::nullopt;
  }
  return value;
}

std::optional<bool> Checker::AsBool(const Item& item) {
  std::optional<Text> t = AsText(item, "true or false");
  if (!t) return std::nullopt;
  if (t->value == "true" || t->value == "True" || t->value == "TRUE") return true;
  if (t->value == "false" || t->value == "False" || t->value == "FALSE") return false;
  Error(item, "expected true or false; got " + Got(*t));
  return std::nullopt;
}

std::optional<Millis> Checker::AsDuration(const Item& item, bool positive) {
  std::optional<Text> t = AsText(item, "a duration such as 500ms, 10s, 1m, 2h, 1d");
  if (!t) return std::nullopt;
  StatusOr<Millis> d = internal::ParseDurationShown(t->value, t->shown);
  if (!d.ok()) {
    Error(item, std::string(d.status().message()));
    return std::nullopt;
  }
  if (positive && d->count() == 0) {
    Error(item, "expected a duration greater than zero such as 1s; got " + Quoted(t->shown));
    return std::nullopt;
  }
  return *d;
}

std::optional<uint64_t> Checker::AsSize(const Item& item, bool positive) {
  std::optional<Text> t = AsText(item, "a size such as 512MiB, 64MB or 4096");
  if (!t) return std::nullopt;
  StatusOr<uint64_t> size = internal::ParseSizeShown(t->value, t->shown);
  if (!size.ok()) {
    Error(item, std::string(size.status().message()));
    return std::nullopt;
  }
  if (positive && *size == 0) {
    Error(item, "expected a size greater than zero such as 64MiB; got " + Got(*t));
    return std::nullopt;
  }
  return *size;
}

std::optional<Expression> Checker::AsExpression(const Item& item) {
  std::optional<Text> t = AsNonEmpty(item, "an expression such as \"temp > 80\"");
  if (!t) return std::nullopt;
  return Expression{std::move(t->value), ExpressionPos(item)};
}

std::optional<std::vector<std::string>> Checker::AsFieldList(const Item& item) {
  std::optional<std::vector<Item>> items =
      AsList(item, "a list of field names such as [site, device]", false);
  if (!items) return std::nullopt;
  std::vector<std::string> fields;
  std::set<std::string, std::less<>> seen;
  bool ok = true;
  for (const Item& element : *items) {
    std::optional<Text> t = AsText(element, kFieldExpected);
    if (!t) {
      ok = false;
      continue;
    }
    if (!IsFieldName(t->value)) {
      Error(element, "expected " + std::string(kFieldExpected) + "; got " + Got(*t));
      ok = false;
      continue;
    }
    if (!seen.insert(t->value).second) {
      Error(element, "field " + Quoted(t->shown) + " is listed twice; expected each field once");
      ok = false;
      continue;
    }
    fields.push_back(std::move(t->value));
  }
  if (!ok) return std::nullopt;
  return fields;
}

std::optional<std::string> Checker::AsTemplate(const Item& item, bool allow_empty) {
  constexpr std::string_view kExpected =
      "a name, optionally with {field} placeholders, such as telemetry or {site}.readings";
  std::optional<Text> t = allow_empty ? AsText(item, kExpected) : AsNonEmpty(item, kExpected);
  if (!t) return std::nullopt;
  const std::string problem = TemplateProblem(t->value);
  if (!problem.empty()) {
    Error(item, "expected " + std::string(kExpected) + "; got " + Got(*t) + Detail(*t, problem));
    return std::nullopt;
  }
  return std::move(t->value);
}

std::optional<std::map<std::string, Secret>> Checker::AsSecretMap(const Item& item,
                                                                  bool header_names) {
  std::optional<MapView> m = AsMap(item, "a map of names to strings", {});
  if (!m) return std::nullopt;
  std::map<std::string, Secret> out;
  bool ok = true;
  for (const Entry& e : m->entries) {
    if (header_names ? !IsHeaderName(e.key) : e.key.empty()) {
      Error(e.key_pos, m->path,
            std::string(header_names ? "expected a header name such as Authorization"
                                     : "expected a property name such as security.protocol") +
                "; got " + Quoted(e.key));
      ok = false;
      continue;
    }
    std::optional<Secret> value = AsSecret(e.value);
    if (!value) {
      ok = false;
      continue;
    }
    out.emplace(e.key, std::move(*value));
  }
  if (!ok) return std::nullopt;
  return out;
}

std::optional<int> Checker::AsQos(const Item& item) {
  std::optional<std::string> qos = AsChoice(item, {"0", "1", "2"});
  if (!qos) return std::nullopt;
  return (*qos)[0] - '0';
}

bool Checker::ReadNamed(const Item& item, std::string_view singular,
                        std::vector<std::pair<std::string, Position>>* names,
                        const std::function<void(const Entry&)>& read_one) {
  const std::string expected = "a map of " + std::string(singular) + " names to settings";
  std::optional<MapView> m = AsMap(item, expected, {});
  if (!m) return false;
  if (m->entries.empty()) {
    if (item.node.size() == 0) {
      Error(item, "expected at least one " + std::string(singular) + "; got an empty map");
    }
    return false;  // nothing to refer to: references to it would only repeat this error
  }
  for (const Entry& e : m->entries) {
    names->emplace_back(e.key, e.key_pos);
    if (!IsName(e.key)) {
      Error(e.key_pos, m->path,
            "invalid " + std::string(singular) + " name " + Quoted(e.key) +
                "; expected letters, digits, '_' or '-'");
    }
    read_one(e);
  }
  return true;
}

void Checker::Run(const YAML::Node& root) {
  const Item root_item{root, "", PosOf(root, Position{file_, 1, 1})};
  std::optional<MapView> m = AsMap(root_item, kRootExpected, kRootKeys);
  if (!m) return;
  if (const Entry* e = m->Find("agent")) ReadAgent(e->value);
  if (Require(*m, "sources",
              "at least one source such as {plant: {url: tcp://..., topics: [...]}}")) {
    std::vector<std::pair<std::string, Position>> names;
    if (ReadNamed(m->Find("sources")->value, "source", &names,
                  [this](const Entry& e) { ReadSource(e); })) {
      source_names_ = std::move(names);
    }
  }
  if (Require(*m, "pipelines",
              "at least one pipeline such as {raw: {from: plant, to: [console]}}")) {
    std::vector<std::pair<std::string, Position>> names;
    if (ReadNamed(m->Find("pipelines")->value, "pipeline", &names,
                  [this](const Entry& e) { ReadPipeline(e); })) {
      pipeline_names_ = std::move(names);
    }
  }
  if (Require(*m, "sinks", "at least one sink such as {console: {type: stdout}}")) {
    std::vector<std::pair<std::string, Position>> names;
    if (ReadNamed(m->Find("sinks")->value, "sink", &names,
                  [this](const Entry& e) { ReadSink(e); })) {
      sink_names_ = std::move(names);
    }
  }
  CheckReferences();
  ApplyDefaults();
}

void Checker::ReadAgent(const Item& item) {
  std::optional<MapView> m = AsMap(item, "a map of agent settings", kAgentKeys);
  if (!m) return;
  AgentConfig& agent = config_.agent;
  if (const Entry* e = m->Find("id")) {
    constexpr std::string_view kExpected =
        "an id of letters, digits, '_', '-' or '.' such as gw-042";
    if (std::optional<Text> t = AsNonEmpty(e->value, kExpected)) {
      if (IsFieldName(t->value)) {
        agent.id = t->value;
        agent_id_set_ = true;
      } else {
        Error(e->value, "expected " + std::string(kExpected) + "; got " + Got(*t));
      }
    }
  }
  if (const Entry* e = m->Find("data_dir")) {
    if (auto v = AsString(e->value, "a directory path such as /var/lib/sluice"))
      agent.data_dir = *v;
  }
  if (const Entry* e = m->Find("http")) {
    constexpr std::string_view kExpected = "host:port such as 127.0.0.1:9464, or off";
    if (std::optional<Text> t = AsNonEmpty(e->value, kExpected)) {
      if (t->value == "off" || ParseHostPort(t->value)) {
        agent.http = t->value;
      } else {
        Error(e->value, "expected " + std::string(kExpected) + "; got " + Got(*t));
      }
    }
  }
  if (const Entry* e = m->Find("log")) {
    if (std::optional<MapView> log =
            AsMap(e->value, "a map such as {level: info, format: text}", kLogKeys)) {
      if (const Entry* l = log->Find("level")) {
        if (auto v = AsChoice(l->value, {"debug", "info", "warn", "error"})) agent.log.level = *v;
      }
      if (const Entry* f = log->Find("format")) {
        if (auto v = AsChoice(f->value, {"text", "json"})) agent.log.format = *v;
      }
    }
  }
  if (const Entry* e = m->Find("shutdown_grace")) {
    if (auto v = AsDuration(e->value, false)) agent.shutdown_grace = *v;
  }
}

std::optional<TlsConfig> Checker::ReadTls(const Item& item) {
  std::optional<MapView> m =
      AsMap(item, "a map such as {ca: /etc/ssl/ca.pem, cert: ..., key: ...}", kTlsKeys);
  if (!m) return std::nullopt;
  TlsConfig tls;
  bool ok = true;
  for (auto [key, field] :
       {std::pair{"ca", &tls.ca}, std::pair{"cert", &tls.cert}, std::pair{"key", &tls.key}}) {
    if (const Entry* e = m->Find(key)) {
      if (auto v = AsString(e->value, "a file path")) {
        *field = *v;
      } else {
        ok = false;
      }
    }
  }
  if ((m->Find("cert") != nullptr) != (m->Find("key") != nullptr)) {
    Error(m->pos, m->path,
          "'cert' and 'key' go together; expected both (a client certificate and its key) or "
          "neither");
    ok = false;
  }
  if (!ok) return std::nullopt;
  return tls;
}

void Checker::ReadSource(const Entry& entry) {
  std::optional<MapView> m = AsMap(entry.value, "a map of source settings", kSourceKeys);
  if (!m) return;
  SourceConfig s;
  s.name = entry.key;
  s.pos = entry.key_pos;
  if (const Entry* e = m->Find("type")) {
    if (auto v = AsChoice(e->value, {"mqtt"})) s.type = *v;
  }
  std::optional<Text> url;
  if (Require(*m, "url", "a broker URL such as tcp://127.0.0.1:1883")) {
    const Entry* e = m->Find("url");
    url = AsNonEmpty(e->value, kMqttUrlExpected);
    if (url && MqttUrlScheme(url->value).empty()) {
      Error(e->value, std::string(kMqttUrlExpected) + "; got " + Got(*url));
      url.reset();
    }
    if (url) s.url = url->value;
  }
  if (const Entry* e = m->Find("tls")) {
    s.tls = ReadTls(e->value);
    const std::string scheme = url ? MqttUrlScheme(url->value) : "";
    if (url && scheme != "ssl" && scheme != "mqtts") {
      Error(e->key_pos, m->path,
            "'tls' needs an ssl:// or mqtts:// url; got url " + Quoted(url->shown));
    }
  }
  if (const Entry* e = m->Find("client_id")) {
    if (auto v = AsString(e->value, "an MQTT client id")) {
      s.client_id = *v;
      ClaimClientId(e->value, *v, s.url, "source '" + s.name + "'");
    }
  }
  source_client_id_set_.push_back(!s.client_id.empty());
  if (Require(*m, "topics", "a list of topic filters such as [\"sensors/+/+\"]")) {
    if (auto items = AsList(m->Find("topics")->value,
                            "a non-empty list of topic filters such as [\"sensors/+/+\"]", true)) {
      for (const Item& item : *items) {
        constexpr std::string_view kExpected =
            "an MQTT topic filter such as sensors/+/temp or sensors/#";
        std::optional<Text> t = AsText(item, kExpected);
        if (!t) continue;
        const std::string problem = TopicFilterProblem(t->value);
        if (!problem.empty()) {
          Error(item,
                "expected " + std::string(kExpected) + "; got " + Got(*t) + Detail(*t, problem));
          continue;
        }
        s.topics.push_back(t->value);
      }
    }
  }
  if (const Entry* e = m->Find("qos")) {
    if (auto v = AsQos(e->value)) s.qos = *v;
  }
  if (const Entry* e = m->Find("session")) {
    if (auto v = AsChoice(e->value, {"persistent", "clean"})) {
      s.persistent_session = *v == "persistent";
    }
  }
  if (const Entry* e = m->Find("username")) {
    if (auto v = AsSecret(e->value)) s.username = *v;
  }
  if (const Entry* e = m->Find("password")) {
    if (auto v = AsSecret(e->value)) s.password = *v;
  }
  if (const Entry* e = m->Find("topic_fields")) {
    constexpr std::string_view kExpected =
        "a pattern such as sensors/{site}/{device} of literal levels, {name} captures, + and "
        "a final #";
    if (std::optional<Text> t = AsText(e->value, kExpected)) {
      const std::string problem = TopicPatternProblem(t->value);
      if (problem.empty()) {
        s.topic_fields = t->value;
      } else {
        Error(e->value,
              "expected " + std::string(kExpected) + "; got " + Got(*t) + Detail(*t, problem));
      }
    }
  }
  if (const Entry* e = m->Find("format")) {
    if (auto v = AsChoice(e->value, {"json"})) s.format = *v;
  }
  if (const Entry* e = m->Find("time")) {
    if (std::optional<MapView> tm =
            AsMap(e->value, "a map such as {field: ts, unit: ms}", kTimeKeys)) {
      TimeConfig time;
      bool ok = true;
      if (Require(*tm, "field", "the payload field holding the event time, such as ts")) {
        const Entry* f = tm->Find("field");
        std::optional<Text> t = AsNonEmpty(f->value, kFieldExpected);
        if (t && IsFieldName(t->value)) {
          time.field = t->value;
        } else {
          if (t) Error(f->value, "expected " + std::string(kFieldExpected) + "; got " + Got(*t));
          ok = false;
        }
      } else {
        ok = false;
      }
      if (const Entry* u = tm->Find("unit")) {
        static const std::map<std::string, TimeUnit, std::less<>> kUnits = {
            {"s", TimeUnit::kSeconds},
            {"ms", TimeUnit::kMillis},
            {"us", TimeUnit::kMicros},
            {"ns", TimeUnit::kNanos},
            {"rfc3339", TimeUnit::kRfc3339}};
        if (auto v = AsChoice(u->value, {"s", "ms", "us", "ns", "rfc3339"})) {
          time.unit = kUnits.find(*v)->second;
        } else {
          ok = false;
        }
      }
      if (const Entry* a = tm->Find("max_ahead")) {
        if (auto v = AsDuration(a->value, true)) {
          time.max_ahead = *v;
        } else {
          ok = false;
        }
      }
      if (ok) s.time = time;
    }
  }
  config_.sources.push_back(std::move(s));
}

void Checker::ReadPipeline(const Entry& entry) {
  std::optional<MapView> m = AsMap(entry.value, "a map of pipeline settings", kPipelineKeys);
  if (!m) return;
  PipelineConfig p;
  PipelineRefs refs;
  p.name = entry.key;
  p.pos = entry.key_pos;
  if (Require(*m, "from", "the source or pipeline to read from")) {
    const Entry* e = m->Find("from");
    if (std::optional<Text> t = AsNonEmpty(e->value, "the name of a source or pipeline")) {
      p.from = t->value;
      p.from_pos = t->pos;
      refs.from_shown = t->shown;
    }
  }
  if (const Entry* e = m->Find("where")) p.where = AsExpression(e->value);
  const Entry* window = m->Find("window");
  const Entry* aggregate = m->Find("aggregate");
  const Entry* alert = m->Find("alert");
  const Entry* group_by = m->Find("group_by");
  if (window) p.window = ReadWindow(window->value);
  if (group_by) {
    if (auto v = AsFieldList(group_by->value)) p.group_by = *v;
  }
  if (aggregate) ReadAggregates(aggregate->value, &p);
  if (alert) p.alert = ReadAlert(alert->value);
  if (Require(*m, "to", "a list of sink names such as [console]")) {
    const Item& item = m->Find("to")->value;
    if (auto items = AsList(item, "a non-empty list of sink names such as [console]", true)) {
      for (const Item& element : *items) {
        if (std::optional<Text> t = AsNonEmpty(element, "a sink name")) {
          p.to.push_back(t->value);
          p.to_pos.push_back(t->pos);
          refs.to_shown.push_back(t->shown);
        }
      }
    }
  }
  // Which operators may be combined.
  if (window && !aggregate) {
    Error(window->key_pos, m->path,
          "'window' needs 'aggregate'; expected an aggregate map such as {avg_temp: avg(temp)}");
  }
  if (aggregate && !window) {
    Error(aggregate->key_pos, m->path,
          "'aggregate' needs 'window'; expected a window such as {type: tumbling, size: 1m}");
  }
  if (alert && window) {
    Error(alert->key_pos, m->path,
          "a pipeline cannot have both 'alert' and 'window'; expected one of them (to alert on "
          "aggregates, add a pipeline that reads from this one)");
  }
  if (group_by && !window) {
    Error(group_by->key_pos, m->path,
          "'group_by' needs 'window'; expected a window such as {type: tumbling, size: 1m}");
  }
  config_.pipelines.push_back(std::move(p));
  pipeline_refs_.push_back(std::move(refs));
}

std::optional<WindowConfig> Checker::ReadWindow(const Item& item) {
  std::optional<MapView> m = AsMap(item, "a map such as {type: tumbling, size: 1m}", kWindowKeys);
  if (!m) return std::nullopt;
  WindowConfig w;
  w.pos = m->pos;
  if (!Require(*m, "type", "tumbling, hopping or session")) return std::nullopt;
  std::optional<std::string> type =
      AsChoice(m->Find("type")->value, {"tumbling", "hopping", "session"});
  if (!type) return std::nullopt;
  CheckKeysApply(*m, kWindowKeysByType.at(*type), "a " + *type + " window");
  bool ok = true;
  auto read = [&](std::string_view key, Millis* out, std::string_view expected) {
    if (!Require(*m, key, expected)) {
      ok = false;
      return;
    }
    if (auto v = AsDuration(m->Find(key)->value, true)) {
      *out = *v;
    } else {
      ok = false;
    }
  };
  if (*type == "tumbling") {
    w.type = WindowType::kTumbling;
    read("size", &w.size, "the window length, such as 1m");
  } else if (*type == "hopping") {
    w.type = WindowType::kHopping;
    read("size", &w.size, "the window length, such as 5m");
    read("step", &w.step, "how far each window starts after the previous one, such as 1m");
    if (ok && w.step > w.size) {
      const Item& step = m->Find("step")->value;
      Error(step, "expected a step no longer than the window size (" +
                      m->Find("size")->value.node.Scalar() + "); got " +
                      Quoted(step.node.Scalar()));
      ok = false;
    } else if (ok && w.size.count() / std::max<int64_t>(1, w.step.count()) > kMaxHoppingOverlap) {
      // Each reading is added to size/step windows: "1ms" for "1m" would make
      // every reading cost millions of updates and stall the pipeline.
      const Item& step = m->Find("step")->value;
      Error(step, "expected a step of at least 1/" + std::to_string(kMaxHoppingOverlap) +
                      " of the window size (" + m->Find("size")->value.node.Scalar() +
                      "): each reading counts in size/step windows; got " +
                      Quoted(step.node.Scalar()));
      ok = false;
    }
  } else {
    w.type = WindowType::kSession;
    read("gap", &w.gap, "the idle time that ends a session, such as 30s");
  }
  if (const Entry* e = m->Find("lateness")) {
    if (auto v = AsDuration(e->value, false)) {
      w.lateness = *v;
    } else {
      ok = false;
    }
  }
  if (const Entry* e = m->Find("idle")) {
    if (auto v = AsDuration(e->value, false)) {
      w.idle = *v;
    } else {
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return w;
}

void Checker::ReadAggregates(const Item& item, PipelineConfig* p) {
  std::optional<MapView> m =
      AsMap(item, "a map of names to aggregates such as {avg_temp: avg(temp)}", {});
  if (!m) return;
  if (m->entries.empty() && item.node.size() == 0) {
    Error(item, "expected at least one aggregate such as {readings: count()}; got an empty map");
  }
  for (const Entry& e : m->entries) {
    if (!IsName(e.key)) {
      Error(e.key_pos, m->path,
            "invalid aggregate name " + Quoted(e.key) + "; expected letters, digits, '_' or '-'");
    }
    std::optional<Text> t = AsNonEmpty(e.value, "an aggregate such as avg(temp)");
    if (!t) continue;
    const std::string got = "; got " + Got(*t);
    // fn ( args )
    std::string_view s = Trim(t->value);
    size_t i = 0;
    while (i < s.size() && IsNameChar(s[i])) ++i;
    const std::string function(s.substr(0, i));
    std::string_view rest = Trim(s.substr(i));
    if (function.empty() || rest.size() < 2 || rest.front() != '(' || rest.back() != ')') {
      Error(e.value, std::string(kAggregateExpected) + got);
      continue;
    }
    if (std::find(kAggregateFunctions.begin(), kAggregateFunctions.end(), function) ==
        kAggregateFunctions.end()) {
      Error(e.value, t->secret ? std::string(kAggregateExpected) + got
                               : "unknown aggregate function " + Quoted(function) + "; " +
                                     std::string(kAggregateExpected) + got +
                                     DidYouMean(function, kAggregateFunctions));
      continue;
    }
    std::vector<std::string_view> args;
    const std::string_view inner = Trim(rest.substr(1, rest.size() - 2));
    if (!inner.empty()) {
      size_t start = 0;
      while (true) {
        const size_t comma = inner.find(',', start);
        args.push_back(Trim(inner.substr(
            start, comma == std::string_view::npos ? std::string_view::npos : comma - start)));
        if (comma == std::string_view::npos) break;
        start = comma + 1;
      }
    }
    AggregateConfig a;
    a.name = e.key;
    a.function = function;
    a.pos = t->pos;
    if (function == "count") {
      if (!args.empty()) {
        Error(e.value, "expected count() without arguments" + got);
        continue;
      }
    } else if (function == "percentile") {
      if (args.size() != 2) {
        Error(e.value, "expected percentile(field, q) with a field and a quantile 0 < q < 1" + got);
        continue;
      }
      double q = 0;
      const std::string_view qs = args[1];
      const auto [end, ec] = std::from_chars(qs.data(), qs.data() + qs.size(), q);
      if (qs.empty() || ec != std::errc() || end != qs.data() + qs.size() || !(q > 0 && q < 1)) {
        Error(e.value,
              "expected a quantile between 0 and 1 (exclusive) such as 0.99 in "
              "percentile(field, q)" +
                  got);
        continue;
      }
      a.quantile = q;
    } else {
      if (args.size() != 1) {
        Error(e.value, "expected " + (t->secret ? std::string("fn") : function) +
                           "(field) with exactly one field" + got);
        continue;
      }
      if (function.size() == 3 && function[0] == 'p') {
        a.quantile = (function[1] - '0') * 0.1 + (function[2] - '0') * 0.01;
      }
    }
    if (!args.empty()) {
      if (!IsFieldName(args[0])) {
        Error(e.value, "expected " + std::string(kFieldExpected) + " as the argument of " +
                           (t->secret ? std::string("the function") : function) + got);
        continue;
      }
      a.field = std::string(args[0]);
    }
    p->aggregates.push_back(std::move(a));
  }
}

std::optional<AlertConfig> Checker::ReadAlert(const Item& item) {
  std::optional<MapView> m =
      AsMap(item, "a map such as {when: \"temp > 80\", for: 10s}", kAlertKeys);
  if (!m) return std::nullopt;
  AlertConfig a;
  a.pos = m->pos;
  bool ok = true;
  if (Require(*m, "when", "the condition that fires the alert, such as \"temp > 80\"")) {
    if (auto v = AsExpression(m->Find("when")->value)) {
      a.when = *v;
    } else {
      ok = false;
    }
  } else {
    ok = false;
  }
  if (const Entry* e = m->Find("clear")) {
    a.clear = AsExpression(e->value);
    ok = ok && a.clear.has_value();
  }
  if (const Entry* e = m->Find("for")) {
    if (auto v = AsDuration(e->value, false)) {
      a.for_duration = *v;
    } else {
      ok = false;
    }
  }
  if (const Entry* e = m->Find("renotify")) {
    a.renotify = AsDuration(e->value, true);
    ok = ok && a.renotify.has_value();
  }
  if (const Entry* e = m->Find("severity")) {
    if (auto v = AsString(e->value, "a severity such as warning or critical")) {
      a.severity = *v;
    } else {
      ok = false;
    }
  }
  if (const Entry* e = m->Find("key")) {
    if (auto v = AsFieldList(e->value)) {
      a.key = *v;
    } else {
      ok = false;
    }
  }
  if (const Entry* e = m->Find("labels")) {
    if (std::optional<MapView> labels =
            AsMap(e->value, "a map of label names to values such as {team: ops}", {})) {
      for (const Entry& l : labels->entries) {
        if (!IsFieldName(l.key)) {
          Error(l.key_pos, labels->path,
                "invalid label name " + Quoted(l.key) +
                    "; expected letters, digits, '_', '-' or '.'");
          ok = false;
          continue;
        }
        if (std::optional<Text> t = AsText(l.value, "a label value")) {
          a.labels.emplace(l.key, t->value);
        } else {
          ok = false;
        }
      }
    } else {
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return a;
}

void Checker::ReadBuffer(const Item& item, BufferConfig* b) {
  std::optional<MapView> m =
      AsMap(item, "a map such as {max_size: 512MiB, overflow: drop_oldest}", kBufferKeys);
  if (!m) return;
  if (const Entry* e = m->Find("max_size")) {
    if (auto v = AsSize(e->value, true)) b->max_size = *v;
  }
  if (const Entry* e = m->Find("overflow")) {
    if (auto v = AsChoice(e->value, {"drop_oldest", "drop_newest", "block"})) {
      b->overflow = *v == "drop_oldest"   ? Overflow::kDropOldest
                    : *v == "drop_newest" ? Overflow::kDropNewest
                                          : Overflow::kBlock;
    }
  }
  if (const Entry* e = m->Find("sync")) {
    if (auto v = AsChoice(e->value, {"normal", "full"})) {
      b->sync = *v == "full" ? SyncLevel::kFull : SyncLevel::kNormal;
    }
  }
}

void Checker::ReadSink(const Entry& entry) {
  std::optional<MapView> m = AsMap(entry.value, "a map of sink settings", kSinkKeys);
  if (!m) return;
  SinkConfig sink;
  sink.name = entry.key;
  sink.pos = entry.key_pos;
  std::optional<std::string> type;
  if (Require(*m, "type", "one of stdout, file, kafka, http or mqtt")) {
    type = AsChoice(m->Find("type")->value, kSinkTypes);
  }
  if (type) {
    sink.type = *type;
    CheckKeysApply(*m, kSinkKeysByType.at(*type), "a " + *type + " sink");
  }
  if (const Entry* e = m->Find("buffer")) ReadBuffer(e->value, &sink.buffer);
  bool client_id_set = false;
  if (type == "file") {
    sink.spec = ReadFileSink(*m);
  } else if (type == "kafka") {
    sink.spec = ReadKafkaSink(*m);
  } else if (type == "http") {
    sink.spec = ReadHttpSink(*m);
  } else if (type == "mqtt") {
    MqttSinkConfig mqtt = ReadMqttSink(*m);
    client_id_set = !mqtt.client_id.empty();
    sink.spec = std::move(mqtt);
  }
  sink_client_id_set_.push_back(client_id_set);
  config_.sinks.push_back(std::move(sink));
}

FileSinkConfig Checker::ReadFileSink(const MapView& m) {
  FileSinkConfig f;
  if (Require(m, "path", "the file to append records to, such as /var/lib/sluice/raw.jsonl")) {
    const Item& item = m.Find("path")->value;
    if (auto v = AsString(item, "a file path")) {
      f.path = *v;
      ClaimFilePath(item, *v, m.path);
    }
  }
  if (const Entry* e = m.Find("rotate")) {
    if (std::optional<MapView> r =
            AsMap(e->value, "a map such as {max_size: 64MiB, keep: 5}", kRotateKeys)) {
      if (Require(*r, "max_size", "the size at which the file is rotated, such as 64MiB")) {
        if (auto v = AsSize(r->Find("max_size")->value, true)) f.rotate_max_size = *v;
      }
      if (const Entry* k = r->Find("keep")) {
        if (auto v = AsInt(k->value, 1, 10000, "a number of files from 1 to 10000")) {
          f.rotate_keep = static_cast<int>(*v);
        }
      }
    }
  }
  return f;
}

KafkaSinkConfig Checker::ReadKafkaSink(const MapView& m) {
  KafkaSinkConfig k;
  if (Require(m, "brokers", "a list of brokers such as [\"kafka-1:9092\"]")) {
    if (auto items = AsList(m.Find("brokers")->value,
                            "a non-empty list of brokers such as [\"kafka-1:9092\"]", true)) {
      for (const Item& item : *items) {
        constexpr std::string_view kExpected = "a broker address host:port such as kafka-1:9092";
        std::optional<Text> t = AsText(item, kExpected);
        if (!t) continue;
        if (!ParseHostPort(t->value)) {
          Error(item, "expected " + std::string(kExpected) + "; got " + Got(*t));
          continue;
        }
        k.brokers.push_back(t->value);
      }
    }
  }
  if (Require(m, "topic", "the Kafka topic, such as telemetry")) {
    if (auto v = AsTemplate(m.Find("topic")->value, false)) k.topic = *v;
  }
  if (const Entry* e = m.Find("key")) {
    if (auto v = AsTemplate(e->value, true)) k.key = *v;
  }
  if (const Entry* e = m.Find("compression")) {
    if (auto v = AsChoice(e->value, {"none", "gzip", "snappy", "lz4", "zstd"})) k.compression = *v;
  }
  if (const Entry* e = m.Find("tls")) k.tls = ReadTls(e->value);
  if (const Entry* e = m.Find("sasl")) k.sasl = ReadSasl(e->value);
  if (const Entry* e = m.Find("linger")) {
    if (auto v = AsDuration(e->value, false)) k.linger = *v;
  }
  if (const Entry* e = m.Find("batch_size")) {
    if (auto v = AsSize(e->value, true)) k.batch_size = *v;
  }
  if (const Entry* e = m.Find("timeout")) {
    if (auto v = AsDuration(e->value, true)) k.timeout = *v;
  }
  if (const Entry* e = m.Find("properties")) {
    if (auto v = AsSecretMap(e->value, false)) {
      k.properties = std::move(*v);
      CheckKafkaProperties(e->value);
    }
  }
  return k;
}

std::optional<SaslConfig> Checker::ReadSasl(const Item& item) {
  std::optional<MapView> m = AsMap(
      item, "a map such as {mechanism: SCRAM-SHA-512, username: ..., password: ...}", kSaslKeys);
  if (!m) return std::nullopt;
  SaslConfig sasl;
  bool ok = true;
  if (Require(*m, "mechanism", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")) {
    if (auto v = AsChoice(m->Find("mechanism")->value, {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"})) {
      sasl.mechanism = *v;
    } else {
      ok = false;
    }
  } else {
    ok = false;
  }
  for (auto [key, field] :
       {std::pair{"username", &sasl.username}, std::pair{"password", &sasl.password}}) {
    if (!Require(*m, key, "the SASL " + std::string(key) + ", such as ${env:KAFKA_USER}")) {
      ok = false;
    } else if (auto v = AsSecret(m->Find(key)->value)) {
      *field = *v;
    } else {
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return sasl;
}

// The sink promises at-least-once without duplicates from the producer's own
// retries: a property may not turn the idempotent producer or acks=all off,
// under any of librdkafka's names, nor set what an idempotent producer
// refuses at start (or, for a transactional id, at every produce).
void Checker::CheckKafkaProperties(const Item& item) {
  std::optional<MapView> m = AsMap(item, "a map of names to strings", {});
  if (!m) return;
  auto check = [&](std::initializer_list<const char*> names, const char* hint,
                   const std::function<bool(const std::string&)>& good, const std::string& expected) {
    for (const char* name : names) {
      const Entry* e = m->Find(name);
      if (e == nullptr) continue;
      if (std::optional<Text> t = AsText(e->value, hint)) {
        if (!good(t->value)) Error(e->value, "expected " + expected + "; got " + Got(*t));
      }
    }
  };
  auto number = [](const std::string& v, int64_t low, int64_t high) {
    int64_t n = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    return ec == std::errc() && end == v.data() + v.size() && n >= low && n <= high;
  };
  check({"enable.idempotence"}, "true",
        [](const std::string& v) { return v == "true" || v == "True" || v == "1"; },
        "true (the kafka sink always runs an idempotent producer)");
  check({"acks", "request.required.acks", "topic.request.required.acks"}, "all",
        [](const std::string& v) { return v == "all" || v == "-1"; },
        "all or -1 (the kafka sink waits for every in-sync replica)");
  check({"max.in.flight.requests.per.connection", "max.in.flight"}, "5",
        [&](const std::string& v) { return number(v, 1, 5); },
        "1 to 5 (an idempotent producer keeps at most 5 requests in flight)");
  check({"retries", "message.send.max.retries"}, "2147483647",
        [&](const std::string& v) { return number(v, 1, 2147483647); },
        "at least 1 (an idempotent producer must be allowed to retry)");
  if (const Entry* e = m->Find("transactional.id")) {
    Error(e->key_pos, m->path + ".transactional.id",
          "the kafka sink does not use transactions; remove 'transactional.id'");
  }
}

HttpSinkConfig Checker::ReadHttpSink(const MapView& m) {
  HttpSinkConfig h;
  std::optional<Text> url;
  if (Require(m, "url", "the endpoint, such as https://ops.example.com/alerts")) {
    constexpr std::string_view kExpected =
        "an http:// or https:// URL such as https://ops.example.com/alerts";
    const Item& item = m.Find("url")->value;
    url = AsNonEmpty(item, kExpected);
    if (url && HttpUrlScheme(url->value).empty()) {
      Error(item, "expected " + std::string(kExpected) + "; got " + Got(*url));
      url.reset();
    }
    if (url) h.url = url->value;
  }
  if (const Entry* e = m.Find("method")) {
    if (auto v = AsChoice(e->value, {"POST", "PUT"})) h.method = *v;
  }
  if (const Entry* e = m.Find("batch")) {
    if (std::optional<MapView> b =
            AsMap(e->value, "a map such as {max_records: 500, max_delay: 1s}", kBatchKeys)) {
      if (const Entry* r = b->Find("max_records")) {
        // A batch is read from the outbox in one go of at most 4096 records
        // and 8 MiB (the store's limits): more would be silently less.
        if (auto v = AsInt(r->value, 1, 4096, "a number of records from 1 to 4096")) {
          h.max_records = static_cast<int>(*v);
        }
      }
      if (const Entry* r = b->Find("max_bytes")) {
        if (auto v = AsSize(r->value, true)) {
          if (*v > (8ull << 20)) {
            Error(r->value, "expected at most 8MiB; got " + Quoted(r->value.node.Scalar()));
          } else {
            h.max_bytes = *v;
          }
        }
      }
      if (const Entry* r = b->Find("max_delay")) {
        if (auto v = AsDuration(r->value, false)) h.max_delay = *v;
      }
    }
  }
  if (const Entry* e = m.Find("gzip")) {
    if (auto v = AsBool(e->value)) h.gzip = *v;
  }
  if (const Entry* e = m.Find("timeout")) {
    if (auto v = AsDuration(e->value, true)) h.timeout = *v;
  }
  if (const Entry* e = m.Find("headers")) {
    if (auto v = AsSecretMap(e->value, true)) h.headers = std::move(*v);
  }
  if (const Entry* e = m.Find("tls")) {
    h.tls = ReadTls(e->value);
    if (url && HttpUrlScheme(url->value) != "https") {
      Error(e->key_pos, m.path, "'tls' needs an https:// url; got url " + Quoted(url->shown));
    }
  }
  return h;
}

MqttSinkConfig Checker::ReadMqttSink(const MapView& m) {
  MqttSinkConfig q;
  std::optional<Text> url;
  if (Require(m, "url", "a broker URL such as tcp://127.0.0.1:1883")) {
    const Item& item = m.Find("url")->value;
    url = AsNonEmpty(item, kMqttUrlExpected);
    if (url && MqttUrlScheme(url->value).empty()) {
      Error(item, std::string(kMqttUrlExpected) + "; got " + Got(*url));
      url.reset();
    }
    if (url) q.url = url->value;
  }
  if (Require(m, "topic", "the topic to publish to, such as results/{pipeline}")) {
    const Item& item = m.Find("topic")->value;
    if (auto v = AsTemplate(item, false)) {
      if (v->find_first_of("+#") != std::string::npos) {
        Error(item, "expected a topic without wildcards (+, #); got " + Quoted(item.node.Scalar()));
      } else {
        q.topic = *v;
      }
    }
  }
  if (const Entry* e = m.Find("qos")) {
    if (auto v = AsQos(e->value)) q.qos = *v;
  }
  if (const Entry* e = m.Find("client_id")) {
    if (auto v = AsString(e->value, "an MQTT client id")) {
      q.client_id = *v;
      ClaimClientId(e->value, *v, q.url, "an MQTT sink");
    }
  }
  if (const Entry* e = m.Find("username")) {
    if (auto v = AsSecret(e->value)) q.username = *v;
  }
  if (const Entry* e = m.Find("password")) {
    if (auto v = AsSecret(e->value)) q.password = *v;
  }
  if (const Entry* e = m.Find("tls")) {
    q.tls = ReadTls(e->value);
    const std::string scheme = url ? MqttUrlScheme(url->value) : "";
    if (url && scheme != "ssl" && scheme != "mqtts") {
      Error(e->key_pos, m.path,
            "'tls' needs an ssl:// or mqtts:// url; got url " + Quoted(url->shown));
    }
  }
  return q;
}

void Checker::CheckReferences() {
  std::map<std::string, Position, std::less<>> sources;
  std::set<std::string, std::less<>> pipelines;
  std::set<std::string, std::less<>> sinks;
  KeyList from_candidates;  // sources, then pipelines
  KeyList sink_candidates;
  if (source_names_) {
    for (const auto& [name, pos] : *source_names_) {
      sources.emplace(name, pos);
      from_candidates.push_back(name);
    }
  }
  if (pipeline_names_) {
    for (const auto& [name, pos] : *pipeline_names_) {
      pipelines.insert(name);
      from_candidates.push_back(name);
    }
  }
  if (sink_names_) {
    for (const auto& [name, pos] : *sink_names_) {
      sinks.insert(name);
      sink_candidates.push_back(name);
    }
  }

  // `from` names a source or a pipeline, so the two share one namespace.
  std::set<std::string, std::less<>> shadowing;  // pipelines named like a source
  if (source_names_ && pipeline_names_) {
    for (const auto& [name, pos] : *pipeline_names_) {
      const auto source = sources.find(name);
      if (source == sources.end()) continue;
      shadowing.insert(name);
      Error(pos, "pipelines",
            "name " + Quoted(name) + " is already used by the source at line " +
                std::to_string(source->second.line) +
                "; expected pipeline and source names to differ, since 'from' may name either");
    }
  }

  std::map<std::string, size_t, std::less<>> pipeline_index;
  for (size_t i = 0; i < config_.pipelines.size(); ++i) {
    pipeline_index.emplace(config_.pipelines[i].name, i);
  }
  std::vector<bool> chains_to_check(config_.pipelines.size(), false);
  for (size_t i = 0; i < config_.pipelines.size(); ++i) {
    const PipelineConfig& p = config_.pipelines[i];
    const PipelineRefs& refs = pipeline_refs_[i];
    const std::string path = "pipelines." + p.name;
    if (!p.from.empty() && source_names_ && pipeline_names_ && shadowing.count(p.name) == 0) {
      if (p.from == p.name) {
        Error(p.from_pos, path + ".from",
              "a pipeline cannot read from itself; expected a source or another pipeline");
      } else if (sources.count(p.from) == 0 && pipelines.count(p.from) == 0) {
        KeyList others;  // a pipeline is no candidate for its own `from`
        if (from_candidates.size() <= kMaxHintCandidates) {
          for (std::string_view name : from_candidates) {
            if (name != p.name) others.push_back(name);
          }
        }
        Error(p.from_pos, path + ".from",
              "unknown source or pipeline " + Quoted(refs.from_shown) +
                  NameHint(refs.from_shown, others.empty() ? from_candidates : others,
                           "a source or pipeline"));
      } else if (pipeline_index.count(p.from) != 0) {
        chains_to_check[i] = true;
      }
    }
    if (sink_names_) {
      std::set<std::string, std::less<>> seen;
      for (size_t j = 0; j < p.to.size(); ++j) {
        const std::string to_path = path + ".to[" + std::to_string(j) + "]";
        if (sinks.count(p.to[j]) == 0) {
          Error(p.to_pos[j], to_path,
                "unknown sink " + Quoted(refs.to_shown[j]) +
                    NameHint(refs.to_shown[j], sink_candidates, "a sink"));
        } else if (!seen.insert(p.to[j]).second) {
          Error(p.to_pos[j], to_path,
                "sink " + Quoted(refs.to_shown[j]) + " is listed twice; expected each sink once");
        }
      }
    }
  }

  // Each pipeline reads from one place, so a cycle is found by following
  // `from` until it reaches a source or a pipeline already seen.
  enum class State { kUnvisited, kOnPath, kDone };
  std::vector<State> state(config_.pipelines.size(), State::kUnvisited);
  for (size_t start = 0; start < config_.pipelines.size(); ++start) {
    std::vector<size_t> path;
    size_t i = start;
    while (state[i] == State::kUnvisited) {
      state[i] = State::kOnPath;
      path.push_back(i);
      if (!chains_to_check[i]) break;
      i = pipeline_index.at(config_.pipelines[i].from);
    }
    if (state[i] == State::kOnPath && chains_to_check[i]) {
      // i is on the current path and leads back to it: a cycle starts at i.
      const auto begin = std::find(path.begin(), path.end(), i);
      std::vector<size_t> cycle(begin, path.end());
      const size_t first = *std::min_element(cycle.begin(), cycle.end());
      std::string chain;
      const auto rotate_at = std::find(cycle.begin(), cycle.end(), first);
      std::rotate(cycle.begin(), rotate_at, cycle.end());
      for (size_t index : cycle) chain += config_.pipelines[index].name + " -> ";
      chain += config_.pipelines[first].name;
      const PipelineConfig& p = config_.pipelines[first];
      Error(p.from_pos, "pipelines." + p.name + ".from",
            "pipelines read from each other in a cycle (" + chain +
                "); expected every chain of pipelines to start at a source");
    }
    for (size_t index : path) state[index] = State::kDone;
  }
}

void Checker::ApplyDefaults() {
  AgentConfig& agent = config_.agent;
  if (!agent_id_set_) {
    agent.id = options_.default_agent_id.empty() ? HostName() : options_.default_agent_id;
  }
  for (size_t i = 0; i < config_.sources.size(); ++i) {
    if (!source_client_id_set_[i]) {
      config_.sources[i].client_id = "sluice-" + agent.id + "-" + config_.sources[i].name;
    }
  }
  for (size_t i = 0; i < config_.sinks.size(); ++i) {
    if (auto* mqtt = std::get_if<MqttSinkConfig>(&config_.sinks[i].spec)) {
      if (!sink_client_id_set_[i]) {
        mqtt->client_id = "sluice-" + agent.id + "-" + config_.sinks[i].name;
      }
    }
  }
}

// ---------------------------------------------------------------------------

bool PositionLess(const Diagnostic& a, const Diagnostic& b) {
  if (a.pos.line != b.pos.line) return a.pos.line < b.pos.line;
  return a.pos.column < b.pos.column;
}

StatusOr<Config> Finish(std::vector<Diagnostic> found, std::vector<Diagnostic>* errors) {
  std::stable_sort(found.begin(), found.end(), PositionLess);
  std::string message = FormatDiagnostic(found.front());
  if (found.size() > 1) {
    const size_t more = found.size() - 1;
    message += " (and " + std::to_string(more) + (more == 1 ? " more error)" : " more errors)");
  }
  if (errors != nullptr) errors->insert(errors->end(), found.begin(), found.end());
  return Status::InvalidArgument(message);
}

// The first character that is not blank, a comment, a document marker or a
// directive; line 0 when there is none.
Position FirstContent(std::string_view text, const std::string& file) {
  int line_no = 0;
  size_t line_start = 0;
  while (line_start <= text.size()) {
    size_t line_end = text.find('\n', line_start);
    if (line_end == std::string_view::npos) line_end = text.size();
    std::string_view line = text.substr(line_start, line_end - line_start);
    line_start = line_end + 1;
    ++line_no;
    size_t i = 0;
    if (line.substr(0, 3) == "---" || line.substr(0, 3) == "...") i = 3;
    if (!line.empty() && line[0] == '%') continue;
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    if (i < line.size() && line[i] != '#') return Position{file, line_no, static_cast<int>(i) + 1};
  }
  return Position{file, 0, 0};
}

// Parses and checks; every failure becomes a diagnostic in *found.
std::optional<Config> Load(std::string_view yaml, const std::string& file,
                           const LoadOptions& options, std::vector<Diagnostic>* found) {
  if (std::optional<Diagnostic> d = internal::CheckYamlText(yaml, file)) {
    found->push_back(std::move(*d));
    return std::nullopt;
  }
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    const Position pos = e.mark.is_null() ? Position{file, 1, 1}
                                          : Position{file, e.mark.line + 1, e.mark.column + 1};
    found->push_back({pos, "invalid YAML: " + e.msg});
    return std::nullopt;
  }
  if (root.IsNull()) {
    // yaml-cpp also yields nothing for some malformed text (a stray ','):
    // point at the first thing that is not a comment.
    const Position content = FirstContent(yaml, file);
    found->push_back(
        {content.line > 0 ? content : Position{file, 1, 1},
         content.line > 0
             ? "no YAML content could be read from here on; expected " + std::string(kRootExpected)
             : "the config is empty; expected " + std::string(kRootExpected)});
    return std::nullopt;
  }
  Checker checker(yaml, file, options);
  checker.Run(root);
  if (!checker.diagnostics().empty()) {
    checker.RedactSecrets();
    *found = std::move(checker.diagnostics());
    return std::nullopt;
  }
  Config config = std::move(checker.config());
  config.file = file;
  return config;
}

}  // namespace

std::string FormatDiagnostic(const Diagnostic& d) {
  std::string out = d.pos.file.empty() ? "<config>" : d.pos.file;
  if (d.pos.line > 0) {
    out += ":" + std::to_string(d.pos.line) + ":" + std::to_string(d.pos.column);
  }
  out += ": ";
  out += d.message;
  return out;
}

StatusOr<Config> LoadConfigString(std::string_view yaml, const std::string& file_name,
                                  std::vector<Diagnostic>* errors, const LoadOptions& options) {
  std::vector<Diagnostic> found;
  try {
    std::optional<Config> config = Load(yaml, file_name, options, &found);
    if (config) return std::move(*config);
  } catch (const std::exception& e) {
    // yaml-cpp throws from accessors too; nothing may escape config/.
    found.push_back({Position{file_name, 1, 1},
                     std::string("internal error while reading the config: ") + e.what()});
  } catch (...) {
    found.push_back({Position{file_name, 1, 1}, "internal error while reading the config"});
  }
  if (found.empty()) found.push_back({Position{file_name, 1, 1}, "the config could not be read"});
  return Finish(std::move(found), errors);
}

StatusOr<Config> LoadConfigFile(const std::string& path, std::vector<Diagnostic>* errors,
                                const LoadOptions& options) {
  // Read one byte past the limit so that CheckYamlText reports the size.
  StatusOr<std::string> text = internal::ReadFileLimited(path, internal::kMaxConfigBytes + 1);
  if (!text.ok()) {
    const bool too_large = text.status().code() == StatusCode::kResourceExhausted;
    Diagnostic d{Position{path, too_large ? 1 : 0, too_large ? 1 : 0},
                 too_large ? "the file is larger than 1 MiB; expected a config of at most 1 MiB"
                           : "cannot read config file '" + path +
                                 "': " + std::string(text.status().message())};
    if (errors != nullptr) errors->push_back(d);
    const StatusCode code = text.status().code() == StatusCode::kNotFound
                                ? StatusCode::kNotFound
                                : StatusCode::kInvalidArgument;
    return Status(code, FormatDiagnostic(d));
  }
  return LoadConfigString(*text, path, errors, options);
}

}  // namespace sluice::config

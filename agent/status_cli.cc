#include "agent/status_cli.h"


#include <algorithm>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "agent/http_endpoint.h"
#include "platform/http_client.h"
#include "config/loader.h"

namespace sluice::agent {
namespace {

constexpr const char* kDefaultUrl = "http://127.0.0.1:9464";

// "12", "1.5 KiB"...: what a reader takes in at a glance.
std::string Bytes(uint64_t n) {
  if (n < 1024) return std::to_string(n) + " B";
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = -1;
  while (v >= 1024 && u < 3) {
    v /= 1024;
    ++u;
  }
  std::ostringstream s;
  s.precision(v < 10 ? 2 : 3);
  s << v << " " << units[u];
  return s.str();
}

std::string Duration(double seconds) {
  if (seconds < 0) seconds = 0;
  auto total = static_cast<uint64_t>(seconds);
  const uint64_t d = total / 86400, h = total / 3600 % 24, m = total / 60 % 60, s = total % 60;
  std::string out;
  if (d > 0) out += std::to_string(d) + "d ";
  if (d > 0 || h > 0) out += std::to_string(h) + "h ";
  if (d > 0 || h > 0 || m > 0) out += std::to_string(m) + "m ";
  return out + std::to_string(s) + "s";
}

// Columns padded to their widest cell.
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string Render() const {
    std::vector<size_t> width;
    for (const auto& row : rows_) {
      width.resize(std::max(width.size(), row.size()));
      for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
    }
    std::string out;
    for (const auto& row : rows_) {
      std::string line;
      for (size_t i = 0; i < row.size(); ++i) {
        line += row[i];
        if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
      }
      out += line + "\n";
    }
    return out;
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

std::string Num(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "-";
  if (it->is_number_float()) {
    std::ostringstream s;
    s.precision(3);
    s << it->get<double>();
    return s.str();
  }
  if (it->is_number()) return std::to_string(it->get<uint64_t>());
  if (it->is_boolean()) return it->get<bool>() ? "yes" : "no";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

// The address to ask: --url, else the config's agent.http, else the default.
StatusOr<std::string> ResolveUrl(const StatusCommand& command) {
  if (!command.url.empty()) return command.url;
  if (command.config_path.empty()) return std::string(kDefaultUrl);
  // Only agent.http is needed: secret references need not resolve here.
  config::LoadOptions options;
  options.secrets.env = [](const std::string&) { return std::optional<std::string>("x"); };
  options.secrets.file = [](const std::string&) { return StatusOr<std::string>(std::string("x")); };
  std::vector<config::Diagnostic> errors;
  auto config = config::LoadConfigFile(command.config_path, &errors, options);
  if (!config.ok()) {
    std::string why = errors.empty() ? std::string(config.status().message())
                                     : config::FormatDiagnostic(errors.front());
    return Status::InvalidArgument("cannot read agent.http from " + command.config_path + ": " +
                                   why);
  }
  if (config->agent.http == "off") {
    return Status::FailedPrecondition("agent.http is off in " + command.config_path +
                                      ": that agent serves no status (use --url)");
  }
  return "http://" + config->agent.http;
}

}  // namespace

StatusOr<HttpAnswer> HttpGet(const std::string& base_url, const std::string& path,
                             Millis timeout) {
  std::string_view rest = base_url;
  if (rest.substr(0, 8) == "https://") {
    return Status::InvalidArgument(base_url + ": the agent serves plain http only");
  }
  if (rest.substr(0, 7) == "http://") rest.remove_prefix(7);
  rest = rest.substr(0, rest.find('/'));
  if (rest.empty()) return Status::InvalidArgument("no host in URL \"" + base_url + "\"");
  ASSIGN_OR_RETURN(HttpUrl url, ParseHttpUrl("http://" + std::string(rest) + path));
  HttpClient client(std::move(url), nullptr, timeout, /*max_body=*/64u << 20);
  const std::vector<std::string> headers = {"User-Agent: sluice-status", "Connection: close"};
  StatusOr<HttpReply> reply = client.Send("GET", headers, "");
  if (!reply.ok()) {
    return Status::Unavailable("http://" + client.url().host_header + ": " +
                               std::string(reply.status().message()));
  }
  return HttpAnswer{reply->status, std::move(reply->body)};
}

StatusOr<std::string> FormatStatusTables(std::string_view status_json) {
  using nlohmann::json;
  json doc = json::parse(status_json, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("agent") ||
      !doc["agent"].is_object()) {
    return Status::InvalidArgument("the answer is not the agent's /status JSON");
  }
  try {
    std::string out;
    const json& agent = doc["agent"];
    out += "agent " + Num(agent, "id") + ": sluice " + Num(agent, "version") + " (" +
           Num(agent, "revision") + ", " + Num(agent, "arch") + "), up " +
           Duration(agent.value("uptime_seconds", 0.0)) + ", ";
    if (agent.value("ready", false)) {
      out += "ready\n";
    } else {
      std::string why = agent.value("not_ready_reason", std::string());
      std::replace(why.begin(), why.end(), '\n', ';');
      while (!why.empty() && why.back() == ';') why.pop_back();
      out += "NOT READY: " + why + "\n";
    }

    Table sources({"SOURCE", "CONNECTED", "MESSAGES", "BYTES", "DECODE ERRORS"});
    for (const json& s : doc.value("sources", json::array())) {
      sources.Add({Num(s, "name"), Num(s, "connected"), Num(s, "messages"),
                   Bytes(s.value("bytes", uint64_t{0})), Num(s, "decode_errors")});
    }
    out += "\n" + sources.Render();

    Table pipelines(
        {"PIPELINE", "READINGS", "OUTPUTS", "LATE", "FILTERED", "OPEN WINDOWS", "KEYS", "FIRING"});
    for (const json& p : doc.value("pipelines", json::array())) {
      pipelines.Add({Num(p, "name"), Num(p, "readings"), Num(p, "outputs"), Num(p, "late"),
                     Num(p, "filtered"), Num(p, "open_windows"), Num(p, "keys"),
                     Num(p, "alerts_firing")});
    }
    out += "\n" + pipelines.Render();

    Table sinks({"SINK", "TYPE", "HEALTH", "QUEUED", "QUEUED BYTES", "OLDEST", "DELIVERED",
                 "DROPPED", "RETRIED", "DEAD-LETTERED", "LAST ERROR"});
    for (const json& s : doc.value("sinks", json::array())) {
      const uint64_t dropped =
          s.value("dropped_oldest", uint64_t{0}) + s.value("dropped_newest", uint64_t{0});
      const double oldest = s.value("oldest_age_seconds", 0.0);
      std::string last_error = s.contains("last_error") && s["last_error"].is_string()
                                   ? s["last_error"].get<std::string>()
                                   : "-";
      if (last_error.size() > 60) last_error = last_error.substr(0, 57) + "...";
      sinks.Add({Num(s, "name"), Num(s, "type"), Num(s, "health"), Num(s, "queued_records"),
                 s.contains("queued_bytes") ? Bytes(s.value("queued_bytes", uint64_t{0})) : "-",
                 oldest > 0 ? Duration(oldest) : "-", Num(s, "delivered"), std::to_string(dropped),
                 Num(s, "retried"), Num(s, "dead_lettered"), last_error});
    }
    out += "\n" + sinks.Render();

    const json firing = doc.value("alerts_firing", json::object());
    out += "\nalerts firing: " + std::to_string(firing.value("total", uint64_t{0}));
    const json by = firing.value("by_pipeline", json::object());
    if (!by.empty()) {
      out += " (";
      bool first = true;
      for (auto it = by.begin(); it != by.end(); ++it) {
        out += (first ? "" : ", ") + it.key() + ": " + it.value().dump();
        first = false;
      }
      out += ")";
    }
    out += "\n";

    const json store = doc.value("store", json::object());
    out += "store: " + std::string(store.value("writable", true) ? "writable" : "NOT WRITABLE");
    if (store.contains("journal_readings")) {
      out += ", journal " + Num(store, "journal_readings") + " reading(s)";
    }
    if (store.contains("dead_letters")) out += ", " + Num(store, "dead_letters") + " dead letter(s)";
    if (store.contains("error")) out += ", error: " + Num(store, "error");
    out += "\n";
    return out;
  } catch (const json::exception& e) {
    return Status::InvalidArgument(std::string("the /status JSON has an unexpected shape: ") +
                                   e.what());
  }
}

int RunStatus(const StatusCommand& command) {
  StatusOr<std::string> url = ResolveUrl(command);
  if (!url.ok()) {
    std::cerr << "sluice status: " << url.status().message() << "\n";
    return 1;
  }
  StatusOr<HttpAnswer> answer = HttpGet(*url, "/status");
  if (!answer.ok()) {
    std::cerr << "sluice status: no agent answered at " << *url << ": "
              << answer.status().message() << "\n";
    return 1;
  }
  if (answer->status != 200) {
    std::cerr << "sluice status: " << *url << " answered " << answer->status << ": "
              << answer->body;
    return 1;
  }
  StatusOr<std::string> tables = FormatStatusTables(answer->body);
  if (!tables.ok()) {
    std::cerr << "sluice status: " << *url << ": " << tables.status().message() << "\n";
    return 1;
  }
  std::cout << *tables;
  return 0;
}

}  // namespace sluice::agent

#include "operators/decode.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

namespace sluice::operators {
namespace {

using Json = nlohmann::json;

Value ToValue(const Json& j) {
  switch (j.type()) {
    case Json::value_t::null: return std::monostate{};
    case Json::value_t::boolean: return j.get<bool>();
    case Json::value_t::number_integer: return j.get<int64_t>();
    case Json::value_t::number_unsigned: {
      uint64_t u = j.get<uint64_t>();
      if (u <= static_cast<uint64_t>(INT64_MAX)) return static_cast<int64_t>(u);
      return static_cast<double>(u);
    }
    case Json::value_t::number_float: return j.get<double>();
    case Json::value_t::string: return j.get<std::string>();
    default: return RawJson{j.dump()};
  }
}

std::optional<int64_t> TimeFromNumber(double v, TimeUnit unit) {
  double ms;
  switch (unit) {
    case TimeUnit::kSeconds: ms = v * 1e3; break;
    case TimeUnit::kMillis: ms = v; break;
    case TimeUnit::kMicros: ms = v / 1e3; break;
    case TimeUnit::kNanos: ms = v / 1e6; break;
    default: return std::nullopt;
  }
  // Refuse what no clock can mean rather than overflow: beyond ±year 9999.
  if (!std::isfinite(ms) || std::fabs(ms) > 253402300799999.0) return std::nullopt;
  return static_cast<int64_t>(std::floor(ms));
}

const char* UnitName(TimeUnit unit) {
  switch (unit) {
    case TimeUnit::kSeconds: return "s";
    case TimeUnit::kMillis: return "ms";
    case TimeUnit::kMicros: return "us";
    case TimeUnit::kNanos: return "ns";
    case TimeUnit::kRfc3339: return "rfc3339";
  }
  return "?";
}

int ParseDigits(std::string_view s, size_t pos, size_t n, bool* ok) {
  int v = 0;
  if (pos + n > s.size()) {
    *ok = false;
    return 0;
  }
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') {
      *ok = false;
      return 0;
    }
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

}  // namespace

bool Projection::Wants(std::string_view name) const {
  if (all) return true;
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::optional<int64_t> ParseRfc3339Millis(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.fff...](Z|+HH:MM|-HH:MM)
  bool ok = true;
  int year = ParseDigits(s, 0, 4, &ok);
  int month = ParseDigits(s, 5, 2, &ok);
  int day = ParseDigits(s, 8, 2, &ok);
  int hour = ParseDigits(s, 11, 2, &ok);
  int minute = ParseDigits(s, 14, 2, &ok);
  int second = ParseDigits(s, 17, 2, &ok);
  if (!ok || s.size() < 20 || s[4] != '-' || s[7] != '-' ||
      (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s[13] != ':' || s[16] != ':') {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return std::nullopt;
  }
  size_t pos = 19;
  int64_t millis = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (digits < 3) millis = millis * 10 + (s[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return std::nullopt;
    for (int i = digits; i < 3; ++i) millis *= 10;
  }
  int64_t offset_minutes = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int sign = s[pos] == '-' ? -1 : 1;
    int oh = ParseDigits(s, pos + 1, 2, &ok);
    int om = ParseDigits(s, pos + 4, 2, &ok);
    if (!ok || pos + 3 >= s.size() || s[pos + 3] != ':' || oh > 23 || om > 59) return std::nullopt;
    offset_minutes = sign * (oh * 60 + om);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  int64_t days = DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  int64_t secs = days * 86400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
  return secs * 1000 + millis;
}

Status JsonDecoder::Decode(std::string_view topic, std::string_view payload, int64_t arrival_ms,
                           Record* out) const {
  out->topic.assign(topic);
  out->arrival_ms = arrival_ms;
  out->event_time_ms = arrival_ms;
  out->fields.clear();

  if (options_.topic_fields && !options_.topic_fields->Match(topic, &out->fields)) {
    return Status::InvalidArgument("topic '" + std::string(topic) + "' does not match topic_fields '" +
                                   options_.topic_fields->text() + "'");
  }

  Json doc = Json::parse(payload.begin(), payload.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Status::InvalidArgument("payload is not valid JSON");
  if (!doc.is_object()) {
    return Status::InvalidArgument(std::string("payload is a JSON ") + doc.type_name() +
                                   ", expected an object");
  }

  if (options_.time_field) {
    auto it = doc.find(*options_.time_field);
    if (it == doc.end()) {
      return Status::InvalidArgument("payload has no time field '" + *options_.time_field + "'");
    }
    std::optional<int64_t> t;
    if (options_.time_unit == TimeUnit::kRfc3339) {
      if (it->is_string()) t = ParseRfc3339Millis(it->get_ref<const std::string&>());
    } else if (it->is_number()) {
      t = TimeFromNumber(it->get<double>(), options_.time_unit);
      if (t && it->is_number_integer() && options_.time_unit == TimeUnit::kMillis) {
        t = it->get<int64_t>();  // exact, no detour through double
      }
    }
    if (!t) {
      return Status::InvalidArgument("time field '" + *options_.time_field + "' is " +
                                     it->dump().substr(0, 64) + ", expected " +
                                     (options_.time_unit == TimeUnit::kRfc3339
                                          ? std::string("an RFC 3339 timestamp string")
                                          : std::string("a number in ") +
                                                UnitName(options_.time_unit)));
    }
    out->event_time_ms = *t;
  }

  size_t captures = out->fields.size();
  for (auto& [name, value] : doc.items()) {
    if (!options_.projection.Wants(name)) continue;
    // A topic capture names the device that sent it: it wins over a payload field.
    bool shadowed = false;
    for (size_t i = 0; i < captures; ++i) {
      if (out->fields[i].name == name) shadowed = true;
    }
    if (shadowed) continue;
    out->fields.push_back(Field{name, ToValue(value)});
  }
  return Status::Ok();
}

}  // namespace sluice::operators

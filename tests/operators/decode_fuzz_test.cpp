// Differential tests of JsonDecoder's payload scanner against nlohmann::json.
//
// JsonDecoder validates and decodes payloads with its own scanner; before that
// it parsed them into an nlohmann DOM. ReferenceDecode below is that earlier
// decoder, kept verbatim in spirit: every payload must get the same verdict,
// the same message and the same fields (doubles bit for bit) from both.
// Generated payloads use fixed seeds, so a failure reproduces.
#include <catch2/catch.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "operators/decode.h"

using namespace sluice::operators;
using sluice::Status;
using sluice::StatusCode;

namespace {

using Json = nlohmann::json;

// ---- The reference: the nlohmann DOM decoder JsonDecoder replaced. ----

Value RefValue(const Json& j) {
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

std::optional<int64_t> RefTimeFromNumber(double v, TimeUnit unit) {
  double ms;
  switch (unit) {
    case TimeUnit::kSeconds: ms = v * 1e3; break;
    case TimeUnit::kMillis: ms = v; break;
    case TimeUnit::kMicros: ms = v / 1e3; break;
    case TimeUnit::kNanos: ms = v / 1e6; break;
    default: return std::nullopt;
  }
  if (!std::isfinite(ms) || std::fabs(ms) > 253402300799999.0) return std::nullopt;
  return static_cast<int64_t>(std::floor(ms));
}

const char* RefUnitName(TimeUnit unit) {
  switch (unit) {
    case TimeUnit::kSeconds: return "s";
    case TimeUnit::kMillis: return "ms";
    case TimeUnit::kMicros: return "us";
    case TimeUnit::kNanos: return "ns";
    case TimeUnit::kRfc3339: return "rfc3339";
  }
  return "?";
}

Status ReferenceDecode(const DecodeOptions& options, std::string_view topic,
                       std::string_view payload, int64_t arrival_ms, Record* out) {
  out->topic.assign(topic);
  out->arrival_ms = arrival_ms;
  out->event_time_ms = arrival_ms;
  out->fields.clear();
  if (options.topic_fields && !options.topic_fields->Match(topic, &out->fields)) {
    return Status::InvalidArgument("topic '" + std::string(topic) +
                                   "' does not match topic_fields '" +
                                   options.topic_fields->text() + "'");
  }
  Json doc = Json::parse(payload.begin(), payload.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Status::InvalidArgument("payload is not valid JSON");
  if (!doc.is_object()) {
    return Status::InvalidArgument(std::string("payload is a JSON ") + doc.type_name() +
                                   ", expected an object");
  }
  if (options.time_field) {
    auto it = doc.find(*options.time_field);
    if (it == doc.end()) {
      return Status::InvalidArgument("payload has no time field '" + *options.time_field + "'");
    }
    std::optional<int64_t> t;
    if (options.time_unit == TimeUnit::kRfc3339) {
      if (it->is_string()) t = ParseRfc3339Millis(it->get_ref<const std::string&>());
    } else if (it->is_number()) {
      t = RefTimeFromNumber(it->get<double>(), options.time_unit);
      if (t && it->is_number_integer() && options.time_unit == TimeUnit::kMillis) {
        t = it->get<int64_t>();
      }
    }
    if (!t) {
      return Status::InvalidArgument("time field '" + *options.time_field + "' is " +
                                     it->dump().substr(0, 64) + ", expected " +
                                     (options.time_unit == TimeUnit::kRfc3339
                                          ? std::string("an RFC 3339 timestamp string")
                                          : std::string("a number in ") +
                                                RefUnitName(options.time_unit)));
    }
    out->event_time_ms = *t;
  }
  size_t captures = out->fields.size();
  for (auto& [name, value] : doc.items()) {
    if (!options.projection.Wants(name)) continue;
    bool shadowed = false;
    for (size_t i = 0; i < captures; ++i) {
      if (out->fields[i].name == name) shadowed = true;
    }
    if (shadowed) continue;
    out->fields.push_back(Field{name, RefValue(value)});
  }
  return Status::Ok();
}

// ---- Comparison ----

// Equal values, doubles bit for bit (so -0.0 differs from 0.0).
bool SameValue(const Value& a, const Value& b) {
  if (a.index() != b.index()) return false;
  if (const double* da = std::get_if<double>(&a)) {
    double db = std::get<double>(b);
    return std::memcmp(da, &db, sizeof db) == 0;
  }
  return a == b;
}

std::string Show(const Value& v) {
  std::string s;
  AppendValueJson(s, v);
  if (const double* d = std::get_if<double>(&v)) {
    char buf[64];
    std::snprintf(buf, sizeof buf, " (%a)", *d);
    s += buf;
  }
  return s;
}

// Empty when both decoders agree; otherwise what differs.
std::string Difference(const DecodeOptions& options, std::string_view topic,
                       std::string_view payload) {
  Record want;
  Record got;
  got.fields.push_back(Field{"stale", int64_t{1}});  // Decode must clear it
  Status ws = ReferenceDecode(options, topic, payload, 42, &want);
  Status gs = JsonDecoder(options).Decode(topic, payload, 42, &got);
  if (ws.code() != gs.code() || ws.message() != gs.message()) {
    return "status: want '" + ws.ToString() + "', got '" + gs.ToString() + "'";
  }
  if (want.topic != got.topic || want.arrival_ms != got.arrival_ms ||
      want.event_time_ms != got.event_time_ms) {
    return "record header: want event time " + std::to_string(want.event_time_ms) + ", got " +
           std::to_string(got.event_time_ms);
  }
  if (want.fields.size() != got.fields.size()) {
    return "field count: want " + std::to_string(want.fields.size()) + ", got " +
           std::to_string(got.fields.size());
  }
  for (size_t i = 0; i < want.fields.size(); ++i) {
    const Field& w = want.fields[i];
    const Field& g = got.fields[i];
    if (w.name != g.name || !SameValue(w.value, g.value)) {
      return "field " + std::to_string(i) + ": want " + w.name + "=" + Show(w.value) + ", got " +
             g.name + "=" + Show(g.value);
    }
  }
  return "";
}

// Printable form of a payload for failure messages.
std::string Escaped(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7F && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

// The decoder configurations each payload is tried with.
std::vector<DecodeOptions> Configurations() {
  std::vector<DecodeOptions> all;
  DecodeOptions everything;  // every field, arrival time
  all.push_back(everything);

  DecodeOptions millis;
  millis.time_field = "ts";
  all.push_back(millis);

  DecodeOptions projected;  // as the agent runs: captures, a projection, a time field
  projected.time_field = "ts";
  projected.topic_fields = *TopicPattern::Parse("sensors/{site}/{device}");
  projected.projection = Projection::Only({"temp", "device", "a", "\xC3\xA9", "nested", "ts"});
  all.push_back(projected);

  for (TimeUnit unit :
       {TimeUnit::kSeconds, TimeUnit::kMicros, TimeUnit::kNanos, TimeUnit::kRfc3339}) {
    DecodeOptions o;
    o.time_field = "ts";
    o.time_unit = unit;
    o.projection = Projection::Only({"temp", "b"});
    all.push_back(o);
  }
  return all;
}

constexpr std::string_view kTopic = "sensors/north/dev-1";

// ---- Generation of valid payloads ----

class Generator {
 public:
  explicit Generator(uint64_t seed) : rng_(seed) {}

  uint64_t Below(uint64_t n) { return rng_() % n; }
  bool OneIn(uint64_t n) { return Below(n) == 0; }

  // A whole payload: an object, sometimes wrapped the ways nlohmann tolerates.
  // Its time field mostly suits `unit`.
  std::string Payload(TimeUnit unit) {
    unit_ = unit;
    std::string s;
    if (OneIn(50)) s += "\xEF\xBB\xBF";
    Ws(&s);
    Object(&s, 1, /*top=*/true);
    Ws(&s);
    if (OneIn(50)) s.push_back('\0');
    return s;
  }

 private:
  void Ws(std::string* s) {
    if (!OneIn(4)) return;
    static constexpr char kWs[] = {' ', '\t', '\n', '\r'};
    for (uint64_t n = 1 + Below(3); n > 0; --n) s->push_back(kWs[Below(4)]);
  }

  void Key(std::string* s) {
    static const std::vector<std::string> kKeys = {
        "ts", "temp", "hum", "vib", "a", "b", "device", "site", "nested", "\xC3\xA9",
        "t\\u0065mp",     // "temp" spelt with an escape
        "\\u00e9",        // "é" spelt with an escape
        "x\\u0000y", "", "a\\\"b", "\\ud83d\\ude00", "long_key_beyond_small_string_size"};
    if (OneIn(5)) {
      String(s);
    } else {
      *s += '"' + kKeys[Below(kKeys.size())] + '"';
    }
  }

  void Object(std::string* s, int depth, bool top) {
    s->push_back('{');
    Ws(s);
    uint64_t members = top ? Below(8) : Below(4);
    if (top && !OneIn(10)) {  // most payloads carry a time field somewhere
      members = std::max<uint64_t>(members, 1);
    }
    bool time_placed = false;
    for (uint64_t i = 0; i < members; ++i) {
      if (i > 0) {
        s->push_back(',');
        Ws(s);
      }
      if (top && !time_placed && (OneIn(3) || i + 1 == members) && !OneIn(10)) {
        *s += "\"ts\"";
        time_placed = true;
        Ws(s);
        s->push_back(':');
        Ws(s);
        TimeValue(s);
      } else {
        Key(s);
        Ws(s);
        s->push_back(':');
        Ws(s);
        AnyValue(s, depth);
      }
      Ws(s);
    }
    s->push_back('}');
  }

  void Array(std::string* s, int depth) {
    s->push_back('[');
    Ws(s);
    uint64_t n = Below(5);
    for (uint64_t i = 0; i < n; ++i) {
      if (i > 0) {
        s->push_back(',');
        Ws(s);
      }
      AnyValue(s, depth);
      Ws(s);
    }
    s->push_back(']');
  }

  void AnyValue(std::string* s, int depth) {
    uint64_t pick = Below(depth < 6 ? 20 : 16);
    if (pick < 2) {
      static constexpr const char* kLiterals[] = {"null", "true", "false"};
      *s += kLiterals[Below(3)];
    } else if (pick < 6) {
      Integer(s);
    } else if (pick < 11) {
      Float(s);
    } else if (pick < 16) {
      String(s);
    } else if (pick < 18) {
      Object(s, depth + 1, false);
    } else {
      Array(s, depth + 1);
    }
  }

  void TimeValue(std::string* s) {
    uint64_t kind = Below(8);
    if (!OneIn(4)) {  // mostly what the configuration expects
      switch (unit_) {
        case TimeUnit::kSeconds: kind = 1; break;
        case TimeUnit::kMillis: kind = OneIn(4) ? 3 : 0; break;
        case TimeUnit::kMicros: case TimeUnit::kNanos: kind = 2; break;
        case TimeUnit::kRfc3339: kind = 4 + Below(3); break;
      }
    }
    switch (kind) {
      case 0: *s += std::to_string(1700000000000 + static_cast<int64_t>(Below(1000000000))); break;
      case 1:
        *s += std::to_string(1700000000 + Below(100000)) + "." + std::to_string(Below(1000));
        break;
      case 2: *s += std::to_string(1700000000123456 + Below(1000000)); break;
      case 3: *s += "1.7e12"; break;
      case 4: *s += "\"2023-11-14T23:13:20." + std::to_string(100 + Below(900)) + "Z\""; break;
      case 5: *s += "\"2023-11-14T23:13:20+01:00\""; break;
      case 6: *s += "\"2023-11-14T23:13:20\\u002E5Z\""; break;  // escaped '.'
      default: AnyValue(s, 1); break;
    }
  }

  void Digits(std::string* s, uint64_t n, bool leading_nonzero) {
    for (uint64_t i = 0; i < n; ++i) {
      s->push_back(static_cast<char>('0' + (i == 0 && leading_nonzero ? 1 + Below(9) : Below(10))));
    }
  }

  void Integer(std::string* s) {
    switch (Below(10)) {
      case 0: *s += "-0"; break;
      case 1: *s += "0"; break;
      case 2: {
        static constexpr const char* kEdges[] = {
            "9223372036854775807", "9223372036854775808", "-9223372036854775808",
            "-9223372036854775809", "18446744073709551615", "18446744073709551616",
            "999999999999999999", "1000000000000000000", "-999999999999999999",
            "123456789012345678901234567890"};
        *s += kEdges[Below(std::size(kEdges))];
        break;
      }
      case 3:
        if (OneIn(2)) s->push_back('-');
        Digits(s, 15 + Below(12), true);  // around the int64 and uint64 limits
        break;
      case 4:
        if (OneIn(20)) {
          Digits(s, 300 + Below(20), true);  // around the double overflow
          break;
        }
        [[fallthrough]];
      default:
        if (OneIn(3)) s->push_back('-');
        Digits(s, 1 + Below(12), true);
        break;
    }
  }

  void Float(std::string* s) {
    switch (Below(8)) {
      case 0: {
        static constexpr const char* kEdges[] = {
            "-0.0", "0.0", "25.6", "42.9", "2.498", "1e400", "-1e400", "1e-400", "-1e-400",
            "4.9406564584124654e-324", "2.4703282292062328e-324", "2.4703282292062327e-324",
            "1.7976931348623157e308", "1.7976931348623158e308", "1.7976931348623159e308",
            "2.2250738585072011e-308", "0.1", "1E5", "1e+05", "-1E-05", "0e99999999999",
            "123456789012345678901234567890.5", "0.000000000000000000000000000000001e-300"};
        *s += kEdges[Below(std::size(kEdges))];
        break;
      }
      case 1: {  // any finite double in its shortest form
        uint64_t bits = rng_();
        double d;
        std::memcpy(&d, &bits, sizeof d);
        if (!std::isfinite(d)) d = 1.5;
        char buf[64];
        auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d);
        std::string text(buf, end);
        if (text.find_first_of(".e") == std::string::npos) text += ".0";
        *s += text;
        break;
      }
      default: {  // hand-assembled: int part, fraction, exponent
        if (OneIn(3)) s->push_back('-');
        if (OneIn(3)) {
          s->push_back('0');
        } else {
          Digits(s, 1 + Below(6), true);
        }
        bool fraction = !OneIn(3);
        if (fraction) {
          s->push_back('.');
          Digits(s, 1 + Below(20), false);
        }
        if (!fraction || OneIn(2)) {
          s->push_back(OneIn(2) ? 'e' : 'E');
          uint64_t sign = Below(3);
          if (sign == 1) s->push_back('+');
          if (sign == 2) s->push_back('-');
          Digits(s, 1 + Below(3), false);
        }
        break;
      }
    }
  }

  void Utf8(std::string* s, uint32_t cp) {
    if (cp < 0x80) {
      s->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      s->push_back(static_cast<char>(0xC0 | cp >> 6));
      s->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      s->push_back(static_cast<char>(0xE0 | cp >> 12));
      s->push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3F)));
      s->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      s->push_back(static_cast<char>(0xF0 | cp >> 18));
      s->push_back(static_cast<char>(0x80 | (cp >> 12 & 0x3F)));
      s->push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3F)));
      s->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  uint32_t CodePoint() {
    switch (Below(4)) {
      case 0: return static_cast<uint32_t>(0x80 + Below(0x800 - 0x80));
      case 1: {
        uint32_t cp = static_cast<uint32_t>(0x800 + Below(0x10000 - 0x800));
        return cp >= 0xD800 && cp <= 0xDFFF ? 0xFFFD : cp;
      }
      case 2: return static_cast<uint32_t>(0x10000 + Below(0x110000 - 0x10000));
      default: return static_cast<uint32_t>(Below(0x80));
    }
  }

  void Hex4(std::string* s, uint32_t v) {
    char buf[8];
    std::snprintf(buf, sizeof buf, OneIn(2) ? "%04x" : "%04X", v);
    *s += buf;
  }

  void String(std::string* s) {
    s->push_back('"');
    uint64_t n = Below(4) == 0 ? Below(40) : Below(10);
    for (uint64_t i = 0; i < n; ++i) {
      switch (Below(10)) {
        case 0: {
          static constexpr const char* kEscapes[] = {"\\\"", "\\\\", "\\/", "\\b", "\\f",
                                                     "\\n",  "\\r",  "\\t"};
          *s += kEscapes[Below(std::size(kEscapes))];
          break;
        }
        case 1: {  // \uXXXX of a BMP code point (control characters too)
          uint32_t cp = OneIn(3) ? static_cast<uint32_t>(Below(0x20)) : CodePoint();
          if (cp >= 0x10000 || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0x20AC;
          *s += "\\u";
          Hex4(s, cp);
          break;
        }
        case 2: {  // a surrogate pair
          uint32_t cp = static_cast<uint32_t>(0x10000 + Below(0x100000));
          *s += "\\u";
          Hex4(s, 0xD800 + ((cp - 0x10000) >> 10));
          *s += "\\u";
          Hex4(s, 0xDC00 + ((cp - 0x10000) & 0x3FF));
          break;
        }
        case 3: {
          uint32_t cp = CodePoint();
          if (cp < 0x20 || cp == '"' || cp == '\\') cp = 'q';
          Utf8(s, cp);
          break;
        }
        default: {
          char c = static_cast<char>(' ' + Below(95));
          s->push_back(c == '"' || c == '\\' ? 'z' : c);
          break;
        }
      }
    }
    s->push_back('"');
  }

  std::mt19937_64 rng_;
  TimeUnit unit_ = TimeUnit::kMillis;
};

// Damages a payload: flipped bits, replaced, inserted or deleted bytes, truncation.
std::string Mutate(std::string s, Generator& g) {
  static constexpr char kInteresting[] = {'"', '\\', '{', '}', '[', ']', ',', ':', '0', '1',
                                          '-', '+', 'e', '.', 'u', 'n', ' ', '\0', '\x7f',
                                          '\x80', '\xbf', '\xc3', '\xed', '\xef', '\xf4', '\xff'};
  uint64_t edits = 1 + g.Below(3);
  for (uint64_t e = 0; e < edits; ++e) {
    size_t at = s.empty() ? 0 : g.Below(s.size());
    auto byte = [&] {
      return g.OneIn(2) ? kInteresting[g.Below(std::size(kInteresting))]
                        : static_cast<char>(g.Below(256));
    };
    switch (g.Below(5)) {
      case 0:
        if (!s.empty()) s[at] = static_cast<char>(s[at] ^ (1 << g.Below(8)));
        break;
      case 1:
        if (!s.empty()) s[at] = byte();
        break;
      case 2: s.insert(s.begin() + static_cast<ptrdiff_t>(at), byte()); break;
      case 3:
        if (!s.empty()) s.erase(at, 1 + g.Below(3));
        break;
      default: s.resize(at); break;
    }
  }
  return s;
}

}  // namespace

TEST_CASE("the scanner agrees with nlohmann on generated valid payloads") {
  const std::vector<DecodeOptions> configurations = Configurations();
  Generator g(20261126);
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    const DecodeOptions& options = configurations[static_cast<size_t>(i) % configurations.size()];
    std::string payload = g.Payload(options.time_unit);
    std::string diff = Difference(options, kTopic, payload);
    INFO("payload " << i << ": " << Escaped(payload));
    REQUIRE(diff == "");
    Record r;
    if (JsonDecoder(options).Decode(kTopic, payload, 0, &r).ok()) ++accepted;
  }
  // The generator should mostly produce payloads that decode, or it tests little.
  CHECK(accepted > 10000);
}

TEST_CASE("the scanner agrees with nlohmann on damaged payloads") {
  const std::vector<DecodeOptions> configurations = Configurations();
  Generator g(4242);
  int accepted = 0;
  for (int i = 0; i < 50000; ++i) {
    const DecodeOptions& options = configurations[static_cast<size_t>(i) % configurations.size()];
    std::string payload = Mutate(g.Payload(options.time_unit), g);
    std::string diff = Difference(options, kTopic, payload);
    INFO("payload " << i << ": " << Escaped(payload));
    REQUIRE(diff == "");
    Record r;
    if (JsonDecoder(options).Decode(kTopic, payload, 0, &r).ok()) ++accepted;
  }
  // Some damage leaves valid JSON (a changed digit); most must not.
  CHECK(accepted > 1000);
  CHECK(accepted < 40000);
}

TEST_CASE("hand-picked payloads decode as nlohmann decoded them") {
  using namespace std::string_literals;
  const std::vector<std::string> payloads = {
      // Shape and whitespace.
      "{}", " \t\r\n{ } \n", "{\"a\":1}", "{\"a\" : 1 , \"b\" : [ ] , \"c\" : { } }",
      "{\"a\":1,}", "{,}", "{\"a\"}", "{\"a\":}", "{\"a\":1 \"b\":2}", "{\"a\":1}}", "{\"a\":1}{",
      "{\"a\":1", "{\"a\":[1,2}", "{\"a\":{\"b\":1]}", "{\"a\":[1,]}", "{\"a\":[,1]}", "{'a':1}",
      "{a:1}", "{\"a\":1}/*c*/", "{\"a\":1}//", "\v{}", "{\"a\":\"x\"\"y\"}",
      // Top-level values that are not objects, valid or not.
      "null", "true", "false", "\"x\"", "-1.5e3", "[{}]", "[", "nul", "tru", "01", "\"\\x\"",
      // Byte order mark and NUL terminators.
      "\xEF\xBB\xBF{\"a\":1}", "\xEF\xBB{\"a\":1}", " \xEF\xBB\xBF{}", "{}\xEF\xBB\xBF",
      "\xEF\xBB\xBF", "{\"a\":1}\0"s, "{\"a\":1} \0 junk{"s, "\0{}"s, "{\"a\":1\0}"s,
      "{\"a\":\"x\0\"}"s, "42\0"s, "[1,2]\0x"s,
      // Literals.
      "{\"a\":true,\"b\":false,\"c\":null}", "{\"a\":True}", "{\"a\":nul}", "{\"a\":truex}",
      "{\"a\":NaN}", "{\"a\":Infinity}", "{\"a\":-Infinity}",
      // Numbers.
      "{\"a\":0}", "{\"a\":-0}", "{\"a\":-0.0}", "{\"a\":0.0e0}", "{\"a\":01}", "{\"a\":-01}",
      "{\"a\":00}", "{\"a\":+1}", "{\"a\":.5}", "{\"a\":1.}", "{\"a\":1.e3}", "{\"a\":1e}",
      "{\"a\":1e+}", "{\"a\":1e-}", "{\"a\":1E+2}", "{\"a\":1e02}", "{\"a\":-}", "{\"a\":- 1}",
      "{\"a\":1.5.2}", "{\"a\":0x10}", "{\"a\":25.6}", "{\"a\":42.9,\"b\":2.498}",
      "{\"a\":9223372036854775807}", "{\"a\":9223372036854775808}",
      "{\"a\":-9223372036854775808}", "{\"a\":-9223372036854775809}",
      "{\"a\":18446744073709551615}", "{\"a\":18446744073709551616}", "{\"a\":1e400}",
      "{\"a\":-1e400}", "{\"x\":1e400,\"a\":1}", "{\"x\":[1e309],\"a\":1}", "{\"a\":1e-400}",
      "{\"a\":-1e-400}", "{\"a\":5e-324}", "{\"a\":2.4703282292062327e-324}",
      "{\"a\":1.7976931348623158e308}", "{\"a\":1.7976931348623159e308}",
      "{\"a\":0.0001e312}", "{\"a\":10000e-312}", "{\"a\":0e999999999999999999999}",
      "{\"a\":1e999999999999999999999}", "{\"a\":1e-999999999999999999999}",
      "{\"a\":" + std::string(308, '9') + "}", "{\"a\":" + std::string(309, '9') + "}",
      "{\"a\":" + std::string(400, '1') + "}", "{\"x\":" + std::string(400, '1') + "}",
      "{\"a\":0." + std::string(400, '0') + "1e400}",
      "{\"a\":0." + std::string(400, '0') + "1e90}",
      // Strings and escapes.
      "{\"a\":\"\"}", "{\"a\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}", "{\"a\":\"\\u0000\"}",
      "{\"a\":\"\\u00e9\\u00E9\\u20ac\"}", "{\"a\":\"\\ud83d\\ude00\"}",
      "{\"a\":\"\\uD83D\\uDE00\"}",
      "{\"a\":\"\\ud83d\"}", "{\"a\":\"\\ude00\"}", "{\"a\":\"\\ud83d\\u0041\"}",
      "{\"a\":\"\\ud83dx\"}", "{\"a\":\"\\ud83d\\\\ude00\"}", "{\"a\":\"\\ud83d\\ud83d\"}",
      "{\"a\":\"\\u12\"}", "{\"a\":\"\\u12g4\"}", "{\"a\":\"\\x41\"}", "{\"a\":\"\\'\"}",
      "{\"a\":\"\\U0041\"}", "{\"a\":\"\\", "{\"a\":\"abc", "{\"a\":\"tab\there\"}",
      "{\"a\":\"\x1f\"}", "{\"a\":\"\x7f\"}", "{\"a\":\"new\nline\"}",
      // UTF-8: valid, overlong, surrogates, out of range, truncated.
      "{\"a\":\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\"}", "{\"\xC3\xA9\":1}",
      "{\"a\":\"\xC0\xAF\"}",
      "{\"a\":\"\xC1\xBF\"}", "{\"a\":\"\xE0\x80\xAF\"}", "{\"a\":\"\xE0\xA0\x80\"}",
      "{\"a\":\"\xED\xA0\x80\"}", "{\"a\":\"\xED\x9F\xBF\"}", "{\"a\":\"\xF0\x80\x80\x80\"}",
      "{\"a\":\"\xF0\x90\x80\x80\"}", "{\"a\":\"\xF4\x8F\xBF\xBF\"}",
      "{\"a\":\"\xF4\x90\x80\x80\"}",
      "{\"a\":\"\xF5\x80\x80\x80\"}", "{\"a\":\"\xC3\"}", "{\"a\":\"\xE2\x82\"}",
      "{\"a\":\"\x80\"}",
      "{\"a\":\"\xFF\"}", "{\"a\":\"\xC3\xA9", "{\"a\":1,\xC3\xA9:2}", "\xff\xfe{}",
      // Nested values kept as RawJson: nlohmann's rendering.
      "{\"nested\":{\"z\":1,\"a\":[1.0,2.50,1e5,-0.0,1E-7,\"\\u001f\\u00e9\\\"\"],\"m\":{}}}",
      "{\"nested\":[ 1 , { \"b\" : null , \"b\" : true } ]}", "{\"nested\":[[[[[]]]]]}",
      "{\"nested\":{\"k\":18446744073709551616,\"l\":-9223372036854775809}}",
      // Duplicate keys: the last value counts, including the time field's.
      "{\"a\":1,\"a\":\"two\"}", "{\"a\":{\"x\":1},\"b\":0,\"a\":[2]}",
      "{\"t\\u0065mp\":1,\"temp\":2}",
      "{\"ts\":1,\"ts\":2}", "{\"ts\":\"x\",\"ts\":3}", "{\"ts\":3,\"ts\":\"x\"}",
      // Keys: empty, escaped, with NUL, order by bytes.
      "{\"\":1}", "{\"\\u0000\":1,\"\\u0000a\":2}",
      "{\"b\":1,\"B\":2,\"\xC3\xA9\":3,\"_\":4,\"1\":5}",
      "{\"device\":\"spoofed\",\"site\":\"x\",\"temp\":1}",
      // Time field values.
      "{\"ts\":1700000000123}", "{\"ts\":1700000000.5}", "{\"ts\":1.7e12}", "{\"ts\":-1}",
      "{\"ts\":253402300799999}", "{\"ts\":253402300800000}", "{\"ts\":1e300}", "{\"ts\":-0.0}",
      "{\"ts\":9223372036854775807}", "{\"ts\":18446744073709551615}", "{\"ts\":1e-400}",
      "{\"ts\":\"2023-11-14T23:13:20.123Z\"}", "{\"ts\":\"2023-11-14T23:13:20\\u002e123Z\"}",
      "{\"ts\":\"2023-11-14T23:13:20Z\\u0000\"}", "{\"ts\":null}", "{\"ts\":true}", "{\"ts\":[1]}",
      "{\"ts\":{\"s\":1}}", "{\"ts\":\"" + std::string(100, 'x') + "\"}",
      "{\"ts\":\"\\u00e9\\ud83d\\ude00\\u0001" + std::string(70, 'y') + "\"}",
      "{\"ts\":[" + std::string(40, '7') + ",\"" + std::string(40, 'z') + "\"]}",
  };
  const std::vector<DecodeOptions> configurations = Configurations();
  for (const std::string& payload : payloads) {
    for (const DecodeOptions& options : configurations) {
      INFO("payload: " << Escaped(payload));
      CHECK(Difference(options, kTopic, payload) == "");
    }
  }
}

TEST_CASE("numbers decode to the exact values nlohmann gave") {
  JsonDecoder decoder(DecodeOptions{});
  Record r;
  auto decode = [&](const std::string& number) {
    REQUIRE(decoder.Decode("t", "{\"v\":" + number + "}", 0, &r).ok());
    return r.fields.at(0).value;
  };
  CHECK(SameValue(decode("25.6"), Value(25.6)));
  CHECK(SameValue(decode("-0"), Value(int64_t{0})));
  CHECK(SameValue(decode("-0.0"), Value(-0.0)));
  CHECK(SameValue(decode("1e-400"), Value(0.0)));
  CHECK(SameValue(decode("-1e-400"), Value(-0.0)));
  CHECK(SameValue(decode("9223372036854775807"), Value(INT64_MAX)));
  CHECK(SameValue(decode("-9223372036854775808"), Value(INT64_MIN)));
  CHECK(SameValue(decode("9223372036854775808"), Value(9223372036854775808.0)));
  CHECK(SameValue(decode("1E2"), Value(100.0)));
  CHECK_FALSE(decoder.Decode("t", R"({"v":1e400})", 0, &r).ok());
}

TEST_CASE("nesting is refused beyond 64 levels, where nlohmann had no limit") {
  JsonDecoder decoder(DecodeOptions{});
  Record r;
  auto nested = [](int levels) {  // the payload object is the first level
    return "{\"a\":" + std::string(levels - 1, '[') + std::string(levels - 1, ']') + "}";
  };
  std::string deepest = nested(64);
  REQUIRE(decoder.Decode("t", deepest, 0, &r).ok());
  CHECK(Difference(DecodeOptions{}, "t", deepest) == "");
  CHECK(Difference(Configurations()[3], "t", deepest) == "");  // "a" validated, not kept

  Status s = decoder.Decode("t", nested(65), 0, &r);
  CHECK(s.code() == StatusCode::kInvalidArgument);
  CHECK(s.message() == "payload is not valid JSON");
  CHECK_FALSE(decoder.Decode("t", nested(100000), 0, &r).ok());
  CHECK(r.fields.empty());
  std::string top_array = std::string(64, '[') + std::string(64, ']');
  Status array = decoder.Decode("t", top_array, 0, &r);
  CHECK(array.message() == "payload is a JSON array, expected an object");
  Status deeper_array = decoder.Decode("t", "[" + top_array + "]", 0, &r);
  CHECK(deeper_array.message() == "payload is not valid JSON");
}

TEST_CASE("a reused record keeps no fields from the previous reading") {
  DecodeOptions o;
  o.time_field = "ts";
  o.topic_fields = *TopicPattern::Parse("sensors/{site}/{device}");
  JsonDecoder decoder(o);
  Record r;
  REQUIRE(decoder.Decode(kTopic, R"({"ts":1,"z":"a long string value beyond SSO","a":1})", 0, &r)
              .ok());
  REQUIRE(r.fields.size() == 5);  // site, device, then the payload's fields by name
  CHECK(r.fields[2] == Field{"a", int64_t{1}});
  CHECK(r.fields[3] == Field{"ts", int64_t{1}});
  CHECK(r.fields[4] == Field{"z", std::string("a long string value beyond SSO")});
  Status s = decoder.Decode(kTopic, R"({"ts":2,"b":true,"c":[)", 0, &r);
  CHECK(s.message() == "payload is not valid JSON");
  REQUIRE(r.fields.size() == 2);  // the topic captures, as before
  REQUIRE(decoder.Decode(kTopic, R"({"ts":3,"b":true})", 0, &r).ok());
  REQUIRE(r.fields.size() == 4);
  CHECK(r.fields[2] == Field{"b", true});
  CHECK(r.fields[3] == Field{"ts", int64_t{3}});
  CHECK(r.event_time_ms == 3);
}

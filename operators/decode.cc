#include "operators/decode.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

namespace sluice::operators {
namespace {

using Json = nlohmann::json;

// The payload scanner below replaces a full nlohmann parse on the hot path: it
// validates the whole payload exactly as nlohmann::json::parse would (same
// accept/reject verdicts, same numbers, same decoded strings) but builds only
// the values a pipeline reads. tests/operators/decode_fuzz_test.cpp checks it
// against nlohmann differentially; keep the two in step when changing either.

// Containers nested deeper than this (the payload object counts) are refused.
// nlohmann has no limit; ours keeps the validator's state in one register and
// bounds the recursion of nlohmann's dump() on the RawJson path.
constexpr int kMaxDepth = 64;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

void SkipWs(const char*& p, const char* end) {
  while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) ++p;
}

// Bytes that stand for themselves inside a JSON string: printable ASCII other
// than '"' and '\'. Everything else needs a closer look.
constexpr auto kPlainStringByte = [] {
  std::array<bool, 256> t{};
  for (int c = 0x20; c < 0x80; ++c) t[c] = c != '"' && c != '\\';
  return t;
}();

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Reads the XXXX of a \uXXXX escape at p.
bool ReadHex4(const char*& p, const char* end, uint32_t* out) {
  if (end - p < 4) return false;
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    int d = HexDigit(p[i]);
    if (d < 0) return false;
    v = v << 4 | static_cast<uint32_t>(d);
  }
  *out = v;
  p += 4;
  return true;
}

// One escape sequence, p at the backslash. Surrogates must come as a high-low
// pair: a lone one has no UTF-8 form, and nlohmann refuses it.
bool ScanEscape(const char*& p, const char* end) {
  ++p;
  if (p == end) return false;
  switch (*p++) {
    case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
      return true;
    case 'u': {
      uint32_t cp;
      if (!ReadHex4(p, end, &cp)) return false;
      if (cp >= 0xDC00 && cp <= 0xDFFF) return false;
      if (cp < 0xD800 || cp > 0xDBFF) return true;
      if (end - p < 2 || p[0] != '\\' || p[1] != 'u') return false;
      p += 2;
      uint32_t low;
      return ReadHex4(p, end, &low) && low >= 0xDC00 && low <= 0xDFFF;
    }
    default:
      return false;
  }
}

// One UTF-8 sequence, p at its lead byte (>= 0x80). Well-formed sequences only
// (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF).
bool ScanUtf8(const char*& p, const char* end) {
  auto byte = [&](ptrdiff_t i) { return static_cast<unsigned char>(p[i]); };
  unsigned char c = byte(0);
  int n;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return false;
  }
  if (end - p < n || byte(1) < lo || byte(1) > hi) return false;
  for (int i = 2; i < n; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xBF) return false;
  }
  p += n;
  return true;
}

// A string's contents, p just past the opening quote; on success p is just past
// the closing quote. *escaped: the contents hold escapes, so their decoded
// form (DecodeString) differs from the raw text.
bool ScanString(const char*& p, const char* end, bool* escaped) {
  *escaped = false;
  while (true) {
    while (p < end && kPlainStringByte[static_cast<unsigned char>(*p)]) ++p;
    if (p == end) return false;
    unsigned char c = static_cast<unsigned char>(*p);
    if (c == '"') {
      ++p;
      return true;
    }
    if (c == '\\') {
      *escaped = true;
      if (!ScanEscape(p, end)) return false;
    } else if (c < 0x20 || !ScanUtf8(p, end)) {
      return false;  // an unescaped control character, or malformed UTF-8
    }
  }
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | cp >> 6));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | cp >> 12));
    out->push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | cp >> 18));
    out->push_back(static_cast<char>(0x80 | (cp >> 12 & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// The decoded form of string contents ScanString accepted.
void DecodeString(std::string_view raw, std::string* out) {
  out->clear();
  const char* p = raw.data();
  const char* end = p + raw.size();
  while (p < end) {
    const char* backslash = static_cast<const char*>(std::memchr(p, '\\', end - p));
    if (backslash == nullptr) backslash = end;
    out->append(p, backslash);
    p = backslash;
    if (p == end) break;
    char e = p[1];
    p += 2;
    switch (e) {
      case 'b': out->push_back('\b'); break;
      case 'f': out->push_back('\f'); break;
      case 'n': out->push_back('\n'); break;
      case 'r': out->push_back('\r'); break;
      case 't': out->push_back('\t'); break;
      case 'u': {
        uint32_t cp = 0;
        ReadHex4(p, end, &cp);
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          uint32_t low = 0;
          p += 2;  // the "\u" of the low surrogate
          ReadHex4(p, end, &low);
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        AppendUtf8(cp, out);
        break;
      }
      default: out->push_back(e); break;  // '"', '\\', '/'
    }
  }
}

// The power of ten of the leading significant digit of a nonzero JSON number
// (exponents saturate far beyond any double).
int64_t DecimalExponent(std::string_view token) {
  size_t i = token[0] == '-' ? 1 : 0;
  int64_t e10 = 0;
  size_t int_start = i;
  while (i < token.size() && IsDigit(token[i])) ++i;
  if (token[int_start] != '0') {
    e10 = static_cast<int64_t>(i - int_start) - 1;
  } else if (i < token.size() && token[i] == '.') {
    ++i;
    int64_t zeros = 0;
    for (; i < token.size() && token[i] == '0'; ++i) ++zeros;
    e10 = -zeros - 1;
  }
  while (i < token.size() && token[i] != 'e' && token[i] != 'E') ++i;
  if (i < token.size()) {
    ++i;
    bool negative = token[i] == '-';
    if (token[i] == '-' || token[i] == '+') ++i;
    int64_t exponent = 0;
    for (; i < token.size(); ++i) {
      if (exponent < 1'000'000'000'000) exponent = exponent * 10 + (token[i] - '0');
    }
    e10 += negative ? -exponent : exponent;
  }
  return e10;
}

// A JSON number token as nlohmann reads it into a double: correctly rounded
// (what strtod gives), a magnitude too small becomes a signed zero, and one too
// large is refused (nlohmann rejects non-finite numbers).
bool ToDouble(std::string_view token, double* out) {
  auto [ptr, ec] = std::from_chars(token.data(), token.data() + token.size(), *out);
  if (ec == std::errc()) return true;
  // from_chars reports both underflow and overflow as out of range; only the
  // token's magnitude tells them apart.
  if (DecimalExponent(token) < 0) {
    *out = token[0] == '-' ? -0.0 : 0.0;
    return true;
  }
  return false;
}

// A value the decoder keeps: the time field or a projected field.
struct Scalar {
  enum class Kind { kNull, kBool, kInt, kDouble, kString, kNested };
  Kind kind = Kind::kNull;
  bool b = false;
  int64_t i = 0;
  double d = 0;
  std::string_view text;  // string contents (raw), or a nested value's JSON text
  bool escaped = false;   // kString: text holds escapes
};

// A number at p (a '-' or a digit). With value null the number is only
// validated, and converted only when it might overflow.
bool ScanNumber(const char*& p, const char* end, Scalar* value) {
  const char* start = p;
  bool negative = *p == '-';
  if (negative && ++p == end) return false;
  uint64_t mantissa = 0;
  int64_t int_digits = 0;
  if (*p == '0') {
    ++p;
    int_digits = 1;
  } else if (IsDigit(*p)) {
    for (; p < end && IsDigit(*p); ++p, ++int_digits) {
      if (int_digits < 19) mantissa = mantissa * 10 + static_cast<uint64_t>(*p - '0');
    }
  } else {
    return false;
  }
  bool integral = true;
  if (p < end && *p == '.') {
    integral = false;
    if (++p == end || !IsDigit(*p)) return false;
    while (p < end && IsDigit(*p)) ++p;
  }
  int64_t exponent = 0;
  if (p < end && (*p == 'e' || *p == 'E')) {
    integral = false;
    ++p;
    bool exponent_negative = p < end && *p == '-';
    if (p < end && (*p == '-' || *p == '+')) ++p;
    if (p == end || !IsDigit(*p)) return false;
    for (; p < end && IsDigit(*p); ++p) {
      if (exponent < 1'000'000'000) exponent = exponent * 10 + (*p - '0');
    }
    if (exponent_negative) exponent = -exponent;
  }
  std::string_view token(start, static_cast<size_t>(p - start));

  if (value == nullptr) {
    // Below 1e308 nothing can overflow; above, convert to find out.
    int64_t magnitude_bound = (start[negative ? 1 : 0] == '0' ? 0 : int_digits - 1) + exponent;
    if (magnitude_bound < 308) return true;
    double ignored;
    return ToDouble(token, &ignored);
  }
  if (integral) {
    // As with nlohmann: an integer that fits int64 stays exact; beyond, a double.
    if (int_digits <= 18) {
      value->kind = Scalar::Kind::kInt;
      value->i = negative ? -static_cast<int64_t>(mantissa) : static_cast<int64_t>(mantissa);
      return true;
    }
    auto [ptr, ec] = std::from_chars(token.data(), token.data() + token.size(), value->i);
    if (ec == std::errc()) {
      value->kind = Scalar::Kind::kInt;
      return true;
    }
  }
  value->kind = Scalar::Kind::kDouble;
  return ToDouble(token, &value->d);
}

bool ScanLiteral(const char*& p, const char* end, std::string_view literal) {
  if (static_cast<size_t>(end - p) < literal.size() ||
      std::memcmp(p, literal.data(), literal.size()) != 0) {
    return false;
  }
  p += literal.size();
  return true;
}

// A member's key and colon, p at the key's opening quote; on success p is at
// the member's value. *key holds the raw key contents.
bool ScanKey(const char*& p, const char* end, std::string_view* key, bool* escaped) {
  if (p == end || *p != '"') return false;
  const char* start = ++p;
  if (!ScanString(p, end, escaped)) return false;
  *key = std::string_view(start, static_cast<size_t>(p - 1 - start));
  SkipWs(p, end);
  if (p == end || *p != ':') return false;
  ++p;
  SkipWs(p, end);
  return true;
}

// Validates one value of any kind, p at its first byte; on success p is just
// past it. `depth` containers enclose it. Iterative: a hostile payload cannot
// exhaust the stack, and no allocation is needed.
bool SkipValue(const char*& p, const char* end, int depth) {
  uint64_t is_object = 0;  // bit n: the container opened at level n+1 here is an object
  int level = 0;
  std::string_view key;
  bool escaped;
  while (true) {
    if (p == end) return false;
    switch (*p) {
      case '{':
      case '[': {
        if (depth + level >= kMaxDepth) return false;
        bool object = *p == '{';
        ++p;
        if (object) {
          is_object |= uint64_t{1} << level;
        } else {
          is_object &= ~(uint64_t{1} << level);
        }
        ++level;
        SkipWs(p, end);
        if (p < end && *p == (object ? '}' : ']')) {
          ++p;
          --level;
          break;  // empty: on to what follows it
        }
        if (object && !ScanKey(p, end, &key, &escaped)) return false;
        continue;  // at the first element
      }
      case '"':
        ++p;
        if (!ScanString(p, end, &escaped)) return false;
        break;
      case 't':
        if (!ScanLiteral(p, end, "true")) return false;
        break;
      case 'f':
        if (!ScanLiteral(p, end, "false")) return false;
        break;
      case 'n':
        if (!ScanLiteral(p, end, "null")) return false;
        break;
      default:
        if (*p != '-' && !IsDigit(*p)) return false;
        if (!ScanNumber(p, end, nullptr)) return false;
        break;
    }
    // After a value: close containers until one has another element.
    while (true) {
      if (level == 0) return true;
      SkipWs(p, end);
      if (p == end) return false;
      bool object = (is_object >> (level - 1) & 1) != 0;
      if (*p == ',') {
        ++p;
        SkipWs(p, end);
        if (object && !ScanKey(p, end, &key, &escaped)) return false;
        break;
      }
      if (*p != (object ? '}' : ']')) return false;
      ++p;
      --level;
    }
  }
}

// A member value the decoder keeps, p at its first byte (inside the payload
// object).
bool ScanValue(const char*& p, const char* end, Scalar* out) {
  if (p == end) return false;
  switch (*p) {
    case '"': {
      const char* start = ++p;
      if (!ScanString(p, end, &out->escaped)) return false;
      out->kind = Scalar::Kind::kString;
      out->text = std::string_view(start, static_cast<size_t>(p - 1 - start));
      return true;
    }
    case 't':
    case 'f':
      out->kind = Scalar::Kind::kBool;
      out->b = *p == 't';
      return ScanLiteral(p, end, out->b ? "true" : "false");
    case 'n':
      out->kind = Scalar::Kind::kNull;
      return ScanLiteral(p, end, "null");
    case '{':
    case '[': {
      const char* start = p;
      if (!SkipValue(p, end, 1)) return false;
      out->kind = Scalar::Kind::kNested;
      out->text = std::string_view(start, static_cast<size_t>(p - start));
      return true;
    }
    default:
      if (*p != '-' && !IsDigit(*p)) return false;
      return ScanNumber(p, end, out);
  }
}

// The Value the nlohmann DOM used to give.
void SetValue(const Scalar& s, Value* v) {
  switch (s.kind) {
    case Scalar::Kind::kNull: *v = std::monostate{}; break;
    case Scalar::Kind::kBool: *v = s.b; break;
    case Scalar::Kind::kInt: *v = s.i; break;
    case Scalar::Kind::kDouble: *v = s.d; break;
    case Scalar::Kind::kString: {
      std::string& str = v->emplace<std::string>();
      if (s.escaped) {
        DecodeString(s.text, &str);
      } else {
        str.assign(s.text);
      }
      break;
    }
    case Scalar::Kind::kNested:
      // Rare: nlohmann renders it so RawJson text stays byte-for-byte as before
      // (number formatting, escapes, duplicate keys).
      *v = RawJson{Json::parse(s.text.begin(), s.text.end(), nullptr, false).dump()};
      break;
  }
}

// Payload fields sorted by name, and of duplicate names only the last: what
// iterating nlohmann's object (a std::map that keeps the last value) gave.
void SortAndDedupe(std::vector<Field>* fields, size_t first) {
  auto by_name = [](const Field& a, const Field& b) { return a.name < b.name; };
  auto begin = fields->begin() + static_cast<ptrdiff_t>(first);
  if (fields->end() - begin > 16) {
    std::stable_sort(begin, fields->end(), by_name);
  } else {
    // Insertion sort: stable, and no allocation for a reading's few fields.
    for (auto it = begin; it < fields->end(); ++it) {
      for (auto j = it; j > begin && by_name(*j, *(j - 1)); --j) std::iter_swap(j, j - 1);
    }
  }
  size_t kept = first;
  for (size_t i = first; i < fields->size(); ++i) {
    if (i + 1 < fields->size() && (*fields)[i + 1].name == (*fields)[i].name) continue;
    if (kept != i) (*fields)[kept] = std::move((*fields)[i]);
    ++kept;
  }
  fields->erase(fields->begin() + static_cast<ptrdiff_t>(kept), fields->end());
}

// nlohmann's type_name() of the value starting with `c`.
const char* TypeName(char c) {
  switch (c) {
    case '[': return "array";
    case '"': return "string";
    case 't': case 'f': return "boolean";
    case 'n': return "null";
    default: return "number";
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

// "42 s", "3.5 min", "2.0 h", "365.0 days": how far ahead, for a reason.
std::string AheadText(int64_t ms) {
  char text[32];
  const double s = static_cast<double>(ms) / 1000;
  if (s < 120) {
    std::snprintf(text, sizeof text, "%.0f s", s);
  } else if (s < 7200) {
    std::snprintf(text, sizeof text, "%.1f min", s / 60);
  } else if (s < 2 * 86400) {
    std::snprintf(text, sizeof text, "%.1f h", s / 3600);
  } else {
    std::snprintf(text, sizeof text, "%.1f days", s / 86400);
  }
  return text;
}

int DaysInMonth(int year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return month == 2 && leap ? 29 : kDays[month - 1];
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

// `p` at an object whose dotted path is `path`: adds the nested names the
// projection wants as fields (marked nested), descending only into objects
// that hold one, and leaves p past the object.
bool ExtractNested(const Projection& projection, const char*& p, const char* end, std::string& path,
                   int depth, std::vector<Field>* fields) {
  if (depth >= kMaxDepth) return false;
  ++p;  // '{'
  SkipWs(p, end);
  if (p < end && *p == '}') {
    ++p;
    return true;
  }
  std::string key_buffer;
  while (true) {
    std::string_view key;
    bool escaped;
    if (!ScanKey(p, end, &key, &escaped)) return false;
    if (escaped) {
      DecodeString(key, &key_buffer);
      key = key_buffer;
    }
    const size_t parent = path.size();
    path += '.';
    path += key;
    const bool wanted = projection.WantsNested(path);
    const bool under = p < end && *p == '{' && projection.NestedUnder(path);
    if (wanted) {  // "a.b" whole; with "a.b.c" wanted too, read again below
      const char* value = p;
      Scalar s;
      if (!ScanValue(value, end, &s)) return false;
      Field& f = fields->emplace_back();
      f.name = path;
      f.nested = true;
      SetValue(s, &f.value);
      if (!under) p = value;
    }
    if (under) {
      if (!ExtractNested(projection, p, end, path, depth + 1, fields)) return false;
    } else if (!wanted && !SkipValue(p, end, depth + 1)) {
      return false;
    }
    path.resize(parent);
    SkipWs(p, end);
    if (p == end) return false;
    if (*p == '}') {
      ++p;
      return true;
    }
    if (*p != ',') return false;
    ++p;
    SkipWs(p, end);
  }
}

}  // namespace

bool Projection::Wants(std::string_view name) const {
  if (all) return true;
  return std::find(names.begin(), names.end(), name) != names.end();
}

bool Projection::WantsNested(std::string_view path) const {
  return std::find(nested.begin(), nested.end(), path) != nested.end();
}

bool Projection::NestedUnder(std::string_view path) const {
  return std::any_of(nested.begin(), nested.end(), [&](const std::string& n) {
    return n.size() > path.size() && n[path.size()] == '.' && n.compare(0, path.size(), path) == 0;
  });
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
  if (month < 1 || month > 12 || day < 1 || day > DaysInMonth(year, month) || hour > 23 ||
      minute > 59 || second > 60) {
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
  const size_t captures = out->fields.size();
  // On failure *out holds the topic captures only, as before.
  auto fail = [&](std::string_view reason) {
    out->fields.erase(out->fields.begin() + static_cast<ptrdiff_t>(captures), out->fields.end());
    return Status::InvalidArgument(reason);
  };
  constexpr std::string_view kInvalidJson = "payload is not valid JSON";

  const char* p = payload.data();
  const char* const end = p + payload.size();
  // nlohmann skips a UTF-8 byte order mark at the very start.
  if (payload.size() >= 3 && std::memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3;
  SkipWs(p, end);
  if (p == end) return fail(kInvalidJson);
  // nlohmann ends its input at a NUL byte where the next token would start, so
  // a device that publishes a C string with its terminator has always been
  // accepted; keep accepting it.
  auto at_end = [&] {
    SkipWs(p, end);
    return p == end || *p == '\0';
  };
  if (*p != '{') {
    const char* value = p;
    if (!SkipValue(p, end, 0) || !at_end()) return fail(kInvalidJson);
    return fail(std::string("payload is a JSON ") + TypeName(*value) + ", expected an object");
  }

  bool has_time = false;
  Scalar time;
  std::string_view time_text;  // the time value's JSON text, for the error message
  std::string key_buffer;      // decoded keys that hold escapes
  ++p;
  SkipWs(p, end);
  if (p < end && *p == '}') {
    ++p;
  } else {
    while (true) {
      std::string_view key;
      bool escaped;
      if (!ScanKey(p, end, &key, &escaped)) return fail(kInvalidJson);
      if (escaped) {
        DecodeString(key, &key_buffer);
        key = key_buffer;
      }
      bool is_time = options_.time_field && key == *options_.time_field;
      bool wanted = options_.projection.Wants(key);
      if (!options_.projection.nested.empty() && p < end && *p == '{' &&
          options_.projection.NestedUnder(key)) {
        // Reads a copy of the position: the object is then taken or skipped
        // below as any other value.
        const char* object = p;
        std::string path(key);
        if (!ExtractNested(options_.projection, object, end, path, 1, &out->fields)) {
          return fail(kInvalidJson);
        }
      }
      // A topic capture names the device that sent it: it wins over a payload field.
      for (size_t i = 0; wanted && i < captures; ++i) {
        if (out->fields[i].name == key) wanted = false;
      }
      if (is_time || wanted) {
        const char* value = p;
        Scalar s;
        if (!ScanValue(p, end, &s)) return fail(kInvalidJson);
        if (is_time) {  // a duplicate key: the last value counts
          has_time = true;
          time = s;
          time_text = std::string_view(value, static_cast<size_t>(p - value));
        }
        if (wanted) {
          Field& f = out->fields.emplace_back();
          f.name.assign(key);
          SetValue(s, &f.value);
        }
      } else if (!SkipValue(p, end, 1)) {
        return fail(kInvalidJson);
      }
      SkipWs(p, end);
      if (p == end) return fail(kInvalidJson);
      if (*p == '}') {
        ++p;
        break;
      }
      if (*p != ',') return fail(kInvalidJson);
      ++p;
      SkipWs(p, end);
    }
  }
  if (!at_end()) return fail(kInvalidJson);

  if (options_.time_field) {
    if (!has_time) return fail("payload has no time field '" + *options_.time_field + "'");
    std::optional<int64_t> t;
    if (options_.time_unit == TimeUnit::kRfc3339) {
      if (time.kind == Scalar::Kind::kString) {
        if (time.escaped) {
          std::string decoded;
          DecodeString(time.text, &decoded);
          t = ParseRfc3339Millis(decoded);
        } else {
          t = ParseRfc3339Millis(time.text);
        }
      }
    } else if (time.kind == Scalar::Kind::kInt) {
      t = TimeFromNumber(static_cast<double>(time.i), options_.time_unit);
      // Milliseconds stay exact, with no detour through double.
      if (t && options_.time_unit == TimeUnit::kMillis) t = time.i;
    } else if (time.kind == Scalar::Kind::kDouble) {
      // Integers beyond int64 land here too; none is a usable time in any unit.
      t = TimeFromNumber(time.d, options_.time_unit);
    }
    if (!t) {
      // Rare: nlohmann renders the value so the message reads as before.
      std::string shown = Json::parse(time_text.begin(), time_text.end(), nullptr, false).dump();
      return fail("time field '" + *options_.time_field + "' is " + shown.substr(0, 64) +
                  ", expected " +
                  (options_.time_unit == TimeUnit::kRfc3339
                       ? std::string("an RFC 3339 timestamp string")
                       : std::string("a number in ") + UnitName(options_.time_unit)));
    }
    if (options_.max_ahead_ms > 0 && *t - arrival_ms > options_.max_ahead_ms) {
      // A clock set wrong (a year, a time zone) would move the watermark of
      // every window pipeline that far ahead, and every other device's
      // readings would be late from then on.
      return fail("event time " + std::to_string(*t) + " is " + AheadText(*t - arrival_ms) +
                  " ahead of the gateway's clock (more than time.max_ahead, " +
                  AheadText(options_.max_ahead_ms) + "): is the device's clock right?");
    }
    out->event_time_ms = *t;
  }

  SortAndDedupe(&out->fields, captures);
  return Status::Ok();
}

}  // namespace sluice::operators

#include "config/units.h"

#include <cstdint>
#include <limits>
#include <string>

#include "config/units_internal.h"

namespace sluice::config {
namespace {

// Fractions are multiplied by the unit before dividing by their scale; with
// up to 9 fraction digits and units up to 2^40 that needs more than 64 bits.
__extension__ using Uint128 = unsigned __int128;

constexpr std::string_view kDurationExpected = "expected a duration such as 500ms, 10s, 1m, 2h, 1d";
constexpr std::string_view kSizeExpected =
    "expected a size such as 512MiB, 64MB, 4 KiB or 1024 (bytes); units: B, KiB, MiB, "
    "GiB, TiB (powers of 1024), KB, MB, GB, TB (powers of 1000)";
// Fraction digits beyond this would only matter below a nanosecond or a byte.
constexpr int kMaxFractionDigits = 9;

Status Invalid(std::string_view expected, std::string_view shown) {
  std::string m(expected);
  m += "; got '";
  m += shown;
  m += "'";
  return Status::InvalidArgument(m);
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsSpace(char c) { return c == ' ' || c == '\t'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

void SkipSpaces(std::string_view s, size_t* i) {
  while (*i < s.size() && IsSpace(s[*i])) ++*i;
}

// A decimal number kept exact: whole + fraction / fraction_scale.
struct Decimal {
  uint64_t whole = 0;
  uint64_t fraction = 0;
  uint64_t fraction_scale = 1;
  bool has_point = false;
};

enum class NumberResult { kOk, kMalformed, kTooLarge, kTooPrecise };

// Reads "digits[.digits]" at s[*i] and advances *i past it.
NumberResult ReadDecimal(std::string_view s, size_t* i, Decimal* out) {
  const size_t start = *i;
  bool overflow = false;
  while (*i < s.size() && IsDigit(s[*i])) {
    const uint64_t digit = static_cast<uint64_t>(s[*i] - '0');
    if (__builtin_mul_overflow(out->whole, uint64_t{10}, &out->whole) ||
        __builtin_add_overflow(out->whole, digit, &out->whole)) {
      overflow = true;
    }
    ++*i;
  }
  if (*i == start) return NumberResult::kMalformed;
  if (*i < s.size() && s[*i] == '.') {
    out->has_point = true;
    ++*i;
    const size_t fraction_start = *i;
    while (*i < s.size() && IsDigit(s[*i])) ++*i;
    std::string_view digits = s.substr(fraction_start, *i - fraction_start);
    if (digits.empty()) return NumberResult::kMalformed;  // "1." reads like a typo
    while (!digits.empty() && digits.back() == '0') digits.remove_suffix(1);
    if (digits.size() > static_cast<size_t>(kMaxFractionDigits)) return NumberResult::kTooPrecise;
    for (char c : digits) {
      out->fraction = out->fraction * 10 + static_cast<uint64_t>(c - '0');
      out->fraction_scale *= 10;
    }
  }
  return overflow ? NumberResult::kTooLarge : NumberResult::kOk;
}

enum class ScaleResult { kOk, kOverflow, kNotWhole };

// *out = d * unit exactly, or says why it cannot be.
ScaleResult Scale(const Decimal& d, uint64_t unit, uint64_t* out) {
  uint64_t whole = 0;
  if (__builtin_mul_overflow(d.whole, unit, &whole)) return ScaleResult::kOverflow;
  const Uint128 fraction = static_cast<Uint128>(d.fraction) * unit;
  if (fraction % d.fraction_scale != 0) return ScaleResult::kNotWhole;
  const uint64_t fraction_part = static_cast<uint64_t>(fraction / d.fraction_scale);
  if (__builtin_add_overflow(whole, fraction_part, out)) return ScaleResult::kOverflow;
  return ScaleResult::kOk;
}

struct DurationUnit {
  std::string_view name;
  uint64_t millis;
  int rank;  // larger units first when chained
};

// "ms" before "m" so that the longest name wins.
constexpr DurationUnit kDurationUnits[] = {
    {"ms", 1, 0},
    {"s", 1000, 1},
    {"m", 60 * 1000, 2},
    {"h", 60 * 60 * 1000, 3},
    {"d", 24 * 60 * 60 * 1000, 4},
};

struct SizeUnit {
  std::string_view name;
  uint64_t bytes;
};

constexpr SizeUnit kSizeUnits[] = {
    {"B", 1},
    {"KiB", uint64_t{1} << 10},
    {"MiB", uint64_t{1} << 20},
    {"GiB", uint64_t{1} << 30},
    {"TiB", uint64_t{1} << 40},
    {"KB", 1000},
    {"kB", 1000},
    {"MB", 1000 * 1000},
    {"GB", 1000 * 1000 * 1000},
    {"TB", uint64_t{1000} * 1000 * 1000 * 1000},
};

}  // namespace

namespace internal {

StatusOr<std::chrono::milliseconds> ParseDurationShown(std::string_view text,
                                                       std::string_view shown) {
  const std::string_view s = Trim(text);
  if (s.empty()) return Invalid(kDurationExpected, shown);
  if (s.front() == '-') return Invalid("expected a non-negative duration such as 10s", shown);

  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  const std::string too_large =
      "expected a duration of at most " + std::to_string(kMax / (24 * 60 * 60 * 1000)) + "d";
  uint64_t total = 0;
  int last_rank = 1000;
  bool first = true;
  size_t i = 0;
  while (i < s.size()) {
    Decimal number;
    switch (ReadDecimal(s, &i, &number)) {
      case NumberResult::kOk:
        break;
      case NumberResult::kMalformed:
        return Invalid(kDurationExpected, shown);
      case NumberResult::kTooLarge:
        return Invalid(too_large, shown);
      case NumberResult::kTooPrecise:
        return Invalid("expected a whole number of milliseconds", shown);
    }
    SkipSpaces(s, &i);
    if (i == s.size()) {
      // A bare "10" could mean seconds or milliseconds; make the author say.
      return Invalid(first ? "expected a unit (ms, s, m, h or d) after the number, such as 10s"
                           : "expected a unit (ms, s, m, h or d) after every number, such as 1h30m",
                     shown);
    }
    const DurationUnit* unit = nullptr;
    for (const DurationUnit& u : kDurationUnits) {
      if (s.substr(i, u.name.size()) == u.name) {
        unit = &u;
        break;
      }
    }
    if (unit == nullptr) return Invalid(kDurationExpected, shown);
    i += unit->name.size();
    if (i < s.size() && IsAlpha(s[i])) return Invalid(kDurationExpected, shown);  // "10sec"
    if (unit->rank >= last_rank) {
      return Invalid("expected units from largest to smallest, each at most once (such as 1h30m)",
                     shown);
    }
    last_rank = unit->rank;
    uint64_t part = 0;
    switch (Scale(number, unit->millis, &part)) {
      case ScaleResult::kOk:
        break;
      case ScaleResult::kOverflow:
        return Invalid(too_large, shown);
      case ScaleResult::kNotWhole:
        return Invalid("expected a whole number of milliseconds", shown);
    }
    if (__builtin_add_overflow(total, part, &total) || total > kMax) {
      return Invalid(too_large, shown);
    }
    first = false;
    SkipSpaces(s, &i);
  }
  return std::chrono::milliseconds(static_cast<int64_t>(total));
}

StatusOr<uint64_t> ParseSizeShown(std::string_view text, std::string_view shown) {
  const std::string_view s = Trim(text);
  if (s.empty()) return Invalid(kSizeExpected, shown);
  if (s.front() == '-') return Invalid("expected a non-negative size such as 64MiB", shown);
  const std::string too_large = "expected a size of at most " +
                                std::to_string(std::numeric_limits<uint64_t>::max()) + " bytes";

  size_t i = 0;
  Decimal number;
  switch (ReadDecimal(s, &i, &number)) {
    case NumberResult::kOk:
      break;
    case NumberResult::kMalformed:
      return Invalid(kSizeExpected, shown);
    case NumberResult::kTooLarge:
      return Invalid(too_large, shown);
    case NumberResult::kTooPrecise:
      return Invalid("expected a whole number of bytes", shown);
  }
  SkipSpaces(s, &i);
  const std::string_view unit_name = s.substr(i);
  if (unit_name.empty()) {
    if (number.has_point) {
      return Invalid("expected a whole number of bytes, or a unit as in 1.5MiB", shown);
    }
    return number.whole;
  }
  for (const SizeUnit& unit : kSizeUnits) {
    if (unit.name != unit_name) continue;
    uint64_t bytes = 0;
    switch (Scale(number, unit.bytes, &bytes)) {
      case ScaleResult::kOk:
        return bytes;
      case ScaleResult::kOverflow:
        return Invalid(too_large, shown);
      case ScaleResult::kNotWhole:
        return Invalid("expected a whole number of bytes", shown);
    }
  }
  return Invalid(kSizeExpected, shown);
}

}  // namespace internal

StatusOr<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  return internal::ParseDurationShown(text, text);
}

StatusOr<uint64_t> ParseSize(std::string_view text) { return internal::ParseSizeShown(text, text); }

}  // namespace sluice::config

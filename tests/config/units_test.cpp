// Durations and sizes as written in a config.
#include "config/units.h"

#include <catch2/catch.hpp>
#include <string>

namespace sluice::config {
namespace {

using std::chrono::milliseconds;

void RequireDuration(const std::string& text, int64_t millis) {
  INFO(text);
  StatusOr<milliseconds> d = ParseDuration(text);
  INFO(d.status().ToString());
  REQUIRE(d.ok());
  CHECK(d->count() == millis);
}

void RequireDurationError(const std::string& text, const std::string& message) {
  INFO(text);
  StatusOr<milliseconds> d = ParseDuration(text);
  REQUIRE_FALSE(d.ok());
  CHECK(d.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(d.status().message()), Catch::Contains(message));
  // Every error quotes what was given.
  CHECK_THAT(std::string(d.status().message()), Catch::EndsWith("; got '" + text + "'"));
}

void RequireSize(const std::string& text, uint64_t bytes) {
  INFO(text);
  StatusOr<uint64_t> s = ParseSize(text);
  INFO(s.status().ToString());
  REQUIRE(s.ok());
  CHECK(*s == bytes);
}

void RequireSizeError(const std::string& text, const std::string& message) {
  INFO(text);
  StatusOr<uint64_t> s = ParseSize(text);
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(s.status().message()), Catch::Contains(message));
  CHECK_THAT(std::string(s.status().message()), Catch::EndsWith("; got '" + text + "'"));
}

TEST_CASE("durations take ms s m h d", "[config][units]") {
  SECTION("each unit") {
    RequireDuration("500ms", 500);
    RequireDuration("10s", 10'000);
    RequireDuration("1m", 60'000);
    RequireDuration("2h", 7'200'000);
    RequireDuration("1d", 86'400'000);
  }
  SECTION("zero") {
    RequireDuration("0s", 0);
    RequireDuration("0ms", 0);
  }
  SECTION("chained from larger to smaller") {
    RequireDuration("1h30m", 5'400'000);
    RequireDuration("1d2h3m4s5ms", 86'400'000 + 7'200'000 + 180'000 + 4'000 + 5);
    RequireDuration("1m 30s", 90'000);
  }
  SECTION("spaces around and between number and unit") {
    RequireDuration("  10s  ", 10'000);
    RequireDuration("10 s", 10'000);
  }
  SECTION("decimals that come to whole milliseconds") {
    RequireDuration("1.5s", 1'500);
    RequireDuration("0.25m", 15'000);
    RequireDuration("1.500s", 1'500);
  }
  SECTION("leading zeros") { RequireDuration("0000000000000000000000010s", 10'000); }
  SECTION("the largest duration") { RequireDuration("106751991167d", 106751991167LL * 86'400'000); }
}

TEST_CASE("malformed durations are refused with what was expected", "[config][units]") {
  SECTION("unknown unit") {
    StatusOr<milliseconds> d = ParseDuration("10x");
    REQUIRE_FALSE(d.ok());
    CHECK(d.status().message() == "expected a duration such as 500ms, 10s, 1m, 2h, 1d; got '10x'");
  }
  SECTION("bare numbers are ambiguous") {
    RequireDurationError("10", "expected a unit (ms, s, m, h or d) after the number");
    RequireDurationError("0", "expected a unit");
    RequireDurationError("1h30", "after every number, such as 1h30m");
  }
  SECTION("negative") { RequireDurationError("-5s", "expected a non-negative duration"); }
  SECTION("empty or blank") {
    RequireDurationError("", "expected a duration such as");
    RequireDurationError("   ", "expected a duration such as");
  }
  SECTION("units out of order or repeated") {
    RequireDurationError("30m1h", "expected units from largest to smallest");
    RequireDurationError("1s1s", "each at most once");
    RequireDurationError("1s500ms2s", "expected units from largest to smallest");
  }
  SECTION("finer than a millisecond") {
    RequireDurationError("1.5ms", "expected a whole number of milliseconds");
    RequireDurationError("0.0001s", "expected a whole number of milliseconds");
    RequireDurationError("1.0000000001s", "expected a whole number of milliseconds");
  }
  SECTION("not a number") {
    RequireDurationError("s", "expected a duration such as");
    RequireDurationError("1.s", "expected a duration such as");
    RequireDurationError(".5s", "expected a duration such as");
    RequireDurationError("+5s", "expected a duration such as");
    RequireDurationError("1e3ms", "expected a duration such as");
    RequireDurationError("10sec", "expected a duration such as");
    RequireDurationError("10S", "expected a duration such as");
    RequireDurationError("1h,30m", "expected a duration such as");
  }
  SECTION("overflow") {
    RequireDurationError("106751991168d", "expected a duration of at most 106751991167d");
    RequireDurationError("106751991167d23h", "expected a duration of at most");
    RequireDurationError("99999999999999999999999ms", "expected a duration of at most");
    RequireDurationError("18446744073709551615ms", "expected a duration of at most");
  }
}

TEST_CASE("sizes take binary and decimal units", "[config][units]") {
  SECTION("a bare integer is bytes") {
    RequireSize("0", 0);
    RequireSize("1024", 1024);
    RequireSize("18446744073709551615", UINT64_MAX);
  }
  SECTION("binary units") {
    RequireSize("1B", 1);
    RequireSize("4KiB", 4096);
    RequireSize("512MiB", 512ull << 20);
    RequireSize("2GiB", 2ull << 30);
    RequireSize("1TiB", 1ull << 40);
  }
  SECTION("decimal units") {
    RequireSize("1KB", 1000);
    RequireSize("1kB", 1000);
    RequireSize("64MB", 64'000'000);
    RequireSize("3GB", 3'000'000'000ull);
    RequireSize("2TB", 2'000'000'000'000ull);
  }
  SECTION("a space between number and unit") {
    RequireSize("4 KiB", 4096);
    RequireSize(" 64 MB ", 64'000'000);
  }
  SECTION("decimals that come to whole bytes") {
    RequireSize("1.5MiB", 1'572'864);
    RequireSize("0.5KiB", 512);
    RequireSize("1.5KB", 1500);
    RequireSize("2.0B", 2);
  }
  SECTION("the largest sizes") { RequireSize("16777215TiB", (16777215ull) << 40); }
}

TEST_CASE("malformed sizes are refused with what was expected", "[config][units]") {
  SECTION("unknown or ambiguous unit") {
    RequireSizeError("64M", "expected a size such as 512MiB, 64MB, 4 KiB or 1024 (bytes)");
    RequireSizeError("10XB", "units: B, KiB, MiB, GiB");
    RequireSizeError("1mib", "expected a size such as");
    RequireSizeError("1 K iB", "expected a size such as");
  }
  SECTION("negative") { RequireSizeError("-1", "expected a non-negative size"); }
  SECTION("empty or no number") {
    RequireSizeError("", "expected a size such as");
    RequireSizeError("MiB", "expected a size such as");
    RequireSizeError("1.MiB", "expected a size such as");
    RequireSizeError("1e6", "expected a size such as");
  }
  SECTION("fractions of a byte") {
    RequireSizeError("1.5", "expected a whole number of bytes, or a unit as in 1.5MiB");
    RequireSizeError("1.1KiB", "expected a whole number of bytes");
    RequireSizeError("0.5B", "expected a whole number of bytes");
    RequireSizeError("1.0000000001GiB", "expected a whole number of bytes");
  }
  SECTION("overflow") {
    RequireSizeError("18446744073709551616",
                     "expected a size of at most 18446744073709551615 bytes");
    RequireSizeError("16777216TiB", "expected a size of at most");
    RequireSizeError("99999999999999999999GiB", "expected a size of at most");
    RequireSizeError("18446744073709551615.5KiB", "expected a size of at most");
  }
}

}  // namespace
}  // namespace sluice::config

// QuantileSketch: accuracy against exact sample quantiles, merging, bounded
// memory, the compact encoding and its failure modes.
//
// "Exact quantile" throughout: sort the n values ascending, x[0..n-1], and
// take x[floor(q * (n - 1))]. sketch.h promises Quantile(q) within
// relative_accuracy of exactly that value; the tests assert the bound with no
// extra slack.
#include "operators/sketch.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace sluice::operators {
namespace {

const std::vector<double> kQuantiles = {0.001, 0.01, 0.1, 0.25, 0.5, 0.75,
                                        0.9,   0.95, 0.99, 0.999, 0.0, 1.0};

// Seeded generators, written out so the streams do not depend on the
// standard library's distribution algorithms.
class Gen {
 public:
  explicit Gen(uint64_t seed) : rng_(seed) {}
  // Uniform in (0, 1).
  double Unit() { return (static_cast<double>(rng_() >> 11) + 0.5) * 0x1.0p-53; }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Unit(); }
  // Box-Muller.
  double Normal(double mean, double sd) {
    const double r = std::sqrt(-2 * std::log(Unit()));
    return mean + sd * r * std::cos(2 * std::numbers::pi * Unit());
  }
  double LogNormal(double mu, double sigma) { return std::exp(Normal(mu, sigma)); }
  // Pareto with scale x_m and shape a: x_m / U^(1/a).
  double Pareto(double x_m, double a) { return x_m / std::pow(Unit(), 1 / a); }
  uint64_t Next() { return rng_(); }

 private:
  std::mt19937_64 rng_;
};

double ExactQuantile(const std::vector<double>& sorted, double q) {
  const auto rank =
      static_cast<size_t>(std::floor(q * static_cast<double>(sorted.size() - 1)));
  return sorted[rank];
}

// Checks the documented guarantee at every quantile in kQuantiles, plus every
// percent in between.
void CheckAccuracy(const QuantileSketch& s, std::vector<double> values) {
  std::sort(values.begin(), values.end());
  REQUIRE(s.count() == values.size());
  std::vector<double> qs = kQuantiles;
  for (int p = 1; p < 100; ++p) qs.push_back(p / 100.0);
  const double alpha = s.relative_accuracy();
  for (double q : qs) {
    const double exact = ExactQuantile(values, q);
    const double got = s.Quantile(q);
    INFO("q=" << q << " exact=" << exact << " sketch=" << got);
    CHECK(std::fabs(got - exact) <= alpha * std::fabs(exact));
  }
}

QuantileSketch SketchOf(const std::vector<double>& values, double alpha = 0.01,
                        int max_buckets = 2048) {
  QuantileSketch s(alpha, max_buckets);
  for (double v : values) s.Add(v);
  return s;
}

std::string Encode(const QuantileSketch& s) {
  std::string out;
  s.EncodeTo(&out);
  return out;
}

TEST_CASE("An empty sketch answers NaN") {
  QuantileSketch s;
  CHECK(s.count() == 0);
  CHECK(std::isnan(s.Quantile(0.5)));
  CHECK(std::isnan(s.Quantile(0)));
  CHECK_FALSE(s.collapsed());
  CHECK(s.relative_accuracy() == 0.01);
  CHECK(s.max_buckets() == 2048);
}

TEST_CASE("Small hand-checked inputs") {
  SECTION("five values") {
    // Sorted 10 20 30 40 50; rank floor(q * 4).
    QuantileSketch s = SketchOf({30, 10, 50, 20, 40});
    CHECK(s.count() == 5);
    CHECK(s.Quantile(0) == 10);      // rank 0 is the exact min
    CHECK(s.Quantile(1) == 50);      // rank 4 the exact max
    CHECK(std::fabs(s.Quantile(0.5) - 30) <= 0.3);   // rank 2
    CHECK(std::fabs(s.Quantile(0.74) - 30) <= 0.3);  // rank floor(2.96) = 2
    CHECK(std::fabs(s.Quantile(0.75) - 40) <= 0.4);  // rank 3
    CHECK(std::fabs(s.Quantile(0.99) - 40) <= 0.4);  // rank floor(3.96) = 3
  }
  SECTION("one value comes back exactly") {
    QuantileSketch s = SketchOf({-7.25});
    CHECK(s.Quantile(0.01) == -7.25);
    CHECK(s.Quantile(0.99) == -7.25);
  }
  SECTION("zeros are exact and sit between negatives and positives") {
    // Sorted -3 -2 0 0 0 1 4; rank floor(q * 6).
    QuantileSketch s = SketchOf({0, -2, 4, 0, 1, -3, -0.0});
    CHECK(s.Quantile(0.1) == -3);                    // rank 0, the exact min
    CHECK(std::fabs(s.Quantile(0.2) - -2) <= 0.02);  // rank 1
    CHECK(s.Quantile(0.34) == 0);                    // rank 2
    CHECK(s.Quantile(0.66) == 0);                    // rank 3
    CHECK(s.Quantile(0.7) == 0);                     // rank 4
    CHECK(std::fabs(s.Quantile(0.84) - 1) <= 0.01);  // rank 5
    CHECK(s.Quantile(1) == 4);                       // rank 6, the exact max
  }
  SECTION("q outside [0, 1] is clamped, NaN is NaN") {
    QuantileSketch s = SketchOf({1, 2, 3});
    CHECK(s.Quantile(-1) == 1);
    CHECK(s.Quantile(2) == 3);
    CHECK(std::isnan(s.Quantile(std::nan(""))));
  }
  SECTION("non-finite values are ignored") {
    QuantileSketch s = SketchOf({5, std::nan(""), std::numeric_limits<double>::infinity(),
                                 -std::numeric_limits<double>::infinity()});
    CHECK(s.count() == 1);
    CHECK(s.Quantile(0.5) == 5);
  }
}

TEST_CASE("Quantiles are within the relative accuracy of the exact sample quantiles") {
  Gen gen(20240611);
  std::vector<double> values;
  const int n = 200000;
  // Each section fills `values`, then checks.
  auto check = [&values](double alpha) {
    QuantileSketch s = SketchOf(values, alpha, QuantileSketch::kMaxMaxBuckets);
    CHECK_FALSE(s.collapsed());
    CheckAccuracy(s, values);
  };
  SECTION("uniform") {
    for (int i = 0; i < n; ++i) values.push_back(gen.Uniform(0, 1000));
    check(0.01);
  }
  SECTION("normal (Box-Muller)") {
    for (int i = 0; i < n; ++i) values.push_back(gen.Normal(50, 10));
    check(0.01);
  }
  SECTION("log-normal heavy tail") {
    for (int i = 0; i < n; ++i) values.push_back(gen.LogNormal(0, 2.5));
    check(0.01);
  }
  SECTION("Pareto heavy tail") {
    for (int i = 0; i < n; ++i) values.push_back(gen.Pareto(1e-3, 1.2));
    check(0.01);
  }
  SECTION("negatives, zeros and positives") {
    for (int i = 0; i < n; ++i) {
      const uint64_t kind = gen.Next() % 10;
      if (kind < 2) {
        values.push_back(0);
      } else if (kind < 6) {
        values.push_back(-gen.LogNormal(1, 2));
      } else {
        values.push_back(gen.Normal(20, 15));  // crosses zero too
      }
    }
    check(0.01);
  }
  SECTION("integers with many duplicates") {
    for (int i = 0; i < n; ++i) values.push_back(static_cast<double>(gen.Next() % 50) - 10);
    check(0.01);
  }
  SECTION("values across the whole double range") {
    for (int i = 0; i < n; ++i) {
      const double magnitude = std::pow(10.0, gen.Uniform(-300, 300));
      values.push_back(gen.Next() % 2 ? magnitude : -magnitude);
    }
    values.push_back(std::numeric_limits<double>::max());
    values.push_back(std::numeric_limits<double>::denorm_min());
    values.push_back(-std::numeric_limits<double>::max());
    values.push_back(-std::numeric_limits<double>::min());
    // 1233 orders of magnitude: about 72700 buckets at 1%, more than the
    // largest limit allows, so check 2% (36400 buckets) instead.
    check(0.02);
  }
}

TEST_CASE("Other accuracies keep their own bound") {
  Gen gen(7);
  std::vector<double> values;
  for (int i = 0; i < 50000; ++i) values.push_back(gen.LogNormal(3, 1));
  for (double alpha : {0.0001, 0.001, 0.05, 0.5}) {
    INFO("alpha=" << alpha);
    QuantileSketch s = SketchOf(values, alpha, QuantileSketch::kMaxMaxBuckets);
    CHECK(s.relative_accuracy() == alpha);
    CheckAccuracy(s, values);
  }
}

TEST_CASE("Merging equals adding everything to one sketch") {
  Gen gen(99);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<double> values;
    const int n = 1 + static_cast<int>(gen.Next() % 20000);
    for (int i = 0; i < n; ++i) {
      values.push_back(gen.Next() % 7 == 0 ? 0 : gen.Normal(0, 1) * gen.LogNormal(0, 3));
    }
    const int parts = 1 + static_cast<int>(gen.Next() % 5);
    std::vector<QuantileSketch> pieces(static_cast<size_t>(parts));
    for (double v : values) pieces[gen.Next() % pieces.size()].Add(v);
    QuantileSketch merged;
    for (const QuantileSketch& p : pieces) REQUIRE(merged.Merge(p).ok());
    // Not just as accurate: the same buckets (the width and order of counters
    // do not depend on the order of adds).
    CHECK(merged == SketchOf(values));
    CheckAccuracy(merged, values);
  }
}

TEST_CASE("Merging with a collapsed sketch equals adding everything") {
  Gen gen(5);
  std::vector<double> a;
  std::vector<double> b;
  for (int i = 0; i < 5000; ++i) a.push_back(std::pow(10.0, gen.Uniform(-3, 1)));
  for (int i = 0; i < 5000; ++i) b.push_back(std::pow(10.0, gen.Uniform(0, 3)));
  for (int i = 0; i < 5000; ++i) b.push_back(-std::pow(10.0, gen.Uniform(-3, 3)));
  QuantileSketch sa = SketchOf(a, 0.01, 256);
  QuantileSketch sb = SketchOf(b, 0.01, 256);
  REQUIRE(sa.Merge(sb).ok());
  std::vector<double> all = a;
  all.insert(all.end(), b.begin(), b.end());
  CHECK(sa.collapsed());
  CHECK(sa == SketchOf(all, 0.01, 256));
}

TEST_CASE("Merge refuses another relative accuracy and accepts itself") {
  QuantileSketch a(0.01);
  QuantileSketch b(0.02);
  a.Add(1);
  b.Add(2);
  const Status s = a.Merge(b);
  CHECK(s.code() == StatusCode::kInvalidArgument);
  CHECK(a.count() == 1);

  QuantileSketch c = SketchOf({1, 2, 3});
  REQUIRE(c.Merge(c).ok());
  CHECK(c == SketchOf({1, 2, 3, 1, 2, 3}));
}

TEST_CASE("Memory stays bounded for 10 million values over 20 orders of magnitude") {
  // 10^U(-10, 10) needs about 2303 buckets at alpha = 0.01; 2048 are kept, so
  // the smallest values (below about 1.6e-8, some 11% of them) fold into the
  // lowest kept bucket and every quantile above them keeps the bound.
  Gen gen(1);
  const size_t n = 10'000'000;
  std::vector<double> values;
  values.reserve(n);
  QuantileSketch s;
  size_t peak = 0;
  for (size_t i = 0; i < n; ++i) {
    values.push_back(std::pow(10.0, gen.Uniform(-10, 10)));
    s.Add(values.back());
    if (i % 4096 == 0) peak = std::max(peak, s.MemoryBytes());
  }
  peak = std::max(peak, s.MemoryBytes());
  const size_t region_bound =
      sketch_region::kRegionHeaderBytes + 2 * size_t{QuantileSketch::kDefaultMaxBuckets} * 8;
  INFO("peak MemoryBytes " << peak);
  CHECK(peak <= sizeof(QuantileSketch) + region_bound + 16);  // 16: allocator rounding
  CHECK(s.count() == n);
  CHECK(s.collapsed());

  for (double q : {0.001, 0.05, 0.2, 0.5, 0.9, 0.99, 0.999}) {
    const auto rank = static_cast<size_t>(std::floor(q * static_cast<double>(n - 1)));
    std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(rank),
                     values.end());
    const double exact = values[rank];
    const double got = s.Quantile(q);
    INFO("q=" << q << " exact=" << exact << " sketch=" << got);
    if (exact > 1e-7) {
      CHECK(std::fabs(got - exact) <= 0.01 * exact);
    } else {
      // Folded: reported at the edge of the kept range, above the true value.
      CHECK(got >= exact);
      CHECK(got < 1e-7);
    }
  }
}

TEST_CASE("The negative store folds its most negative values") {
  Gen gen(3);
  std::vector<double> values;
  for (int i = 0; i < 100000; ++i) values.push_back(-std::pow(10.0, gen.Uniform(0, 4)));
  // 256 buckets at alpha = 0.01 span a factor e^(256 * 0.02) ~ 167, from the
  // smallest magnitude (1) up: values below about -160 fold.
  QuantileSketch s = SketchOf(values, 0.01, 256);
  CHECK(s.collapsed());
  std::sort(values.begin(), values.end());
  for (double q : kQuantiles) {
    const double exact = ExactQuantile(values, q);
    const double got = s.Quantile(q);
    INFO("q=" << q << " exact=" << exact << " sketch=" << got);
    if (q == 0) {
      CHECK(got == exact);  // the exact min survives folding
    } else if (exact > -150) {
      CHECK(std::fabs(got - exact) <= 0.01 * std::fabs(exact));
    } else {
      CHECK(got >= exact);
      CHECK(got > -170);
    }
  }
}

TEST_CASE("Encoding round-trips") {
  Gen gen(11);
  std::vector<QuantileSketch> sketches;
  sketches.emplace_back();                       // empty
  sketches.push_back(SketchOf({0, 0, 0}));       // zeros only
  sketches.push_back(SketchOf({-1.5}));
  std::vector<double> mixed;
  for (int i = 0; i < 20000; ++i) {
    mixed.push_back(gen.Next() % 5 == 0 ? 0 : gen.Normal(0, 1) * gen.LogNormal(0, 4));
  }
  sketches.push_back(SketchOf(mixed));
  sketches.push_back(SketchOf(mixed, 0.001, 64));  // collapsed, other parameters
  std::vector<double> big;
  for (int i = 0; i < 70000; ++i) big.push_back(42);  // a counter past 16 bits
  sketches.push_back(SketchOf(big));

  std::string all;
  for (const QuantileSketch& s : sketches) {
    const std::string bytes = Encode(s);
    std::string_view in = bytes;
    StatusOr<QuantileSketch> back = QuantileSketch::DecodeFrom(&in);
    REQUIRE(back.ok());
    CHECK(in.empty());
    CHECK(*back == s);
    CHECK(back->collapsed() == s.collapsed());
    all += bytes;
  }
  // Back to back: each decode consumes exactly its own bytes.
  std::string_view in = all;
  for (const QuantileSketch& s : sketches) {
    StatusOr<QuantileSketch> back = QuantileSketch::DecodeFrom(&in);
    REQUIRE(back.ok());
    CHECK(*back == s);
  }
  CHECK(in.empty());
}

TEST_CASE("The encoding is compact") {
  // A sensor between 20 and 25 degrees: about a dozen buckets.
  Gen gen(2);
  QuantileSketch s;
  for (int i = 0; i < 10000; ++i) s.Add(gen.Uniform(20, 25));
  const std::string bytes = Encode(s);
  INFO("encoded bytes " << bytes.size());
  // header 2 + 8 + 2 + 1, two stores, min and max 16, ~12 counts of 2 bytes
  CHECK(bytes.size() < 64);
}

TEST_CASE("Decoding truncated or damaged input fails cleanly") {
  Gen gen(13);
  std::vector<double> values;
  for (int i = 0; i < 3000; ++i) {
    values.push_back(gen.Next() % 4 == 0 ? 0 : gen.Normal(0, 1) * gen.LogNormal(0, 3));
  }
  const std::string bytes = Encode(SketchOf(values));

  SECTION("every proper prefix is rejected") {
    for (size_t len = 0; len < bytes.size(); ++len) {
      std::string_view in(bytes.data(), len);
      StatusOr<QuantileSketch> s = QuantileSketch::DecodeFrom(&in);
      INFO("prefix " << len);
      REQUIRE_FALSE(s.ok());
      CHECK(s.status().code() == StatusCode::kDataLoss);
    }
  }
  SECTION("bad version, accuracy and bucket limit are rejected") {
    for (size_t at : {size_t{0}, size_t{1}, size_t{9}}) {  // version, flags, sign and exponent
      std::string bad = bytes;
      bad[at] = static_cast<char>(0xFF);
      std::string_view in = bad;
      StatusOr<QuantileSketch> s = QuantileSketch::DecodeFrom(&in);
      INFO("byte " << at);
      REQUIRE_FALSE(s.ok());
      CHECK(s.status().code() == StatusCode::kDataLoss);
    }
  }
  SECTION("flipped bits and random bytes either decode or fail with kDataLoss") {
    int failures = 0;
    for (int trial = 0; trial < 10000; ++trial) {
      std::string bad;
      if (trial % 2 == 0) {
        bad = bytes;
        const int flips = 1 + static_cast<int>(gen.Next() % 3);
        for (int f = 0; f < flips; ++f) {
          bad[gen.Next() % bad.size()] ^= static_cast<char>(1u << (gen.Next() % 8));
        }
      } else {
        bad.resize(gen.Next() % 64);
        for (char& c : bad) c = static_cast<char>(gen.Next());
        if (!bad.empty() && gen.Next() % 2) bad[0] = 1;  // get past the version
      }
      std::string_view in = bad;
      StatusOr<QuantileSketch> s = QuantileSketch::DecodeFrom(&in);
      if (!s.ok()) {
        ++failures;
        REQUIRE(s.status().code() == StatusCode::kDataLoss);
        continue;
      }
      // Whatever decodes is a usable sketch.
      for (double q : kQuantiles) (void)s->Quantile(q);
      QuantileSketch copy = *s;
      copy.Add(1);
      REQUIRE(copy.Merge(*s).code() != StatusCode::kDataLoss);
      std::string again = Encode(*s);
      std::string_view again_in = again;
      REQUIRE(QuantileSketch::DecodeFrom(&again_in).ok());
    }
    CHECK(failures > 0);
  }
}

TEST_CASE("Regions embedded in a buffer stay independent") {
  // Two regions back to back, as in an aggregate state: growing the first
  // moves the second without changing it.
  std::string buf = "prefix";
  const size_t first = buf.size();
  sketch_region::Append(buf, 0.01, 2048);
  const size_t second_before = buf.size();
  sketch_region::Append(buf, 0.01, 2048);
  sketch_region::Add(buf, second_before, -3);
  const std::string second_bytes = buf.substr(second_before);
  for (int i = 1; i <= 1000; ++i) sketch_region::Add(buf, first, i);
  const size_t second = first + sketch_region::Size(buf, first);
  CHECK(buf.substr(0, first) == "prefix");
  CHECK(buf.substr(second) == second_bytes);
  CHECK(sketch_region::Count(std::string_view(buf).substr(first)) == 1000);
  CHECK(std::fabs(sketch_region::Quantile(std::string_view(buf).substr(first), 0.5) - 500) <= 5);
  CHECK(sketch_region::Quantile(std::string_view(buf).substr(second), 0.5) == -3);

  StatusOr<size_t> size = sketch_region::Check(std::string_view(buf).substr(first), 0.01, 2048);
  REQUIRE(size.ok());
  CHECK(*size == second - first);
  CHECK_FALSE(sketch_region::Check(std::string_view(buf).substr(first), 0.02, 2048).ok());
  CHECK_FALSE(sketch_region::Check(std::string_view(buf).substr(first), 0.01, 1024).ok());
}

}  // namespace
}  // namespace sluice::operators

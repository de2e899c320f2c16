// HashSet64 against std::unordered_set on random operations.
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <unordered_set>
#include <vector>

#include "platform/hash_set64.h"

using sluice::HashSet64;

TEST_CASE("hash set: random inserts and erases agree with std::unordered_set") {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    std::mt19937_64 rng(seed);
    HashSet64 set;
    std::unordered_set<uint64_t> reference;
    // Few distinct values, many near-equal ones: their homes collide.
    std::vector<uint64_t> pool;
    for (int i = 0; i < 300; ++i) pool.push_back(rng() % 3 == 0 ? rng() : (rng() & 0xff));
    pool.push_back(0);
    pool.push_back(1ull << 63);
    for (int op = 0; op < 20000; ++op) {
      const uint64_t v = pool[rng() % pool.size()];
      const uint64_t stored = v == 0 ? 1 : v;  // documented: 0 is kept as 1
      INFO("seed " << seed << " op " << op << " value " << v);
      switch (rng() % 3) {
        case 0:
          REQUIRE(set.Insert(v) == reference.insert(stored).second);
          break;
        case 1:
          set.Erase(v);
          reference.erase(stored);
          break;
        default:
          REQUIRE(set.Contains(v) == (reference.count(stored) == 1));
      }
      REQUIRE(set.size() == reference.size());
    }
    for (uint64_t v : pool) CHECK(set.Contains(v) == (reference.count(v == 0 ? 1 : v) == 1));
  }
}

// Values made to share home slots (HashSet64 multiplies by the golden
// ratio and keeps the top bits): runs of dozens, wrapping around the end of
// the table, so that erasing has to shift across runs and the wrap.
TEST_CASE("hash set: erasing inside long runs that wrap around the table") {
  constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ull;
  uint64_t inverse = kGolden;  // Newton's iteration for the inverse modulo 2^64
  for (int i = 0; i < 6; ++i) inverse *= 2 - kGolden * inverse;
  REQUIRE(inverse * kGolden == 1);
  HashSet64 set;
  set.Reserve(256);  // 512 slots: the home is the top 9 bits
  auto with_home = [&](uint64_t home, uint64_t j) { return ((home << 55) | (j + 1)) * inverse; };
  std::vector<uint64_t> pool;
  for (uint64_t home : {509, 510, 511, 0, 1, 40}) {
    for (uint64_t j = 0; j < 20; ++j) pool.push_back(with_home(home, j));
  }
  std::mt19937_64 rng(3);
  std::unordered_set<uint64_t> reference;
  for (int op = 0; op < 20000; ++op) {
    const uint64_t v = pool[rng() % pool.size()];
    INFO("op " << op);
    if (rng() % 2 == 0) {
      REQUIRE(set.Insert(v) == reference.insert(v).second);
    } else {
      set.Erase(v);
      reference.erase(v);
    }
    int wrong = 0;
    for (uint64_t w : pool) wrong += set.Contains(w) != (reference.count(w) == 1);
    REQUIRE(wrong == 0);
  }
}

TEST_CASE("hash set: keeps its values when it grows, and empties by erasing") {
  HashSet64 set;
  CHECK_FALSE(set.Contains(7));
  set.Erase(7);  // on an empty set: nothing
  for (uint64_t v = 1; v <= 1000; ++v) REQUIRE(set.Insert(v * 0x10001));
  CHECK(set.size() == 1000);
  CHECK_FALSE(set.Insert(500 * 0x10001));
  for (uint64_t v = 1; v <= 1000; ++v) REQUIRE(set.Contains(v * 0x10001));
  CHECK_FALSE(set.Contains(1001 * 0x10001));
  for (uint64_t v = 1; v <= 1000; ++v) set.Erase(v * 0x10001);
  CHECK(set.size() == 0);
  for (uint64_t v = 1; v <= 1000; ++v) REQUIRE_FALSE(set.Contains(v * 0x10001));
}

// HashSet64 against std::unordered_set on random operations, with values
// crowded into few home slots so that erasing has long runs to repair.
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

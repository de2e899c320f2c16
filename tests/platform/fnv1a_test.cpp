// FNV-1a against the published test vectors, and the four-lane form
// against four single calls.
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <string>

#include "platform/fnv1a.h"

using sluice::Fnv1a;
using sluice::Fnv1a4;

TEST_CASE("fnv1a: the published 64-bit FNV-1a test vectors") {
  CHECK(Fnv1a("") == 0xcbf29ce484222325ull);
  CHECK(Fnv1a("a") == 0xaf63dc4c8601ec8cull);
  CHECK(Fnv1a("foobar") == 0x85944171f73967e8ull);
  // Continuing a hash is hashing the concatenation.
  CHECK(Fnv1a("bar", Fnv1a("foo")) == Fnv1a("foobar"));
}

TEST_CASE("fnv1a: four lanes at once give the values of four single calls") {
  std::mt19937_64 rng(7);
  for (int round = 0; round < 2000; ++round) {
    std::string bytes[4];
    std::string_view views[4];
    uint64_t lanes[4];
    uint64_t expected[4];
    for (int k = 0; k < 4; ++k) {
      // Lengths from 0 to 300, often equal, often not: both the common
      // part and each tail are exercised; bytes above 0x7f too.
      const size_t length = rng() % 3 == 0 ? 40 : rng() % 301;
      for (size_t i = 0; i < length; ++i) bytes[k].push_back(static_cast<char>(rng() & 0xff));
      views[k] = bytes[k];
      lanes[k] = rng() % 2 == 0 ? sluice::kFnv1aBasis : rng();
      expected[k] = Fnv1a(views[k], lanes[k]);
    }
    Fnv1a4(lanes, views);
    INFO("round " << round);
    for (int k = 0; k < 4; ++k) CHECK(lanes[k] == expected[k]);
  }
}

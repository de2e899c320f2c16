// KeyTable against std::unordered_map on random operations, and entries
// that stay where they are while the table grows and shifts.
#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "operators/key_table.h"

using sluice::operators::KeyTable;

TEST_CASE("key table: random emplaces, finds and erases agree with std::unordered_map") {
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    std::mt19937_64 rng(seed);
    KeyTable<int> table;
    std::unordered_map<std::string, int> reference;
    std::unordered_map<std::string, const void*> where;  // each live entry's address
    // Keys as the operators make them, sharing long prefixes; a pool a few
    // times the live size, so runs form, break and re-form.
    std::vector<std::string> pool;
    for (int i = 0; i < 700; ++i) pool.push_back("{\"device\":\"dev-" + std::to_string(rng() % 100000) + "\"}");
    pool.push_back("");
    for (int op = 0; op < 30000; ++op) {
      const std::string& key = pool[rng() % pool.size()];
      INFO("seed " << seed << " op " << op << " key " << key);
      switch (rng() % 3) {
        case 0: {
          auto [entry, inserted] = table.Emplace(key);
          REQUIRE(inserted == (reference.count(key) == 0));
          REQUIRE(entry->key == key);
          if (inserted) {
            entry->value = op;
            reference[key] = op;
            where[key] = entry;
          } else {
            REQUIRE(entry->value == reference[key]);
          }
          break;
        }
        case 1: {
          auto* entry = table.Find(key);
          auto it = reference.find(key);
          REQUIRE((entry != nullptr) == (it != reference.end()));
          if (entry) {
            REQUIRE(entry->value == it->second);
            REQUIRE(static_cast<const void*>(entry) == where[key]);
          }
          break;
        }
        default: {
          auto* entry = table.Find(key);
          if (entry) {
            table.Erase(entry->key);  // viewing the entry's own key
          } else {
            table.Erase(key);
          }
          reference.erase(key);
          where.erase(key);
          REQUIRE(table.Find(key) == nullptr);
          break;
        }
      }
      REQUIRE(table.size() == reference.size());
    }
    // Every entry once, each with its value.
    size_t seen = 0;
    table.ForEach([&](const KeyTable<int>::Entry& e) {
      ++seen;
      REQUIRE(reference.count(e.key) == 1);
      CHECK(reference[e.key] == e.value);
    });
    CHECK(seen == reference.size());
  }
}

TEST_CASE("key table: entries keep their address as the table grows") {
  KeyTable<std::string> table;
  std::vector<std::pair<std::string, const void*>> made;
  for (int i = 0; i < 5000; ++i) {
    const std::string key = "k" + std::to_string(i);
    auto [entry, inserted] = table.Emplace(key);
    REQUIRE(inserted);
    entry->value = "v" + std::to_string(i);
    made.push_back({key, entry});
  }
  for (const auto& [key, address] : made) {
    auto* entry = table.Find(key);
    REQUIRE(entry != nullptr);
    CHECK(static_cast<const void*>(entry) == address);
    CHECK(entry->value == "v" + key.substr(1));
  }
  table.clear();
  CHECK(table.empty());
  CHECK(table.Find("k1") == nullptr);
}

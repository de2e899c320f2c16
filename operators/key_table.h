// An operator's per-key state (a window's or an alert's group key, as its
// key JSON) in one open-addressing array of {hash, entry} slots with linear
// probing. Entries are allocated one by one and never move: the window's
// close queue points at them.
//
//   KeyTable<KeyState> keys;
//   auto [entry, inserted] = keys.Emplace(key_json);
//   if (KeyTable<KeyState>::Entry* e = keys.Find(key_json)) use(e->value);
//   keys.Erase(key_json);
//
// A lookup reads one slot, which holds the full hash, and then the entry it
// was after; std::unordered_map<std::string, V> read a bucket, the node
// before, the node and the key's bytes, each a cache miss once there are
// thousands of keys (its lookups were 6.5 % and 3.8 % of the agent's samples
// at 10,000 devices).
#ifndef SLUICE_OPERATORS_KEY_TABLE_H_
#define SLUICE_OPERATORS_KEY_TABLE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::operators {

template <typename V>
class KeyTable {
 public:
  struct Entry {
    std::string key;
    V value{};
  };

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  Entry* Find(std::string_view key) const {
    if (size_ == 0) return nullptr;
    const uint64_t hash = Hash(key);
    for (size_t i = Home(hash); slots_[i].entry; i = Next(i)) {
      if (slots_[i].hash == hash && slots_[i].entry->key == key) return slots_[i].entry.get();
    }
    return nullptr;
  }

  // The entry for `key`; made, with a default value, when there was none
  // (second: true).
  std::pair<Entry*, bool> Emplace(std::string_view key) {
    const uint64_t hash = Hash(key);
    if (size_ > 0) {
      for (size_t i = Home(hash); slots_[i].entry; i = Next(i)) {
        if (slots_[i].hash == hash && slots_[i].entry->key == key) return {slots_[i].entry.get(), false};
      }
    }
    if (2 * (size_ + 1) > slots_.size()) Grow();
    size_t i = Home(hash);
    while (slots_[i].entry) i = Next(i);
    slots_[i].hash = hash;
    slots_[i].entry = std::make_unique<Entry>();
    slots_[i].entry->key.assign(key);
    ++size_;
    return {slots_[i].entry.get(), true};
  }

  // `key` may view the entry's own key.
  void Erase(std::string_view key) {
    if (size_ == 0) return;
    const uint64_t hash = Hash(key);
    size_t hole = Home(hash);
    for (;; hole = Next(hole)) {
      const Slot& s = slots_[hole];
      if (!s.entry) return;
      if (s.hash == hash && s.entry->key == key) break;
    }
    slots_[hole].entry.reset();  // `key` is not read after this
    // Backward shift, as in platform/hash_set64.h: a later entry of the run
    // moves into the hole unless its home lies cyclically in (hole, j].
    for (size_t j = Next(hole); slots_[j].entry; j = Next(j)) {
      const size_t home = Home(slots_[j].hash);
      const bool reachable = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
      if (!reachable) {
        slots_[hole] = std::move(slots_[j]);
        hole = j;
      }
    }
    --size_;
  }

  void clear() {
    slots_.clear();
    size_ = 0;
    shift_ = 64;
  }

  // f(const Entry&) for each entry, in no particular order.
  template <typename F>
  void ForEach(F&& f) const {
    for (const Slot& s : slots_) {
      if (s.entry) f(*s.entry);
    }
  }

 private:
  struct Slot {
    uint64_t hash = 0;
    std::unique_ptr<Entry> entry;  // null: empty
  };

  static uint64_t Hash(std::string_view key) { return std::hash<std::string_view>{}(key); }
  // Fibonacci hashing: the top bits of a multiplication.
  size_t Home(uint64_t hash) const {
    return static_cast<size_t>((hash * 0x9e3779b97f4a7c15ull) >> shift_);
  }
  size_t Next(size_t i) const { return (i + 1) & (slots_.size() - 1); }

  // Doubles the array (at least 16 slots), keeping the load at most 1/2.
  void Grow() {
    std::vector<Slot> old = std::move(slots_);
    const size_t capacity = old.empty() ? 16 : 2 * old.size();
    slots_.clear();
    slots_.resize(capacity);
    shift_ = 64;
    for (size_t c = capacity; c > 1; c /= 2) --shift_;
    for (Slot& s : old) {
      if (!s.entry) continue;
      size_t i = Home(s.hash);
      while (slots_[i].entry) i = Next(i);
      slots_[i] = std::move(s);
    }
  }

  std::vector<Slot> slots_;
  size_t size_ = 0;
  int shift_ = 64;
};

}  // namespace sluice::operators

#endif  // SLUICE_OPERATORS_KEY_TABLE_H_

// A set of 64-bit hashes: open addressing with linear probing in one array,
// no allocation once it has its capacity, O(1) Contains/Insert/Erase.
// For the agent's redelivery check, which asks once per reading whether a
// content hash was among the last few hundred (a linear scan cost ~2 % of
// the source thread at 50k readings/s, and the batch's own check grew with
// the square of the batch).
//
//   HashSet64 seen;
//   seen.Reserve(256);
//   if (!seen.Insert(h)) { /* already there */ }
//   seen.Erase(h);
//
// Slot value 0 means empty, so the hash 0 is kept as 1: 0 and 1 are one
// value to this set (a 2^-64 chance per pair of readings).
#ifndef SLUICE_PLATFORM_HASH_SET64_H_
#define SLUICE_PLATFORM_HASH_SET64_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace sluice {

class HashSet64 {
 public:
  // Room for `n` values at a load of at most 1/2. Grows only; keeps the values.
  void Reserve(size_t n) {
    size_t capacity = 16;
    while (capacity < 2 * n) capacity *= 2;
    if (capacity <= slots_.size()) return;
    std::vector<uint64_t> old = std::move(slots_);
    slots_.assign(capacity, 0);
    shift_ = 64;
    for (size_t c = capacity; c > 1; c /= 2) --shift_;
    size_ = 0;
    for (uint64_t v : old) {
      if (v != 0) Insert(v);
    }
  }

  size_t size() const { return size_; }

  bool Contains(uint64_t hash) const {
    if (slots_.empty()) return false;
    const uint64_t v = Value(hash);
    for (size_t i = Home(v);; i = Next(i)) {
      if (slots_[i] == v) return true;
      if (slots_[i] == 0) return false;
    }
  }

  // False (and no change) when `hash` is already in the set.
  bool Insert(uint64_t hash) {
    if (2 * (size_ + 1) > slots_.size()) Reserve(size_ + 1);
    const uint64_t v = Value(hash);
    size_t i = Home(v);
    for (; slots_[i] != 0; i = Next(i)) {
      if (slots_[i] == v) return false;
    }
    slots_[i] = v;
    ++size_;
    return true;
  }

  void Erase(uint64_t hash) {
    if (slots_.empty()) return;
    const uint64_t v = Value(hash);
    size_t hole = Home(v);
    for (; slots_[hole] != v; hole = Next(hole)) {
      if (slots_[hole] == 0) return;
    }
    // Backward shift: each later value of the run moves into the hole
    // unless its home lies cyclically in (hole, j], where it still is
    // reachable; no tombstones, so lookups stay short.
    for (size_t j = Next(hole); slots_[j] != 0; j = Next(j)) {
      const size_t home = Home(slots_[j]);
      const bool reachable = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
      if (!reachable) {
        slots_[hole] = slots_[j];
        hole = j;
      }
    }
    slots_[hole] = 0;
    --size_;
  }

 private:
  static uint64_t Value(uint64_t hash) { return hash == 0 ? 1 : hash; }
  // Fibonacci hashing: the top bits of a multiplication, so that hashes
  // whose low bits agree still spread.
  size_t Home(uint64_t v) const {
    return static_cast<size_t>((v * 0x9e3779b97f4a7c15ull) >> shift_);
  }
  size_t Next(size_t i) const { return (i + 1) & (slots_.size() - 1); }

  std::vector<uint64_t> slots_;
  size_t size_ = 0;
  int shift_ = 64;
};

}  // namespace sluice

#endif  // SLUICE_PLATFORM_HASH_SET64_H_

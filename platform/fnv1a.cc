#include "platform/fnv1a.h"

#include <algorithm>

namespace sluice {

void Fnv1a4(uint64_t h[4], const std::string_view bytes[4]) {
  constexpr uint64_t kPrime = 0x100000001b3ull;
  const size_t common = std::min({bytes[0].size(), bytes[1].size(), bytes[2].size(), bytes[3].size()});
  uint64_t a = h[0], b = h[1], c = h[2], d = h[3];
  for (size_t i = 0; i < common; ++i) {
    a = (a ^ static_cast<unsigned char>(bytes[0][i])) * kPrime;
    b = (b ^ static_cast<unsigned char>(bytes[1][i])) * kPrime;
    c = (c ^ static_cast<unsigned char>(bytes[2][i])) * kPrime;
    d = (d ^ static_cast<unsigned char>(bytes[3][i])) * kPrime;
  }
  h[0] = Fnv1a(bytes[0].substr(common), a);
  h[1] = Fnv1a(bytes[1].substr(common), b);
  h[2] = Fnv1a(bytes[2].substr(common), c);
  h[3] = Fnv1a(bytes[3].substr(common), d);
}

}  // namespace sluice

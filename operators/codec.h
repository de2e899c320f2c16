// Byte encoding for operator snapshots: varints, zigzag integers, doubles
// and length-prefixed strings, little-endian and platform-independent.
//
// Readers consume from a string_view and return false on truncated or
// malformed input instead of reading past the end.
#ifndef SLUICE_OPERATORS_CODEC_H_
#define SLUICE_OPERATORS_CODEC_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace sluice::operators::codec {

inline void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}

inline void PutSigned(std::string& out, int64_t v) {
  PutVarint(out, (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
}

inline void PutDouble(std::string& out, double d) {
  uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  for (int i = 0; i < 8; ++i) out += static_cast<char>((bits >> (8 * i)) & 0xFF);
}

inline void PutBytes(std::string& out, std::string_view s) {
  PutVarint(out, s.size());
  out.append(s);
}

inline bool GetVarint(std::string_view& in, uint64_t* v) {
  uint64_t result = 0;
  for (int shift = 0; shift <= 63 && !in.empty(); shift += 7) {
    auto byte = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    result |= static_cast<uint64_t>(byte & 0x7F) << shift;
    if ((byte & 0x80) == 0) {
      *v = result;
      return true;
    }
  }
  return false;
}

inline bool GetSigned(std::string_view& in, int64_t* v) {
  uint64_t u;
  if (!GetVarint(in, &u)) return false;
  *v = static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1));
  return true;
}

inline bool GetDouble(std::string_view& in, double* d) {
  if (in.size() < 8) return false;
  uint64_t bits = 0;
  for (int i = 0; i < 8; ++i) bits |= static_cast<uint64_t>(static_cast<uint8_t>(in[i])) << (8 * i);
  in.remove_prefix(8);
  std::memcpy(d, &bits, sizeof bits);
  return true;
}

inline bool GetBytes(std::string_view& in, std::string_view* s) {
  uint64_t n;
  if (!GetVarint(in, &n) || n > in.size()) return false;
  *s = in.substr(0, n);
  in.remove_prefix(n);
  return true;
}

}  // namespace sluice::operators::codec

#endif  // SLUICE_OPERATORS_CODEC_H_

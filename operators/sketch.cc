#include "operators/sketch.h"

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

namespace sluice::operators {

// Regions are copied byte for byte into aggregate states and snapshots, and
// every target we build for (x86-64, ARM) is little-endian; refuse to
// build anywhere a snapshot would silently change meaning.
static_assert(std::endian::native == std::endian::little,
              "sketch regions use native byte order and assume little-endian");

namespace {

constexpr uint8_t kRegionVersion = 1;
constexpr uint8_t kEncodingVersion = 1;
constexpr uint8_t kFlagCollapsed = 1;
// Far beyond any index a finite double reaches (|index| <= 745 / ln(gamma),
// about 3.7e6 at the smallest accepted alpha); keeps index arithmetic in
// int64 without overflow for decoded input.
constexpr int64_t kMaxAbsIndex = int64_t{1} << 30;
constexpr double kInf = std::numeric_limits<double>::infinity();

// The fixed front of a region. No implicit padding, so equal sketches are
// equal bytes.
struct Header {
  uint32_t size;         // of the whole region, header included
  uint8_t version;
  uint8_t width;         // bytes per counter: 1, 2, 4 or 8
  uint8_t flags;         // kFlagCollapsed
  uint8_t reserved;
  double relative_accuracy;
  double multiplier;     // 1 / ln(gamma), cached so Add needs only one log
  uint32_t max_buckets;  // per store
  int32_t pos_lo;        // index of the first positive counter
  uint32_t pos_len;
  int32_t neg_lo;        // index of the first negative counter (by |v|)
  uint32_t neg_len;
  uint32_t pad;
  uint64_t count;        // all values, zeros included
  uint64_t zero_count;
  double min;            // +inf / -inf while empty
  double max;
};
static_assert(sizeof(Header) == sketch_region::kRegionHeaderBytes);
static_assert(std::is_trivially_copyable_v<Header>);

// Index and value of the logarithmic buckets for one relative accuracy.
struct Mapping {
  explicit Mapping(double relative_accuracy) {
    // A hair tighter than promised, so that rounding in log() and exp()
    // (about 1e-13 relative) cannot push an answer past relative_accuracy.
    const double a = relative_accuracy * (1 - 1e-7);
    ln_gamma = std::log1p(2 * a / (1 - a));
    multiplier = 1 / ln_gamma;
    value_factor = 1 + a;
  }
  // The value within alpha of everything in bucket `index`: 2 gamma^i / (gamma + 1),
  // written as gamma^(i-1) * (1 + a) so it overflows only where clamping to
  // the exact max repairs it.
  double Value(int64_t index) const {
    return std::exp(static_cast<double>(index - 1) * ln_gamma) * value_factor;
  }
  double ln_gamma;
  double multiplier;
  double value_factor;
};

int64_t IndexOf(double magnitude, double multiplier) {
  return static_cast<int64_t>(std::ceil(std::log(magnitude) * multiplier));
}

double ClampAccuracy(double a) {
  if (std::isnan(a)) return QuantileSketch::kDefaultRelativeAccuracy;
  return std::clamp(a, QuantileSketch::kMinRelativeAccuracy, QuantileSketch::kMaxRelativeAccuracy);
}

uint32_t ClampBuckets(int n) {
  return static_cast<uint32_t>(
      std::clamp(n, QuantileSketch::kMinMaxBuckets, QuantileSketch::kMaxMaxBuckets));
}

Header LoadHeader(const char* p) {
  Header h;
  std::memcpy(&h, p, sizeof h);
  return h;
}

void StoreHeader(char* p, const Header& h) { std::memcpy(p, &h, sizeof h); }

uint64_t LoadCounter(const char* p, int width) {
  switch (width) {
    case 1:
      return static_cast<uint8_t>(*p);
    case 2: {
      uint16_t v;
      std::memcpy(&v, p, sizeof v);
      return v;
    }
    case 4: {
      uint32_t v;
      std::memcpy(&v, p, sizeof v);
      return v;
    }
    default: {
      uint64_t v;
      std::memcpy(&v, p, sizeof v);
      return v;
    }
  }
}

void StoreCounter(char* p, int width, uint64_t v) {
  switch (width) {
    case 1:
      *p = static_cast<char>(static_cast<uint8_t>(v));
      break;
    case 2: {
      const auto w = static_cast<uint16_t>(v);
      std::memcpy(p, &w, sizeof w);
      break;
    }
    case 4: {
      const auto w = static_cast<uint32_t>(v);
      std::memcpy(p, &w, sizeof w);
      break;
    }
    default:
      std::memcpy(p, &v, sizeof v);
      break;
  }
}

uint64_t WidthMax(int width) {
  return width == 8 ? std::numeric_limits<uint64_t>::max() : (uint64_t{1} << (8 * width)) - 1;
}

uint8_t WidthFor(uint64_t v) {
  if (v <= 0xFF) return 1;
  if (v <= 0xFFFF) return 2;
  if (v <= 0xFFFFFFFFu) return 4;
  return 8;
}

uint64_t SaturatingAdd(uint64_t a, uint64_t b) {
  uint64_t r;
  return __builtin_add_overflow(a, b, &r) ? std::numeric_limits<uint64_t>::max() : r;
}

// The slow path works on counters unpacked into vectors: growing a range,
// folding buckets, widening counters and merging all come down to "unpack,
// change, pack", at O(buckets) each. Adds that land inside the current range
// never get here.
struct Store {
  int64_t lo = 0;
  std::vector<uint64_t> counts;
  int64_t hi() const { return lo + static_cast<int64_t>(counts.size()) - 1; }
};

struct Unpacked {
  Header h;
  Store pos;
  Store neg;
};

Unpacked Unpack(std::string_view region) {
  Unpacked u;
  u.h = LoadHeader(region.data());
  const char* p = region.data() + sketch_region::kRegionHeaderBytes;
  u.pos.lo = u.h.pos_lo;
  u.pos.counts.resize(u.h.pos_len);
  for (uint64_t& c : u.pos.counts) {
    c = LoadCounter(p, u.h.width);
    p += u.h.width;
  }
  u.neg.lo = u.h.neg_lo;
  u.neg.counts.resize(u.h.neg_len);
  for (uint64_t& c : u.neg.counts) {
    c = LoadCounter(p, u.h.width);
    p += u.h.width;
  }
  return u;
}

std::string Pack(const Unpacked& u) {
  Header h = u.h;
  uint64_t largest = 0;
  for (uint64_t c : u.pos.counts) largest = std::max(largest, c);
  for (uint64_t c : u.neg.counts) largest = std::max(largest, c);
  h.width = WidthFor(largest);
  h.pos_lo = u.pos.counts.empty() ? 0 : static_cast<int32_t>(u.pos.lo);
  h.pos_len = static_cast<uint32_t>(u.pos.counts.size());
  h.neg_lo = u.neg.counts.empty() ? 0 : static_cast<int32_t>(u.neg.lo);
  h.neg_len = static_cast<uint32_t>(u.neg.counts.size());
  h.size = static_cast<uint32_t>(sketch_region::kRegionHeaderBytes +
                                 (size_t{h.pos_len} + h.neg_len) * h.width);
  std::string out(h.size, '\0');
  StoreHeader(out.data(), h);
  char* p = out.data() + sketch_region::kRegionHeaderBytes;
  for (uint64_t c : u.pos.counts) {
    StoreCounter(p, h.width, c);
    p += h.width;
  }
  for (uint64_t c : u.neg.counts) {
    StoreCounter(p, h.width, c);
    p += h.width;
  }
  return out;
}

// Widens `s` to cover [lo, hi] as well as what it holds, keeping at most
// `max_buckets`: beyond that the lowest indexes (or the highest, with
// `fold_high`) fold into the nearest kept bucket. True if anything folded.
bool Cover(Store& s, int64_t lo, int64_t hi, uint32_t max_buckets, bool fold_high) {
  if (!s.counts.empty()) {
    lo = std::min(lo, s.lo);
    hi = std::max(hi, s.hi());
  }
  bool folded = false;
  if (hi - lo + 1 > static_cast<int64_t>(max_buckets)) {
    if (fold_high) {
      hi = lo + max_buckets - 1;
    } else {
      lo = hi - max_buckets + 1;
    }
    folded = true;
  }
  if (!s.counts.empty() && lo == s.lo && hi == s.hi()) return folded;
  std::vector<uint64_t> counts(static_cast<size_t>(hi - lo + 1), 0);
  for (size_t j = 0; j < s.counts.size(); ++j) {
    const int64_t index = std::clamp(s.lo + static_cast<int64_t>(j), lo, hi);
    uint64_t& c = counts[static_cast<size_t>(index - lo)];
    c = SaturatingAdd(c, s.counts[j]);
  }
  s.lo = lo;
  s.counts = std::move(counts);
  return folded;
}

// Adds `n` at `index`, or at the nearest edge if it was folded away.
void AddAt(Store& s, int64_t index, uint64_t n) {
  index = std::clamp(index, s.lo, s.hi());
  uint64_t& c = s.counts[static_cast<size_t>(index - s.lo)];
  c = SaturatingAdd(c, n);
}

// Puts `region` in place of the `old_size` bytes at `offset`. Builds the
// buffer at its exact new size: states are kept by the million, and the
// doubling that std::string::replace would do could leave half of each one
// unused.
void ReplaceRegion(std::string& buf, size_t offset, size_t old_size, const std::string& region) {
  if (region.size() == old_size) {
    std::memcpy(buf.data() + offset, region.data(), old_size);
    return;
  }
  std::string out;
  out.reserve(buf.size() - old_size + region.size());
  out.append(buf, 0, offset).append(region).append(buf, offset + old_size);
  buf.swap(out);
}

Header EmptyHeader(double relative_accuracy, uint32_t max_buckets) {
  Header h{};
  h.size = static_cast<uint32_t>(sketch_region::kRegionHeaderBytes);
  h.version = kRegionVersion;
  h.width = 1;
  h.relative_accuracy = relative_accuracy;
  h.multiplier = Mapping(relative_accuracy).multiplier;
  h.max_buckets = max_buckets;
  h.min = kInf;
  h.max = -kInf;
  return h;
}

Status Corrupt(std::string_view what) {
  return Status::DataLoss(std::string("quantile sketch: ") + std::string(what));
}

// Checks everything that does not depend on which accuracy and bucket limit
// the caller expects.
StatusOr<size_t> CheckRegion(std::string_view bytes) {
  if (bytes.size() < sketch_region::kRegionHeaderBytes) return Corrupt("truncated header");
  const Header h = LoadHeader(bytes.data());
  if (h.version != kRegionVersion) return Corrupt("unknown region version");
  if (h.width != 1 && h.width != 2 && h.width != 4 && h.width != 8) {
    return Corrupt("bad counter width");
  }
  if ((h.flags & ~kFlagCollapsed) != 0 || h.reserved != 0 || h.pad != 0) {
    return Corrupt("unknown flags");
  }
  if (!(h.relative_accuracy >= QuantileSketch::kMinRelativeAccuracy &&
        h.relative_accuracy <= QuantileSketch::kMaxRelativeAccuracy)) {
    return Corrupt("relative accuracy out of range");
  }
  // Not bit-exact: a snapshot may come from a machine whose log1p() differs
  // in the last place. 1e-14 keeps index jitter far inside the accuracy margin.
  const double multiplier = Mapping(h.relative_accuracy).multiplier;
  if (!(std::fabs(h.multiplier - multiplier) <= 1e-14 * multiplier)) {
    return Corrupt("mapping does not match the relative accuracy");
  }
  if (h.max_buckets < static_cast<uint32_t>(QuantileSketch::kMinMaxBuckets) ||
      h.max_buckets > static_cast<uint32_t>(QuantileSketch::kMaxMaxBuckets)) {
    return Corrupt("bucket limit out of range");
  }
  for (const auto& [lo, len] : {std::pair{h.pos_lo, h.pos_len}, std::pair{h.neg_lo, h.neg_len}}) {
    if (len > h.max_buckets) return Corrupt("more buckets than the limit");
    if (len == 0 && lo != 0) return Corrupt("empty store with an offset");
    if (lo < -kMaxAbsIndex || int64_t{lo} + len - 1 > kMaxAbsIndex) {
      return Corrupt("bucket index out of range");
    }
  }
  const size_t size =
      sketch_region::kRegionHeaderBytes + (size_t{h.pos_len} + h.neg_len) * h.width;
  if (h.size != size) return Corrupt("size does not match the bucket ranges");
  if (bytes.size() < size) return Corrupt("truncated counters");

  const char* p = bytes.data() + sketch_region::kRegionHeaderBytes;
  uint64_t pos_total = 0;
  uint64_t neg_total = 0;
  for (uint32_t j = 0; j < h.pos_len + h.neg_len; ++j) {
    uint64_t& total = j < h.pos_len ? pos_total : neg_total;
    if (__builtin_add_overflow(total, LoadCounter(p, h.width), &total)) {
      return Corrupt("counter overflow");
    }
    p += h.width;
  }
  uint64_t total;
  if (__builtin_add_overflow(pos_total, neg_total, &total) ||
      __builtin_add_overflow(total, h.zero_count, &total) || total != h.count) {
    return Corrupt("counters do not add up to the count");
  }
  if (h.count == 0) {
    if (h.min != kInf || h.max != -kInf) return Corrupt("empty sketch with a min or max");
  } else {
    if (!std::isfinite(h.min) || !std::isfinite(h.max) || h.min > h.max) {
      return Corrupt("bad min or max");
    }
    if ((pos_total > 0 && !(h.max > 0)) || (neg_total > 0 && !(h.min < 0)) ||
        (h.zero_count > 0 && !(h.min <= 0 && h.max >= 0))) {
      return Corrupt("min or max contradicts the buckets");
    }
  }
  return size;
}

// --- compact encoding -------------------------------------------------------

void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}

void PutDouble(std::string& out, double d) {
  uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  for (int i = 0; i < 8; ++i) out += static_cast<char>((bits >> (8 * i)) & 0xFF);
}

bool GetByte(std::string_view& in, uint8_t* b) {
  if (in.empty()) return false;
  *b = static_cast<uint8_t>(in.front());
  in.remove_prefix(1);
  return true;
}

// Rejects varints longer than 10 bytes or with bits beyond 64.
bool GetVarint(std::string_view& in, uint64_t* v) {
  uint64_t result = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    uint8_t byte;
    if (!GetByte(in, &byte)) return false;
    const uint64_t bits = byte & 0x7F;
    if (shift == 63 && bits > 1) return false;
    result |= bits << shift;
    if ((byte & 0x80) == 0) {
      *v = result;
      return true;
    }
  }
  return false;
}

bool GetDouble(std::string_view& in, double* d) {
  if (in.size() < 8) return false;
  uint64_t bits = 0;
  for (int i = 0; i < 8; ++i) bits |= uint64_t{static_cast<uint8_t>(in[i])} << (8 * i);
  in.remove_prefix(8);
  std::memcpy(d, &bits, sizeof bits);
  return true;
}

// A store as maximal runs of non-empty buckets: the number of runs, then per
// run its start (zigzag, the first absolute and the rest as the gap after the
// previous run), its length and its counts.
void PutStore(std::string& out, const char* counters, int64_t lo, uint32_t len, int width) {
  std::vector<std::pair<uint32_t, uint32_t>> runs;  // [begin, end) slots
  for (uint32_t j = 0; j < len;) {
    if (LoadCounter(counters + size_t{j} * width, width) == 0) {
      ++j;
      continue;
    }
    uint32_t end = j;
    while (end < len && LoadCounter(counters + size_t{end} * width, width) != 0) ++end;
    runs.emplace_back(j, end);
    j = end;
  }
  PutVarint(out, runs.size());
  int64_t prev_end = 0;
  for (size_t r = 0; r < runs.size(); ++r) {
    const int64_t start = lo + runs[r].first;
    if (r == 0) {
      PutVarint(out, (static_cast<uint64_t>(start) << 1) ^ static_cast<uint64_t>(start >> 63));
    } else {
      PutVarint(out, static_cast<uint64_t>(start - prev_end));
    }
    PutVarint(out, runs[r].second - runs[r].first);
    for (uint32_t j = runs[r].first; j < runs[r].second; ++j) {
      PutVarint(out, LoadCounter(counters + size_t{j} * width, width));
    }
    prev_end = lo + runs[r].second;
  }
}

Status GetStore(std::string_view& in, uint32_t max_buckets, Store* s, uint64_t* total) {
  uint64_t runs;
  if (!GetVarint(in, &runs)) return Corrupt("truncated store");
  if (runs > max_buckets) return Corrupt("too many runs");
  int64_t end = 0;
  for (uint64_t r = 0; r < runs; ++r) {
    uint64_t raw;
    uint64_t len;
    if (!GetVarint(in, &raw) || !GetVarint(in, &len)) return Corrupt("truncated run");
    int64_t start;
    if (r == 0) {
      start = static_cast<int64_t>((raw >> 1) ^ (~(raw & 1) + 1));
      if (start < -kMaxAbsIndex || start > kMaxAbsIndex) return Corrupt("bucket index out of range");
      s->lo = start;
    } else {
      if (raw == 0 || raw > static_cast<uint64_t>(kMaxAbsIndex)) return Corrupt("bad gap");
      start = end + static_cast<int64_t>(raw);
    }
    if (len == 0 || len > max_buckets) return Corrupt("bad run length");
    end = start + static_cast<int64_t>(len);
    if (end - 1 > kMaxAbsIndex) return Corrupt("bucket index out of range");
    if (end - s->lo > static_cast<int64_t>(max_buckets)) return Corrupt("more buckets than the limit");
    s->counts.resize(static_cast<size_t>(start - s->lo), 0);
    for (uint64_t j = 0; j < len; ++j) {
      uint64_t c;
      if (!GetVarint(in, &c)) return Corrupt("truncated counts");
      if (c == 0) return Corrupt("empty bucket inside a run");
      if (__builtin_add_overflow(*total, c, total)) return Corrupt("counter overflow");
      s->counts.push_back(c);
    }
  }
  return Status::Ok();
}

}  // namespace

// --- sketch_region ------------------------------------------------------------

namespace sketch_region {

void Append(std::string& buf, double relative_accuracy, int max_buckets) {
  const Header h = EmptyHeader(ClampAccuracy(relative_accuracy), ClampBuckets(max_buckets));
  const size_t offset = buf.size();
  buf.resize(offset + sizeof h);
  StoreHeader(buf.data() + offset, h);
}

size_t Size(std::string_view buf, size_t offset) {
  uint32_t size;
  std::memcpy(&size, buf.data() + offset + offsetof(Header, size), sizeof size);
  return size;
}

uint64_t Count(std::string_view region) { return LoadHeader(region.data()).count; }

void Add(std::string& buf, size_t offset, double v) {
  if (!std::isfinite(v)) return;
  char* base = buf.data() + offset;
  Header h = LoadHeader(base);
  h.count += 1;
  h.min = std::min(h.min, v);
  h.max = std::max(h.max, v);
  if (v == 0) {
    h.zero_count += 1;
    StoreHeader(base, h);
    return;
  }
  const bool negative = v < 0;
  const int64_t index = IndexOf(negative ? -v : v, h.multiplier);
  const int64_t lo = negative ? h.neg_lo : h.pos_lo;
  const int64_t len = negative ? h.neg_len : h.pos_len;
  int64_t slot = index - lo;
  // A full store folds values past its low end (positive) or its most
  // negative end into the edge bucket, without reshaping.
  if (len == h.max_buckets) {
    if (!negative && slot < 0) {
      slot = 0;
      h.flags |= kFlagCollapsed;
    } else if (negative && slot >= len) {
      slot = len - 1;
      h.flags |= kFlagCollapsed;
    }
  }
  if (slot >= 0 && slot < len) {
    char* p = base + kRegionHeaderBytes + (negative ? size_t{h.pos_len} * h.width : 0) +
              static_cast<size_t>(slot) * h.width;
    const uint64_t c = LoadCounter(p, h.width);
    if (c < WidthMax(h.width)) {
      StoreCounter(p, h.width, c + 1);
      StoreHeader(base, h);
      return;
    }
  }
  // Outside the range, or the counter needs to widen.
  Unpacked u = Unpack(std::string_view(base, h.size));
  u.h = h;
  Store& s = negative ? u.neg : u.pos;
  if (Cover(s, index, index, h.max_buckets, negative)) u.h.flags |= kFlagCollapsed;
  AddAt(s, index, 1);
  ReplaceRegion(buf, offset, h.size, Pack(u));
}

Status Merge(std::string& buf, size_t offset, std::string_view other) {
  const Header a = LoadHeader(buf.data() + offset);
  const Header b = LoadHeader(other.data());
  if (a.relative_accuracy != b.relative_accuracy) {
    return Status::InvalidArgument("cannot merge quantile sketches of different relative accuracy");
  }
  if (b.count == 0) return Status::Ok();
  Unpacked u = Unpack(std::string_view(buf.data() + offset, a.size));
  const Unpacked o = Unpack(other);
  u.h.count = SaturatingAdd(a.count, b.count);
  u.h.zero_count = SaturatingAdd(a.zero_count, b.zero_count);
  u.h.min = std::min(a.min, b.min);
  u.h.max = std::max(a.max, b.max);
  u.h.flags |= b.flags & kFlagCollapsed;
  for (bool negative : {false, true}) {
    Store& s = negative ? u.neg : u.pos;
    const Store& t = negative ? o.neg : o.pos;
    if (t.counts.empty()) continue;
    if (Cover(s, t.lo, t.hi(), a.max_buckets, negative)) u.h.flags |= kFlagCollapsed;
    for (size_t j = 0; j < t.counts.size(); ++j) {
      if (t.counts[j] != 0) AddAt(s, t.lo + static_cast<int64_t>(j), t.counts[j]);
    }
  }
  ReplaceRegion(buf, offset, a.size, Pack(u));
  return Status::Ok();
}

double Quantile(std::string_view region, double q) {
  const Header h = LoadHeader(region.data());
  if (h.count == 0 || std::isnan(q)) return std::numeric_limits<double>::quiet_NaN();
  q = std::clamp(q, 0.0, 1.0);
  // The sample at rank floor(q * (n - 1)), counting from 0 in ascending
  // order: the first bucket whose cumulative count exceeds the rank holds it.
  const auto rank = static_cast<uint64_t>(std::floor(q * static_cast<double>(h.count - 1)));
  // The ends are known exactly.
  if (rank == 0) return h.min;
  if (rank == h.count - 1) return h.max;
  const Mapping mapping(h.relative_accuracy);
  auto clamp = [&h](double v) { return std::clamp(v, h.min, h.max); };
  const char* pos = region.data() + kRegionHeaderBytes;
  const char* neg = pos + size_t{h.pos_len} * h.width;
  uint64_t seen = 0;
  // Negative values first, the most negative (highest |v| index) leading.
  for (uint32_t j = h.neg_len; j-- > 0;) {
    seen += LoadCounter(neg + size_t{j} * h.width, h.width);
    if (seen > rank) return clamp(-mapping.Value(int64_t{h.neg_lo} + j));
  }
  seen += h.zero_count;
  if (seen > rank) return 0.0;
  for (uint32_t j = 0; j < h.pos_len; ++j) {
    seen += LoadCounter(pos + size_t{j} * h.width, h.width);
    if (seen > rank) return clamp(mapping.Value(int64_t{h.pos_lo} + j));
  }
  return h.max;  // not reached: the counters add up to count
}

StatusOr<size_t> Check(std::string_view bytes, double relative_accuracy, int max_buckets) {
  StatusOr<size_t> size = CheckRegion(bytes);
  if (!size.ok()) return size;
  const Header h = LoadHeader(bytes.data());
  if (h.relative_accuracy != relative_accuracy || h.max_buckets != ClampBuckets(max_buckets)) {
    return Corrupt("built with another relative accuracy or bucket limit");
  }
  return size;
}

}  // namespace sketch_region

// --- QuantileSketch -------------------------------------------------------------

QuantileSketch::QuantileSketch(double relative_accuracy, int max_buckets) {
  sketch_region::Append(rep_, relative_accuracy, max_buckets);
}

void QuantileSketch::Add(double v) { sketch_region::Add(rep_, 0, v); }

Status QuantileSketch::Merge(const QuantileSketch& other) {
  if (&other == this) {
    const std::string copy = other.rep_;
    return sketch_region::Merge(rep_, 0, copy);
  }
  return sketch_region::Merge(rep_, 0, other.rep_);
}

double QuantileSketch::Quantile(double q) const { return sketch_region::Quantile(rep_, q); }

uint64_t QuantileSketch::count() const { return LoadHeader(rep_.data()).count; }

double QuantileSketch::relative_accuracy() const {
  return LoadHeader(rep_.data()).relative_accuracy;
}

int QuantileSketch::max_buckets() const {
  return static_cast<int>(LoadHeader(rep_.data()).max_buckets);
}

bool QuantileSketch::collapsed() const {
  return (LoadHeader(rep_.data()).flags & kFlagCollapsed) != 0;
}

size_t QuantileSketch::MemoryBytes() const { return sizeof(*this) + rep_.capacity(); }

// Layout: version byte, flags byte, relative accuracy (8 bytes, little-endian
// IEEE), max_buckets, zero count, positive store, negative store (PutStore),
// then min and max when the sketch is not empty.
void QuantileSketch::EncodeTo(std::string* out) const {
  const Header h = LoadHeader(rep_.data());
  *out += static_cast<char>(kEncodingVersion);
  *out += static_cast<char>(h.flags);
  PutDouble(*out, h.relative_accuracy);
  PutVarint(*out, h.max_buckets);
  PutVarint(*out, h.zero_count);
  const char* counters = rep_.data() + sketch_region::kRegionHeaderBytes;
  PutStore(*out, counters, h.pos_lo, h.pos_len, h.width);
  PutStore(*out, counters + size_t{h.pos_len} * h.width, h.neg_lo, h.neg_len, h.width);
  if (h.count > 0) {
    PutDouble(*out, h.min);
    PutDouble(*out, h.max);
  }
}

StatusOr<QuantileSketch> QuantileSketch::DecodeFrom(std::string_view* in) {
  uint8_t version;
  uint8_t flags;
  double relative_accuracy;
  uint64_t max_buckets;
  uint64_t zero_count;
  if (!GetByte(*in, &version) || !GetByte(*in, &flags) ||
      !GetDouble(*in, &relative_accuracy) || !GetVarint(*in, &max_buckets) ||
      !GetVarint(*in, &zero_count)) {
    return Corrupt("truncated header");
  }
  if (version != kEncodingVersion) return Corrupt("unknown encoding version");
  if ((flags & ~kFlagCollapsed) != 0) return Corrupt("unknown flags");
  if (!(relative_accuracy >= kMinRelativeAccuracy && relative_accuracy <= kMaxRelativeAccuracy)) {
    return Corrupt("relative accuracy out of range");
  }
  if (max_buckets < static_cast<uint64_t>(kMinMaxBuckets) ||
      max_buckets > static_cast<uint64_t>(kMaxMaxBuckets)) {
    return Corrupt("bucket limit out of range");
  }
  Unpacked u;
  u.h = EmptyHeader(relative_accuracy, static_cast<uint32_t>(max_buckets));
  u.h.flags = flags;
  u.h.zero_count = zero_count;
  uint64_t count = zero_count;
  RETURN_IF_ERROR(GetStore(*in, u.h.max_buckets, &u.pos, &count));
  RETURN_IF_ERROR(GetStore(*in, u.h.max_buckets, &u.neg, &count));
  u.h.count = count;
  if (count > 0 && (!GetDouble(*in, &u.h.min) || !GetDouble(*in, &u.h.max))) {
    return Corrupt("truncated min and max");
  }
  QuantileSketch sketch(relative_accuracy, static_cast<int>(max_buckets));
  sketch.rep_ = Pack(u);
  // The same checks a stored region gets (min and max against the buckets).
  StatusOr<size_t> checked = CheckRegion(sketch.rep_);
  if (!checked.ok()) return checked.status();
  return sketch;
}

}  // namespace sluice::operators

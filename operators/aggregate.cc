#include "operators/aggregate.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <type_traits>
#include <utility>

#include "operators/sketch.h"

namespace sluice::operators {
namespace {

// State layout (native byte order, see sketch.h):
//   StateHeader                       16 bytes
//   Accumulator per input field      112 bytes each, in inputs_ order
//   a sketch region per input that feeds a percentile, in inputs_ order
// One field with the five basic aggregates: 128 bytes.

constexpr uint32_t kStateMagic = 0x31474153;  // "SAG1"

struct StateHeader {
  uint32_t magic;
  uint16_t inputs;
  uint16_t sketches;
  uint64_t records;  // every record added, also the arrival sequence counter
};
static_assert(sizeof(StateHeader) == 16);

// Per input field. first/last keep the order key (event time, arrival time,
// arrival sequence) of the value they hold.
struct Accumulator {
  uint64_t count;
  double sum;
  double mean;  // Welford
  double m2;    // Welford: sum of squared deviations from the mean
  double min;
  double max;
  double first;
  int64_t first_event_ms;
  int64_t first_arrival_ms;
  uint64_t first_seq;
  double last;
  int64_t last_event_ms;
  int64_t last_arrival_ms;
  uint64_t last_seq;
};
static_assert(sizeof(Accumulator) == 112);
static_assert(std::is_trivially_copyable_v<Accumulator>);

constexpr size_t kAccumulatorsOffset = sizeof(StateHeader);

// Percentiles promise this relative accuracy (sketch.h); states built with
// other parameters fail Validate.
constexpr double kSketchAccuracy = 0.01;
constexpr int kSketchBuckets = 2048;

constexpr double kInf = std::numeric_limits<double>::infinity();

Accumulator EmptyAccumulator() {
  Accumulator a{};
  a.min = kInf;
  a.max = -kInf;
  return a;
}

template <typename T>
T Load(std::string_view state, size_t offset) {
  T v;
  std::memcpy(&v, state.data() + offset, sizeof v);
  return v;
}

template <typename T>
void StoreAt(std::string& state, size_t offset, const T& v) {
  std::memcpy(state.data() + offset, &v, sizeof v);
}

size_t AccumulatorOffset(size_t input) {
  return kAccumulatorsOffset + input * sizeof(Accumulator);
}

// Lexicographic (event time, arrival time, sequence).
bool Before(int64_t event_a, int64_t arrival_a, uint64_t seq_a, int64_t event_b,
            int64_t arrival_b, uint64_t seq_b) {
  if (event_a != event_b) return event_a < event_b;
  if (arrival_a != arrival_b) return arrival_a < arrival_b;
  return seq_a < seq_b;
}

std::optional<double> NumberIn(const Record& record, const std::string& field) {
  const Value* v = record.Find(field);
  if (v == nullptr) return std::nullopt;
  std::optional<double> x = AsNumber(*v);
  // NaN or infinity would poison sum, min and the sketch for the whole window.
  if (!x || !std::isfinite(*x)) return std::nullopt;
  return x;
}

void Accumulate(Accumulator& a, double x, const Record& record, uint64_t seq) {
  if (a.count == 0 || Before(record.event_time_ms, record.arrival_ms, seq, a.first_event_ms,
                             a.first_arrival_ms, a.first_seq)) {
    a.first = x;
    a.first_event_ms = record.event_time_ms;
    a.first_arrival_ms = record.arrival_ms;
    a.first_seq = seq;
  }
  if (a.count == 0 || Before(a.last_event_ms, a.last_arrival_ms, a.last_seq,
                             record.event_time_ms, record.arrival_ms, seq)) {
    a.last = x;
    a.last_event_ms = record.event_time_ms;
    a.last_arrival_ms = record.arrival_ms;
    a.last_seq = seq;
  }
  a.count += 1;
  a.sum += x;
  const double delta = x - a.mean;
  a.mean += delta / static_cast<double>(a.count);
  a.m2 += delta * (x - a.mean);
  a.min = std::min(a.min, x);
  a.max = std::max(a.max, x);
}

// Folds `b` into `a`. b's arrival sequence numbers are shifted past a's, as
// if b's records had been added to a after a's own; so Merge equals adding
// everything to one state, and arrival time still decides real ties.
void Combine(Accumulator& a, Accumulator b, uint64_t seq_shift) {
  if (b.count == 0) return;
  b.first_seq += seq_shift;
  b.last_seq += seq_shift;
  if (a.count == 0) {
    a = b;
    return;
  }
  if (Before(b.first_event_ms, b.first_arrival_ms, b.first_seq, a.first_event_ms,
             a.first_arrival_ms, a.first_seq)) {
    a.first = b.first;
    a.first_event_ms = b.first_event_ms;
    a.first_arrival_ms = b.first_arrival_ms;
    a.first_seq = b.first_seq;
  }
  if (Before(a.last_event_ms, a.last_arrival_ms, a.last_seq, b.last_event_ms,
             b.last_arrival_ms, b.last_seq)) {
    a.last = b.last;
    a.last_event_ms = b.last_event_ms;
    a.last_arrival_ms = b.last_arrival_ms;
    a.last_seq = b.last_seq;
  }
  // Chan et al.'s parallel form of Welford's update.
  const double na = static_cast<double>(a.count);
  const double nb = static_cast<double>(b.count);
  const double n = na + nb;
  const double delta = b.mean - a.mean;
  a.mean += delta * (nb / n);
  a.m2 += b.m2 + delta * delta * (na * nb / n);
  a.count += b.count;
  a.sum += b.sum;
  a.min = std::min(a.min, b.min);
  a.max = std::max(a.max, b.max);
}

Status Corrupt(std::string_view what) {
  return Status::DataLoss(std::string("aggregate state: ") + std::string(what));
}

const char* KindName(AggregateKind kind) {
  switch (kind) {
    case AggregateKind::kCount: return "count";
    case AggregateKind::kSum: return "sum";
    case AggregateKind::kAvg: return "avg";
    case AggregateKind::kMin: return "min";
    case AggregateKind::kMax: return "max";
    case AggregateKind::kFirst: return "first";
    case AggregateKind::kLast: return "last";
    case AggregateKind::kStddev: return "stddev";
    case AggregateKind::kPercentile: return "percentile";
  }
  return nullptr;
}

}  // namespace

StatusOr<Aggregator> Aggregator::Create(std::vector<AggregateSpec> specs) {
  Aggregator agg;
  for (size_t i = 0; i < specs.size(); ++i) {
    const AggregateSpec& s = specs[i];
    const char* kind = KindName(s.kind);
    if (kind == nullptr) return Status::InvalidArgument("aggregate '" + s.name + "': unknown kind");
    const std::string where = "aggregate '" + s.name + "' (" + kind + "): ";
    if (s.name.empty()) return Status::InvalidArgument(std::string(kind) + " aggregate without a name");
    for (size_t j = 0; j < i; ++j) {
      if (specs[j].name == s.name) return Status::InvalidArgument(where + "duplicate name");
    }
    if (s.kind == AggregateKind::kCount) {
      if (!s.field.empty()) return Status::InvalidArgument(where + "count() takes no field");
      agg.spec_input_.push_back(-1);
      continue;
    }
    if (s.field.empty()) return Status::InvalidArgument(where + "needs a field");
    if (s.kind == AggregateKind::kPercentile && !(s.quantile > 0 && s.quantile < 1)) {
      return Status::InvalidArgument(where + "quantile must be between 0 and 1 (exclusive), got " +
                                     std::to_string(s.quantile));
    }
    auto it = std::find(agg.inputs_.begin(), agg.inputs_.end(), s.field);
    const auto input = static_cast<size_t>(it - agg.inputs_.begin());
    if (it == agg.inputs_.end()) {
      agg.inputs_.push_back(s.field);
      agg.input_needs_sketch_.push_back(false);
    }
    if (s.kind == AggregateKind::kPercentile) agg.input_needs_sketch_[input] = true;
    agg.spec_input_.push_back(static_cast<int>(input));
  }
  if (agg.inputs_.size() > std::numeric_limits<uint16_t>::max()) {
    return Status::InvalidArgument("too many aggregate input fields");
  }
  agg.specs_ = std::move(specs);
  return agg;
}

std::string Aggregator::NewState() const {
  StateHeader header{};
  header.magic = kStateMagic;
  header.inputs = static_cast<uint16_t>(inputs_.size());
  header.sketches = static_cast<uint16_t>(
      std::count(input_needs_sketch_.begin(), input_needs_sketch_.end(), true));
  std::string state(AccumulatorOffset(inputs_.size()), '\0');
  StoreAt(state, 0, header);
  const Accumulator empty = EmptyAccumulator();
  for (size_t i = 0; i < inputs_.size(); ++i) StoreAt(state, AccumulatorOffset(i), empty);
  for (size_t i = 0; i < inputs_.size(); ++i) {
    if (input_needs_sketch_[i]) sketch_region::Append(state, kSketchAccuracy, kSketchBuckets);
  }
  return state;
}

void Aggregator::Add(std::string& state, const Record& record) const {
  assert(state.size() >= AccumulatorOffset(inputs_.size()));
  const uint64_t seq = Load<uint64_t>(state, offsetof(StateHeader, records));
  StoreAt(state, offsetof(StateHeader, records), seq + 1);
  size_t sketch_offset = AccumulatorOffset(inputs_.size());
  for (size_t i = 0; i < inputs_.size(); ++i) {
    const std::optional<double> x = NumberIn(record, inputs_[i]);
    const bool has_sketch = input_needs_sketch_[i];
    if (x) {
      Accumulator a = Load<Accumulator>(state, AccumulatorOffset(i));
      Accumulate(a, *x, record, seq);
      StoreAt(state, AccumulatorOffset(i), a);
      // May grow the region and move the bytes after it.
      if (has_sketch) sketch_region::Add(state, sketch_offset, *x);
    }
    if (has_sketch) sketch_offset += sketch_region::Size(state, sketch_offset);
  }
}

void Aggregator::Merge(std::string& state, std::string_view other) const {
  // `other` may view `state` itself.
  std::string copy;
  if (other.data() >= state.data() && other.data() < state.data() + state.size()) {
    copy.assign(other);
    other = copy;
  }
  assert(other.size() >= AccumulatorOffset(inputs_.size()));
  const uint64_t records = Load<uint64_t>(state, offsetof(StateHeader, records));
  const uint64_t other_records = Load<uint64_t>(other, offsetof(StateHeader, records));
  for (size_t i = 0; i < inputs_.size(); ++i) {
    Accumulator a = Load<Accumulator>(state, AccumulatorOffset(i));
    Combine(a, Load<Accumulator>(other, AccumulatorOffset(i)), records);
    StoreAt(state, AccumulatorOffset(i), a);
  }
  StoreAt(state, offsetof(StateHeader, records), records + other_records);
  size_t offset = AccumulatorOffset(inputs_.size());
  size_t other_offset = offset;
  for (size_t i = 0; i < inputs_.size(); ++i) {
    if (!input_needs_sketch_[i]) continue;
    const size_t other_size = sketch_region::Size(other, other_offset);
    const Status merged =
        sketch_region::Merge(state, offset, other.substr(other_offset, other_size));
    // Both regions come from this aggregator, so their accuracies match.
    assert(merged.ok());
    (void)merged;
    offset += sketch_region::Size(state, offset);
    other_offset += other_size;
  }
}

std::vector<Field> Aggregator::Results(std::string_view state) const {
  // Where each input's sketch region starts (0: none).
  std::vector<size_t> sketch_at(inputs_.size(), 0);
  size_t offset = AccumulatorOffset(inputs_.size());
  for (size_t i = 0; i < inputs_.size(); ++i) {
    if (!input_needs_sketch_[i]) continue;
    sketch_at[i] = offset;
    offset += sketch_region::Size(state, offset);
  }

  std::vector<Field> out;
  out.reserve(specs_.size());
  for (size_t s = 0; s < specs_.size(); ++s) {
    const AggregateSpec& spec = specs_[s];
    Field f{spec.name, std::monostate{}};
    if (spec.kind == AggregateKind::kCount) {
      f.value = static_cast<int64_t>(Load<uint64_t>(state, offsetof(StateHeader, records)));
      out.push_back(std::move(f));
      continue;
    }
    const auto input = static_cast<size_t>(spec_input_[s]);
    const Accumulator a = Load<Accumulator>(state, AccumulatorOffset(input));
    if (a.count > 0) {
      switch (spec.kind) {
        case AggregateKind::kCount:
          break;
        case AggregateKind::kSum:
          f.value = a.sum;
          break;
        case AggregateKind::kAvg:
          f.value = a.sum / static_cast<double>(a.count);
          break;
        case AggregateKind::kMin:
          f.value = a.min;
          break;
        case AggregateKind::kMax:
          f.value = a.max;
          break;
        case AggregateKind::kFirst:
          f.value = a.first;
          break;
        case AggregateKind::kLast:
          f.value = a.last;
          break;
        case AggregateKind::kStddev:
          f.value = std::sqrt(std::max(0.0, a.m2 / static_cast<double>(a.count)));
          break;
        case AggregateKind::kPercentile:
          f.value = sketch_region::Quantile(
              state.substr(sketch_at[input], sketch_region::Size(state, sketch_at[input])),
              spec.quantile);
          break;
      }
    }
    out.push_back(std::move(f));
  }
  return out;
}

std::vector<std::string> Aggregator::InputFields() const { return inputs_; }

Status Aggregator::Validate(std::string_view state) const {
  const size_t fixed = AccumulatorOffset(inputs_.size());
  if (state.size() < fixed) {
    return Corrupt(std::to_string(state.size()) + " bytes, expected at least " +
                   std::to_string(fixed));
  }
  const StateHeader header = Load<StateHeader>(state, 0);
  const auto sketches = static_cast<size_t>(
      std::count(input_needs_sketch_.begin(), input_needs_sketch_.end(), true));
  if (header.magic != kStateMagic) return Corrupt("bad magic");
  if (header.inputs != inputs_.size() || header.sketches != sketches) {
    return Corrupt("built for other aggregates");
  }
  const Accumulator empty = EmptyAccumulator();
  std::vector<uint64_t> counts;
  for (size_t i = 0; i < inputs_.size(); ++i) {
    const Accumulator a = Load<Accumulator>(state, AccumulatorOffset(i));
    counts.push_back(a.count);
    const std::string where = "field '" + inputs_[i] + "': ";
    if (a.count == 0) {
      if (std::memcmp(&a, &empty, sizeof a) != 0) return Corrupt(where + "empty but not blank");
      continue;
    }
    // Every value added was finite, so min and max are; first and last are
    // among the values; sequence numbers come from the record counter; M2 is
    // a sum of non-negative terms. (sum, mean and M2 may legitimately
    // overflow to infinity or NaN on values near the double range.)
    if (a.count > header.records) return Corrupt(where + "more values than records");
    if (!std::isfinite(a.min) || !std::isfinite(a.max) || a.min > a.max) {
      return Corrupt(where + "bad min or max");
    }
    if (!(a.first >= a.min && a.first <= a.max && a.last >= a.min && a.last <= a.max)) {
      return Corrupt(where + "first or last outside [min, max]");
    }
    if (a.first_seq >= header.records || a.last_seq >= header.records) {
      return Corrupt(where + "bad arrival sequence");
    }
    if (Before(a.last_event_ms, a.last_arrival_ms, a.last_seq, a.first_event_ms,
               a.first_arrival_ms, a.first_seq)) {
      return Corrupt(where + "last ordered before first");
    }
    if (a.m2 < 0) return Corrupt(where + "negative variance");
  }
  size_t offset = fixed;
  for (size_t i = 0; i < inputs_.size(); ++i) {
    if (!input_needs_sketch_[i]) continue;
    StatusOr<size_t> size =
        sketch_region::Check(state.substr(offset), kSketchAccuracy, kSketchBuckets);
    if (!size.ok()) return size.status().WithContext("aggregate state, field '" + inputs_[i] + "'");
    if (sketch_region::Count(state.substr(offset)) != counts[i]) {
      return Corrupt("field '" + inputs_[i] + "': sketch count differs from the value count");
    }
    offset += *size;
  }
  if (offset != state.size()) return Corrupt("trailing bytes");
  return Status::Ok();
}

}  // namespace sluice::operators

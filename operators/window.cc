#include "operators/window.h"

#include <algorithm>
#include <limits>
#include <queue>

#include "operators/codec.h"
#include "operators/key_table.h"
#include "operators/output.h"
#include "platform/json_text.h"

namespace sluice::operators {
namespace {

constexpr int64_t kNoTime = std::numeric_limits<int64_t>::min();
constexpr uint64_t kSnapshotVersion = 1;

// Floor division that rounds towards minus infinity for negative times too.
int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

std::string Describe(int64_t start, int64_t end) {
  return "[" + std::to_string(start) + ", " + std::to_string(end) + ")";
}

struct OpenWindow {
  int64_t start;
  int64_t end;
  std::string state;  // Aggregator state
};

struct KeyState {
  const std::string* key_json = nullptr;  // the table's key: the output's "key" object
  std::vector<Field> key_fields;   // the group_by values, in group_by order
  std::vector<OpenWindow> windows;
  uint32_t heap_refs = 0;          // close-queue entries pointing here
};

// One entry of the close queue. Entries go stale when a session window
// grows or merges; CloseDue() skips those.
struct Closing {
  int64_t end;
  int64_t start;
  KeyState* key;
};

struct LaterFirst {
  bool operator()(const Closing& a, const Closing& b) const {
    if (a.end != b.end) return a.end > b.end;
    if (a.key != b.key) return *a.key->key_json > *b.key->key_json;
    return a.start > b.start;
  }
};

class WindowOperator final : public Operator {
 public:
  WindowOperator(OutputContext context, WindowSpec spec)
      : context_(std::move(context)), spec_(std::move(spec)) {}

  Status OnRecord(const Record& record, Emitter& out) override {
    last_arrival_ms_ = std::max(last_arrival_ms_, record.arrival_ms);
    BuildKey(record);
    int64_t t = record.event_time_ms;
    bool accepted = spec_.kind == WindowKind::kSession ? AddToSession(record, t)
                                                       : AddToFixedWindows(record, t);
    if (!accepted) {
      ++stats_.late;
      out.Reject(record, "late: every window for event time " + std::to_string(t) +
                             " was already emitted (watermark " + std::to_string(watermark_) +
                             ", lateness " + std::to_string(spec_.lateness_ms) + " ms)");
    }
    if (t > max_event_ms_) {
      max_event_ms_ = t;
      AdvanceTo(SaturatingSub(max_event_ms_, spec_.lateness_ms), out);
    } else {
      CloseDue(out);  // windows put off by a saturated emitter
    }
    return Status::Ok();
  }

  Status OnWatermark(int64_t watermark_ms, Emitter& out) override {
    AdvanceTo(watermark_ms, out);
    return Status::Ok();
  }

  Status OnTick(int64_t now_ms, Emitter& out) override {
    CloseDue(out);
    if (spec_.idle_ms <= 0 || max_event_ms_ == kNoTime || last_arrival_ms_ == kNoTime) {
      return Status::Ok();
    }
    int64_t idle_for = now_ms - last_arrival_ms_;
    if (idle_for < spec_.idle_ms) return Status::Ok();
    // Event time is taken to have moved on with processing time since the
    // last record.
    AdvanceTo(SaturatingSub(max_event_ms_ + idle_for, spec_.lateness_ms), out);
    return Status::Ok();
  }

  std::string Snapshot() const override {
    std::string out;
    codec::PutVarint(out, kSnapshotVersion);
    codec::PutSigned(out, max_event_ms_);
    codec::PutSigned(out, watermark_);
    codec::PutSigned(out, last_arrival_ms_);
    codec::PutVarint(out, stats_.late);
    // Keys in key order, so equal states give equal snapshots.
    std::vector<const KeyState*> keys;
    keys.reserve(keys_.size());
    keys_.ForEach([&](const Keys::Entry& e) {
      if (!e.value.windows.empty()) keys.push_back(&e.value);
    });
    std::sort(keys.begin(), keys.end(),
              [](const KeyState* a, const KeyState* b) { return *a->key_json < *b->key_json; });
    codec::PutVarint(out, keys.size());
    for (const KeyState* ks : keys) {
      EncodeFields(out, ks->key_fields);
      codec::PutVarint(out, ks->windows.size());
      for (const OpenWindow& w : ks->windows) {
        codec::PutSigned(out, w.start);
        codec::PutSigned(out, w.end);
        codec::PutBytes(out, w.state);
      }
    }
    return out;
  }

  Status Restore(std::string_view in) override {
    Clear();
    Status s = Decode(in);
    if (!s.ok()) Clear();
    return s;
  }

  OperatorStats Stats() const override {
    OperatorStats s = stats_;
    s.keys = keys_.size();
    s.open_windows = 0;
    s.state_bytes = 0;
    keys_.ForEach([&](const Keys::Entry& e) {
      const KeyState& ks = e.value;
      s.open_windows += ks.windows.size();
      s.state_bytes += sizeof(Keys::Entry) + e.key.capacity() +
                       ks.key_fields.capacity() * sizeof(Field);
      for (const OpenWindow& w : ks.windows) s.state_bytes += sizeof(OpenWindow) + w.state.capacity();
    });
    return s;
  }

 private:
  static int64_t SaturatingSub(int64_t a, int64_t b) {
    if (b > 0 && a < kNoTime + b) return kNoTime;
    return a - b;
  }

  // Fills key_buffer_ with the key of `record` (missing fields are null).
  void BuildKey(const Record& record) {
    key_buffer_.clear();
    key_buffer_ += '{';
    for (size_t i = 0; i < spec_.group_by.size(); ++i) {
      const std::string& name = spec_.group_by[i];
      const Value* v = record.Find(name);
      if (i > 0) key_buffer_ += ',';
      AppendJsonString(key_buffer_, name);
      key_buffer_ += ':';
      AppendValueJson(key_buffer_, v ? *v : Value{});
    }
    key_buffer_ += '}';
  }

  KeyState& KeyFor(const Record& record) {
    auto [entry, inserted] = keys_.Emplace(key_buffer_);
    KeyState& ks = entry->value;
    if (!inserted) return ks;
    ks.key_json = &entry->key;  // entries never move
    for (const std::string& name : spec_.group_by) {
      const Value* v = record.Find(name);
      ks.key_fields.push_back(Field{name, v ? *v : Value{}});
    }
    return ks;
  }

  OpenWindow& WindowFor(KeyState& ks, int64_t start, int64_t end) {
    for (OpenWindow& w : ks.windows) {
      if (w.start == start) return w;
    }
    ks.windows.push_back(OpenWindow{start, end, spec_.aggregator.NewState()});
    Schedule(ks, start, end);
    return ks.windows.back();
  }

  void Schedule(KeyState& ks, int64_t start, int64_t end) {
    ++ks.heap_refs;
    closing_.push(Closing{end, start, &ks});
  }

  // Tumbling and hopping: the record goes into every window covering t that
  // is still open. False when all of them were emitted already.
  bool AddToFixedWindows(const Record& record, int64_t t) {
    const int64_t step = spec_.kind == WindowKind::kTumbling ? spec_.size_ms : spec_.step_ms;
    // The latest window covering t starts at the last multiple of step <= t.
    int64_t last_start = FloorDiv(t, step) * step;
    bool accepted = false;
    KeyState* ks = nullptr;
    for (int64_t start = last_start; start > t - spec_.size_ms; start -= step) {
      int64_t end = start + spec_.size_ms;
      if (end <= watermark_) break;  // this one and every earlier one are closed
      if (!ks) ks = &KeyFor(record);
      spec_.aggregator.Add(WindowFor(*ks, start, end).state, record);
      accepted = true;
    }
    return accepted;
  }

  // Session: [first, last + gap); a record within gap of an open session
  // joins it, and sessions it bridges merge.
  bool AddToSession(const Record& record, int64_t t) {
    int64_t start = t;
    int64_t end = t + spec_.gap_ms;
    if (Keys::Entry* entry = keys_.Find(key_buffer_)) {
      // A record overlapping an open session (not yet due) always joins it,
      // even if its own [t, t + gap) would be behind the watermark.
      for (const OpenWindow& w : entry->value.windows) {
        if (w.end > watermark_ && start < w.end && w.start < end) {
          KeyState& ks = entry->value;
          MergeSession(ks, record, start, end);
          return true;
        }
      }
    }
    if (end <= watermark_) return false;
    KeyState& ks = KeyFor(record);
    MergeSession(ks, record, start, end);
    return true;
  }

  void MergeSession(KeyState& ks, const Record& record, int64_t start, int64_t end) {
    std::string state = spec_.aggregator.NewState();
    // Fold in every open session the new range touches, repeatedly, since a
    // grown range can reach further sessions; the record comes after them,
    // as it arrived after their readings (first/last of equal event times).
    bool merged = true;
    while (merged) {
      merged = false;
      for (size_t i = 0; i < ks.windows.size(); ++i) {
        OpenWindow& w = ks.windows[i];
        if (w.end > watermark_ && start < w.end && w.start < end) {
          start = std::min(start, w.start);
          end = std::max(end, w.end);
          spec_.aggregator.Merge(state, w.state);
          ks.windows.erase(ks.windows.begin() + static_cast<std::ptrdiff_t>(i));
          merged = true;
          break;
        }
      }
    }
    spec_.aggregator.Add(state, record);
    ks.windows.push_back(OpenWindow{start, end, std::move(state)});
    Schedule(ks, start, end);
  }

  void AdvanceTo(int64_t watermark, Emitter& out) {
    watermark_ = std::max(watermark_, watermark);
    CloseDue(out);
  }

  // Emits and forgets every window that ends at or before the watermark,
  // or as many as `out` takes now: the rest stay open (and in snapshots)
  // for the next call. Records never reach a window that is due (see
  // AddToFixedWindows, AddToSession), so the results are the same.
  void CloseDue(Emitter& out) {
    while (!closing_.empty() && closing_.top().end <= watermark_ && !out.Saturated()) {
      Closing c = closing_.top();
      closing_.pop();
      KeyState& ks = *c.key;
      --ks.heap_refs;
      auto w = std::find_if(ks.windows.begin(), ks.windows.end(), [&](const OpenWindow& ow) {
        return ow.start == c.start && ow.end == c.end;
      });
      if (w != ks.windows.end()) {
        EmitWindow(ks, *w, out);
        ks.windows.erase(w);
      }
      if (ks.windows.empty() && ks.heap_refs == 0) keys_.Erase(*ks.key_json);
    }
  }

  void EmitWindow(const KeyState& ks, const OpenWindow& w, Emitter& out) {
    std::vector<Field> values = spec_.aggregator.Results(w.state);
    Envelope e;
    e.id = context_.pipeline + ":" + HashHex(*ks.key_json) + ":" + std::to_string(w.start);
    e.key = *ks.key_json;
    std::string& b = e.body;
    b.reserve(160 + ks.key_json->size() + 24 * values.size());
    b += "{\"id\":";
    AppendJsonString(b, e.id);
    b += ",\"agent\":";
    AppendJsonString(b, context_.agent_id);
    b += ",\"pipeline\":";
    AppendJsonString(b, context_.pipeline);
    b += ",\"kind\":\"aggregate\",\"key\":";
    b += *ks.key_json;
    b += ",\"window\":{\"start\":";
    b += std::to_string(w.start);
    b += ",\"end\":";
    b += std::to_string(w.end);
    b += "},\"values\":{";
    for (size_t i = 0; i < values.size(); ++i) {
      if (i > 0) b += ',';
      AppendJsonString(b, values[i].name);
      b += ':';
      AppendValueJson(b, values[i].value);
    }
    b += "}}";

    Record r;
    r.event_time_ms = w.start;
    r.arrival_ms = last_arrival_ms_ == kNoTime ? w.start : last_arrival_ms_;
    r.fields = ks.key_fields;
    for (Field& f : values) r.fields.push_back(std::move(f));
    out.Emit(std::move(e), r);
  }

  void Clear() {
    keys_.clear();
    closing_ = {};
    max_event_ms_ = kNoTime;
    watermark_ = kNoTime;
    last_arrival_ms_ = kNoTime;
    stats_ = {};
  }

  Status Decode(std::string_view in) {
    auto corrupt = [](const std::string& what) {
      return Status::DataLoss("window snapshot is corrupt: " + what);
    };
    uint64_t version, late, nkeys;
    if (!codec::GetVarint(in, &version)) return corrupt("no version");
    if (version != kSnapshotVersion) {
      return Status::DataLoss("window snapshot has version " + std::to_string(version) +
                              ", expected " + std::to_string(kSnapshotVersion));
    }
    if (!codec::GetSigned(in, &max_event_ms_) || !codec::GetSigned(in, &watermark_) ||
        !codec::GetSigned(in, &last_arrival_ms_) || !codec::GetVarint(in, &late) ||
        !codec::GetVarint(in, &nkeys)) {
      return corrupt("truncated header");
    }
    stats_.late = late;
    for (uint64_t k = 0; k < nkeys; ++k) {
      std::vector<Field> fields;
      uint64_t nwindows;
      if (!DecodeFields(in, &fields) || !codec::GetVarint(in, &nwindows) ||
          nwindows > in.size()) {
        return corrupt("truncated key");
      }
      Record probe;
      probe.fields = fields;
      BuildKey(probe);
      if (keys_.Find(key_buffer_)) return corrupt("duplicate key " + key_buffer_);
      KeyState& ks = KeyFor(probe);
      for (uint64_t i = 0; i < nwindows; ++i) {
        OpenWindow w;
        std::string_view state;
        if (!codec::GetSigned(in, &w.start) || !codec::GetSigned(in, &w.end) ||
            !codec::GetBytes(in, &state)) {
          return corrupt("truncated window");
        }
        if (w.end <= w.start) return corrupt("window " + Describe(w.start, w.end));
        RETURN_IF_ERROR(spec_.aggregator.Validate(state));
        w.state = std::string(state);
        ks.windows.push_back(std::move(w));
        Schedule(ks, ks.windows.back().start, ks.windows.back().end);
      }
    }
    if (!in.empty()) return corrupt("trailing bytes");
    return Status::Ok();
  }

  const OutputContext context_;
  const WindowSpec spec_;
  using Keys = KeyTable<KeyState>;
  Keys keys_;
  std::priority_queue<Closing, std::vector<Closing>, LaterFirst> closing_;
  int64_t max_event_ms_ = kNoTime;
  int64_t watermark_ = kNoTime;
  int64_t last_arrival_ms_ = kNoTime;
  OperatorStats stats_;
  // Scratch for the key of the record at hand: no allocation per record.
  std::string key_buffer_;
};

}  // namespace

StatusOr<std::unique_ptr<Operator>> NewWindow(OutputContext context, WindowSpec spec) {
  switch (spec.kind) {
    case WindowKind::kTumbling:
      if (spec.size_ms <= 0) return Status::InvalidArgument("window size must be positive");
      break;
    case WindowKind::kHopping:
      if (spec.size_ms <= 0 || spec.step_ms <= 0 || spec.step_ms > spec.size_ms) {
        return Status::InvalidArgument("hopping window needs 0 < step <= size");
      }
      break;
    case WindowKind::kSession:
      if (spec.gap_ms <= 0) return Status::InvalidArgument("session gap must be positive");
      break;
  }
  if (spec.lateness_ms < 0) return Status::InvalidArgument("lateness must not be negative");
  return std::unique_ptr<Operator>(
      std::make_unique<WindowOperator>(std::move(context), std::move(spec)));
}

}  // namespace sluice::operators

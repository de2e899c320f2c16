#include "operators/alert.h"

#include <algorithm>
#include <utility>

#include "operators/codec.h"
#include "operators/key_table.h"
#include "operators/output.h"
#include "platform/json_text.h"

namespace sluice::operators {
namespace {

// How far behind a key's latest reading a reading may be and still be taken
// for one delivered out of order (ignored), not for a clock set back.
constexpr int64_t kOutOfOrderMs = 60 * 60 * 1000;

// Keys in ok hold no entry, so a key's entry is always one of these.
enum class Phase : uint8_t { kPending = 1, kFiring = 2 };

struct KeyState {
  Phase phase = Phase::kPending;
  int64_t last_ms = 0;           // latest event time seen for the key
  int64_t pending_since_ms = 0;  // when `when` became true
  int64_t since_ms = 0;          // when it began firing (firing only)
  int64_t notified_ms = 0;       // the last firing record, first or repeat
  uint64_t renotified = 0;       // repeats so far; N in "renotify-N"
  std::vector<Value> key_values; // in spec.key order; null where missing
};

// `later - earlier >= span`, for later >= earlier and span >= 0, without the
// signed overflow a naive subtraction risks on extreme timestamps.
bool ElapsedAtLeast(int64_t later, int64_t earlier, int64_t span) {
  return static_cast<uint64_t>(later) - static_cast<uint64_t>(earlier) >=
         static_cast<uint64_t>(span);
}

void AppendKeyJson(std::string& out, const std::vector<std::string>& names,
                   const std::vector<Value>& values) {
  out += '{';
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ',';
    AppendJsonString(out, names[i]);
    out += ':';
    AppendValueJson(out, values[i]);
  }
  out += '}';
}

// Snapshot encoding (codec.h): magic, entry count, entries, then the FNV-1a
// hash of everything before it as 16 hex digits, so a torn or bit-flipped
// checkpoint is refused instead of restoring a wrong alert state.
constexpr std::string_view kMagic = "SLA\x01";
constexpr size_t kChecksumSize = 16;

class Alert final : public Operator {
 public:
  Alert(OutputContext context, AlertSpec spec)
      : context_(std::move(context)), spec_(std::move(spec)) {
    // Negative durations make no sense; treat them as their neutral values
    // rather than firing or renotifying at odd times.
    spec_.for_ms = std::max<int64_t>(spec_.for_ms, 0);
    if (spec_.renotify_ms && *spec_.renotify_ms <= 0) spec_.renotify_ms.reset();
    if (!spec_.labels.empty()) {
      labels_json_ += '{';
      bool first = true;
      for (const auto& [name, value] : spec_.labels) {
        if (!first) labels_json_ += ',';
        first = false;
        AppendJsonString(labels_json_, name);
        labels_json_ += ':';
        AppendJsonString(labels_json_, value);
      }
      labels_json_ += '}';
    }
  }

  Status OnRecord(const Record& record, Emitter& out) override {
    // One reused buffer: most records leave the state alone, and building the
    // key should not allocate for each of them.
    key_json_.clear();
    AppendKeyJson(key_json_, spec_.key, KeyValuesOf(record, &key_values_));
    Keys::Entry* entry = keys_.Find(key_json_);

    if (!entry) {  // ok
      Truth when = spec_.when.Evaluate(record);
      if (when != Truth::kTrue) {
        if (when != Truth::kFalse) ++unmatched_;
        return Status::Ok();
      }
      entry = keys_.Emplace(key_json_).first;
      KeyState& s = entry->value;
      s.last_ms = record.event_time_ms;
      s.pending_since_ms = record.event_time_ms;
      s.key_values = key_values_;
      if (spec_.for_ms == 0) Fire(*entry, record, out);
      return Status::Ok();
    }

    KeyState& s = entry->value;
    // Out of order: a newer reading of this key has already spoken. Judging
    // the older one now would resolve a firing alert (or cancel a pending
    // one) on what was true before, and date it at the newer reading. Much
    // older is a device clock set back (a reboot to 1970, an NTP step): its
    // readings are judged, at the key's latest time, or the alert could
    // never end.
    if (record.event_time_ms < s.last_ms &&
        !ElapsedAtLeast(s.last_ms, record.event_time_ms, kOutOfOrderMs + 1)) {
      return Status::Ok();
    }
    s.last_ms = std::max(s.last_ms, record.event_time_ms);
    const int64_t now = s.last_ms;

    if (s.phase == Phase::kPending) {
      switch (spec_.when.Evaluate(record)) {
        case Truth::kTrue:
          if (ElapsedAtLeast(now, s.pending_since_ms, spec_.for_ms)) Fire(*entry, record, out);
          break;
        case Truth::kFalse:
          keys_.Erase(entry->key);  // back to ok, silently
          break;
        case Truth::kMissing:
        case Truth::kTypeError:
          ++unmatched_;  // says nothing about the condition: stay pending
          break;
      }
      return Status::Ok();
    }

    // Firing. Without `clear`, only `when` evaluating to false resolves: a
    // record that lacks the field is no evidence that the condition ended.
    Truth t = spec_.clear ? spec_.clear->Evaluate(record) : spec_.when.Evaluate(record);
    if (t == Truth::kMissing || t == Truth::kTypeError) {
      ++unmatched_;
      return Status::Ok();
    }
    const bool resolves = spec_.clear ? t == Truth::kTrue : t == Truth::kFalse;
    if (resolves) {
      EmitAlert(*entry, record, "resolved", "resolved", now, out);
      keys_.Erase(entry->key);
      return Status::Ok();
    }
    if (spec_.renotify_ms && ElapsedAtLeast(now, s.notified_ms, *spec_.renotify_ms)) {
      ++s.renotified;
      s.notified_ms = now;
      EmitAlert(*entry, record, "firing", "renotify-" + std::to_string(s.renotified), now, out);
    }
    return Status::Ok();
  }

  // Alerts act on records only: `for` completes, and renotify repeats, on the
  // next record of the key, never from the passage of time alone.
  Status OnWatermark(int64_t, Emitter&) override { return Status::Ok(); }

  std::string Snapshot() const override {
    // Sorted, so the same state always gives the same bytes.
    std::vector<const Keys::Entry*> entries;
    entries.reserve(keys_.size());
    keys_.ForEach([&](const Keys::Entry& entry) { entries.push_back(&entry); });
    std::sort(entries.begin(), entries.end(),
              [](const auto* a, const auto* b) { return a->key < b->key; });

    std::string out(kMagic);
    codec::PutVarint(out, entries.size());
    for (const auto* entry : entries) {
      const KeyState& s = entry->value;
      out += static_cast<char>(s.phase);
      codec::PutSigned(out, s.last_ms);
      codec::PutSigned(out, s.pending_since_ms);
      codec::PutSigned(out, s.since_ms);
      codec::PutSigned(out, s.notified_ms);
      codec::PutVarint(out, s.renotified);
      codec::PutVarint(out, s.key_values.size());
      for (const Value& v : s.key_values) EncodeValue(out, v);
    }
    out += HashHex(out);
    return out;
  }

  Status Restore(std::string_view snapshot) override {
    keys_.clear();
    auto restored = Decode(snapshot);
    if (!restored.ok()) return restored.status();
    keys_ = std::move(*restored);
    return Status::Ok();
  }

  OperatorStats Stats() const override {
    OperatorStats st;
    st.unmatched = unmatched_;
    st.keys = keys_.size();
    keys_.ForEach([&](const Keys::Entry& entry) {
      const KeyState& s = entry.value;
      if (s.phase == Phase::kFiring) ++st.firing;
      // The entry and its slot (two slots per entry at most), the key's and
      // the values' heap text.
      st.state_bytes += sizeof(Keys::Entry) + 2 * (sizeof(uint64_t) + sizeof(void*)) +
                        entry.key.capacity() + s.key_values.capacity() * sizeof(Value);
      for (const Value& v : s.key_values) {
        if (const auto* str = std::get_if<std::string>(&v)) st.state_bytes += str->capacity();
        if (const auto* raw = std::get_if<RawJson>(&v)) st.state_bytes += raw->text.capacity();
      }
    });
    return st;
  }

 private:
  using Keys = KeyTable<KeyState>;

  const std::vector<Value>& KeyValuesOf(const Record& record, std::vector<Value>* values) const {
    values->resize(spec_.key.size());
    for (size_t i = 0; i < spec_.key.size(); ++i) {
      const Value* v = record.Find(spec_.key[i]);
      (*values)[i] = v ? *v : Value{};
    }
    return *values;
  }

  void Fire(Keys::Entry& entry, const Record& record, Emitter& out) {
    KeyState& s = entry.value;
    s.phase = Phase::kFiring;
    s.since_ms = s.last_ms;
    s.notified_ms = s.last_ms;
    s.renotified = 0;
    EmitAlert(entry, record, "firing", "firing", s.last_ms, out);
  }

  void EmitAlert(const Keys::Entry& entry, const Record& cause, std::string_view state,
                 std::string_view id_suffix, int64_t at, Emitter& out) const {
    const std::string& key_json = entry.key;
    const KeyState& s = entry.value;

    Envelope e;
    e.id.reserve(context_.pipeline.size() + 48 + id_suffix.size());
    e.id.append(context_.pipeline)
        .append(1, ':')
        .append(HashHex(key_json))
        .append(1, ':')
        .append(std::to_string(s.since_ms))
        .append(1, ':')
        .append(id_suffix);
    e.key = key_json;

    std::string& b = e.body;
    b.reserve(e.id.size() + context_.agent_id.size() + context_.pipeline.size() +
              2 * key_json.size() + 32 * cause.fields.size() + labels_json_.size() + 160);
    b += "{\"id\":";
    AppendJsonString(b, e.id);
    b += ",\"agent\":";
    AppendJsonString(b, context_.agent_id);
    b += ",\"pipeline\":";
    AppendJsonString(b, context_.pipeline);
    b += ",\"kind\":\"alert\",\"key\":";
    b += key_json;
    b += ",\"state\":";
    AppendJsonString(b, state);
    b += ",\"severity\":";
    AppendJsonString(b, spec_.severity);
    b += ",\"value\":{";
    for (size_t i = 0; i < cause.fields.size(); ++i) {
      if (i > 0) b += ',';
      AppendJsonString(b, cause.fields[i].name);
      b += ':';
      AppendValueJson(b, cause.fields[i].value);
    }
    b += "},\"at\":";
    b += std::to_string(at);
    b += ",\"since\":";
    b += std::to_string(s.since_ms);
    if (!labels_json_.empty()) {
      b += ",\"labels\":";
      b += labels_json_;
    }
    b += '}';

    Record r;
    r.topic = cause.topic;
    r.event_time_ms = at;
    r.arrival_ms = cause.arrival_ms;
    r.fields.reserve(spec_.key.size() + 4);
    for (size_t i = 0; i < spec_.key.size(); ++i) r.fields.push_back({spec_.key[i], s.key_values[i]});
    r.fields.push_back({"state", std::string(state)});
    r.fields.push_back({"severity", spec_.severity});
    r.fields.push_back({"at", at});
    r.fields.push_back({"since", s.since_ms});

    out.Emit(std::move(e), r);
  }

  StatusOr<Keys> Decode(std::string_view snapshot) const {
    const Status corrupt = Status::DataLoss("alert snapshot is malformed");
    if (snapshot.size() < kMagic.size() + kChecksumSize ||
        snapshot.substr(0, kMagic.size()) != kMagic) {
      return corrupt;
    }
    std::string_view body = snapshot.substr(0, snapshot.size() - kChecksumSize);
    if (HashHex(body) != snapshot.substr(body.size())) return corrupt;

    std::string_view in = body.substr(kMagic.size());
    uint64_t count;
    if (!codec::GetVarint(in, &count)) return corrupt;
    Keys keys;
    for (uint64_t n = 0; n < count; ++n) {
      KeyState s;
      uint64_t key_count;
      if (in.empty()) return corrupt;
      const auto phase = static_cast<uint8_t>(in.front());
      in.remove_prefix(1);
      if (!codec::GetSigned(in, &s.last_ms) || !codec::GetSigned(in, &s.pending_since_ms) ||
          !codec::GetSigned(in, &s.since_ms) || !codec::GetSigned(in, &s.notified_ms) ||
          !codec::GetVarint(in, &s.renotified) || !codec::GetVarint(in, &key_count) ||
          key_count != spec_.key.size()) {
        return corrupt;
      }
      if (phase != static_cast<uint8_t>(Phase::kPending) &&
          phase != static_cast<uint8_t>(Phase::kFiring)) {
        return corrupt;
      }
      s.phase = static_cast<Phase>(phase);
      // The invariants OnRecord keeps; ElapsedAtLeast relies on them.
      if (s.pending_since_ms > s.last_ms) return corrupt;
      if (s.phase == Phase::kFiring &&
          (s.since_ms > s.notified_ms || s.notified_ms > s.last_ms)) {
        return corrupt;
      }
      s.key_values.resize(key_count);
      for (Value& v : s.key_values) {
        if (!DecodeValue(in, &v)) return corrupt;
      }
      std::string key_json;
      AppendKeyJson(key_json, spec_.key, s.key_values);
      auto [entry, inserted] = keys.Emplace(key_json);
      if (!inserted) return corrupt;
      entry->value = std::move(s);
    }
    if (!in.empty()) return corrupt;
    return keys;
  }

  const OutputContext context_;
  AlertSpec spec_;           // durations normalized in the constructor
  std::string labels_json_;  // empty when no labels are configured
  Keys keys_;                // pending and firing keys, by their key JSON
  uint64_t unmatched_ = 0;
  std::string key_json_;           // scratch for OnRecord
  std::vector<Value> key_values_;  // scratch for OnRecord
};

}  // namespace

std::unique_ptr<Operator> NewAlert(OutputContext context, AlertSpec spec) {
  return std::make_unique<Alert>(std::move(context), std::move(spec));
}

}  // namespace sluice::operators

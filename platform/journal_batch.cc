#include "platform/journal_batch.h"

namespace sluice {
namespace {

// LEB128, as the journal_batches rows have always held it.
void AppendVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

bool ReadVarint(std::string_view in, size_t* at, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (*at >= in.size()) return false;
    const auto byte = static_cast<uint8_t>(in[(*at)++]);
    *v |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

}  // namespace

void JournalBatch::push_back(const Reading& reading) {
  if (used_ == 0 || runs_[used_ - 1].source != reading.source) {
    if (used_ == runs_.size()) runs_.emplace_back();
    Run& run = runs_[used_++];
    run.source.assign(reading.source);
    run.packed.clear();
    run.readings = 0;
    run.payload_bytes = 0;
  }
  Run& run = runs_[used_ - 1];
  AppendVarint(reading.topic.size(), &run.packed);
  run.packed.append(reading.topic);
  AppendVarint(reading.payload.size(), &run.packed);
  run.packed.append(reading.payload);
  AppendVarint(static_cast<uint64_t>(reading.arrival_ms), &run.packed);
  ++run.readings;
  run.payload_bytes += reading.payload.size();
  ++size_;
}

void JournalBatch::clear() {
  used_ = 0;
  size_ = 0;
}

bool UnpackJournal(std::string_view packed, std::string_view source, std::vector<JournalEntry>* out) {
  for (size_t at = 0; at < packed.size();) {
    JournalEntry e;
    e.source = source;
    uint64_t n = 0;
    if (!ReadVarint(packed, &at, &n) || packed.size() - at < n) return false;
    e.topic.assign(packed.substr(at, n));
    at += n;
    if (!ReadVarint(packed, &at, &n) || packed.size() - at < n) return false;
    e.payload.assign(packed.substr(at, n));
    at += n;
    if (!ReadVarint(packed, &at, &n)) return false;
    e.arrival_ms = static_cast<int64_t>(n);
    out->push_back(std::move(e));
  }
  return true;
}

}  // namespace sluice

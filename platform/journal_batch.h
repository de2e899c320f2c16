// The ingest journal's readings, packed as the store keeps them: one row
// per run of readings from the same source (a source's batch is one run),
// each reading's topic, payload and arrival time appended to the run's
// bytes. Adding a reading copies it once; once the buffers have grown,
// nothing is allocated (three strings per reading cost ~3 % of the agent
// at 10,000 devices).
//
//   JournalBatch batch;
//   batch.push_back({"plant", topic, payload, arrival_ms});
//   for (const JournalBatch::Run& run : batch.runs()) { /* one row */ }
//   std::vector<JournalEntry> entries;
//   if (!UnpackJournal(run.packed, run.source, &entries)) { /* malformed */ }
#ifndef SLUICE_PLATFORM_JOURNAL_BATCH_H_
#define SLUICE_PLATFORM_JOURNAL_BATCH_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

// One reading kept for replay into window/alert state after a crash.
struct JournalEntry {
  std::string source;
  std::string topic;
  std::string payload;
  int64_t arrival_ms = 0;
};

class JournalBatch {
 public:
  struct Reading {
    std::string_view source;
    std::string_view topic;
    std::string_view payload;
    int64_t arrival_ms = 0;
  };
  struct Run {
    std::string source;
    std::string packed;
    uint64_t readings = 0;
    uint64_t payload_bytes = 0;
  };

  void push_back(const Reading& reading);
  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }  // readings
  // Keeps the buffers for the next batch.
  void clear();
  std::span<const Run> runs() const { return {runs_.data(), used_}; }

 private:
  std::vector<Run> runs_;  // the first used_ are this batch's
  size_t used_ = 0;
  size_t size_ = 0;
};

// The readings of one run's packed bytes, appended to *out; false when
// malformed.
bool UnpackJournal(std::string_view packed, std::string_view source, std::vector<JournalEntry>* out);

}  // namespace sluice

#endif  // SLUICE_PLATFORM_JOURNAL_BATCH_H_

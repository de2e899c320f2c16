// JournalBatch: runs by source, what a run unpacks to, and reuse after clear().
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "platform/journal_batch.h"

using sluice::JournalBatch;
using sluice::JournalEntry;
using sluice::UnpackJournal;

namespace {

std::vector<JournalEntry> Unpack(const JournalBatch::Run& run) {
  std::vector<JournalEntry> out;
  REQUIRE(UnpackJournal(run.packed, run.source, &out));
  REQUIRE(out.size() == run.readings);
  return out;
}

}  // namespace

TEST_CASE("journal batch: one run per stretch of one source, each unpacking to its readings") {
  JournalBatch batch;
  const std::string binary("\0\x01\xff\x80 ok", 7);
  const std::string long_payload(300, 'x');  // a two-byte length
  batch.push_back({"plant", "sensors/a", "{\"t\":1}", 11});
  batch.push_back({"plant", "sensors/b", binary, 12});
  batch.push_back({"lab", "", long_payload, 13});
  batch.push_back({"plant", "sensors/c", "", -1});
  REQUIRE(batch.size() == 4);
  REQUIRE(batch.runs().size() == 3);

  const JournalBatch::Run& first = batch.runs()[0];
  CHECK(first.source == "plant");
  CHECK(first.payload_bytes == 7 + binary.size());
  std::vector<JournalEntry> a = Unpack(first);
  CHECK(a[0].source == "plant");
  CHECK(a[0].topic == "sensors/a");
  CHECK(a[0].payload == "{\"t\":1}");
  CHECK(a[0].arrival_ms == 11);
  CHECK(a[1].topic == "sensors/b");
  CHECK(a[1].payload == binary);
  CHECK(a[1].arrival_ms == 12);

  std::vector<JournalEntry> b = Unpack(batch.runs()[1]);
  CHECK(b[0].source == "lab");
  CHECK(b[0].topic.empty());
  CHECK(b[0].payload == long_payload);
  CHECK(batch.runs()[1].payload_bytes == 300);

  std::vector<JournalEntry> c = Unpack(batch.runs()[2]);
  CHECK(c[0].source == "plant");
  CHECK(c[0].topic == "sensors/c");
  CHECK(c[0].payload.empty());
  CHECK(c[0].arrival_ms == -1);
}

TEST_CASE("journal batch: after clear() a batch holds only its own readings") {
  JournalBatch batch;
  batch.push_back({"plant", "sensors/a", "old-1", 1});
  batch.push_back({"lab", "lab/a", "old-2", 2});
  batch.clear();
  CHECK(batch.empty());
  CHECK(batch.runs().empty());
  batch.push_back({"lab", "lab/b", "new", 3});
  REQUIRE(batch.size() == 1);
  REQUIRE(batch.runs().size() == 1);
  CHECK(batch.runs()[0].source == "lab");
  CHECK(batch.runs()[0].payload_bytes == 3);
  std::vector<JournalEntry> entries = Unpack(batch.runs()[0]);
  REQUIRE(entries.size() == 1);
  CHECK(entries[0].topic == "lab/b");
  CHECK(entries[0].payload == "new");
  CHECK(entries[0].arrival_ms == 3);
}

TEST_CASE("journal batch: truncated bytes are refused, not read past") {
  JournalBatch batch;
  batch.push_back({"plant", "sensors/a", std::string(200, 'p'), 1700000000000});
  const std::string& packed = batch.runs()[0].packed;
  for (size_t cut = 1; cut < packed.size(); ++cut) {
    std::vector<JournalEntry> out;
    INFO("cut at " << cut);
    CHECK_FALSE(UnpackJournal(std::string_view(packed).substr(0, cut), "plant", &out));
  }
}

// The SQLite store (platform/store.h): queues, overflow policies, journal,
// checkpoints, corruption quarantine, the writer lock, read-only readers, a
// full disk (a real 2 MiB tmpfs when running as root, and max_page_count),
// and the dead letters (cap, counters, a database from before their table).
#include <catch2/catch.hpp>

#include <sqlite3.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "platform/store.h"

using namespace sluice;
namespace fs = std::filesystem;

namespace {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "sluice-store-XXXXXX").string();
    char* p = ::mkdtemp(tmpl.data());
    REQUIRE(p != nullptr);
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A record whose body is exactly `size` bytes and names `n`.
Envelope Record(int n, size_t size = 100) {
  std::string body = "{\"n\":" + std::to_string(n) + ",\"pad\":\"";
  if (body.size() + 2 < size) body.append(size - body.size() - 2, 'x');
  body += "\"}";
  return Envelope{"id-" + std::to_string(n), "key-" + std::to_string(n % 7), body};
}

std::vector<Envelope> Records(int from, int to, size_t size = 100) {
  std::vector<Envelope> v;
  for (int i = from; i < to; ++i) v.push_back(Record(i, size));
  return v;
}

std::unique_ptr<Store> OpenOk(const std::string& path, StoreOptions options = {}) {
  auto store = Store::Open(path, options);
  INFO(store.status().ToString());
  REQUIRE(store.ok());
  return std::move(store).value();
}

int AddOk(Store& store, const std::string& sink, QueueOptions options = {}) {
  auto index = store.AddQueue(sink, options);
  INFO(index.status().ToString());
  REQUIRE(index.ok());
  return *index;
}

Status Append(Store& store, int queue, std::vector<Envelope> records) {
  Commit c;
  c.outputs.resize(queue + 1);
  c.outputs[queue] = std::move(records);
  return store.Write(c);
}

void AppendOk(Store& store, int queue, std::vector<Envelope> records) {
  Status s = Append(store, queue, std::move(records));
  INFO(s.ToString());
  REQUIRE(s.ok());
}

std::vector<QueuedEnvelope> PeekOk(SinkQueue& q, size_t max, Millis wait = Millis(0)) {
  auto r = q.Peek(max, wait);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  return std::move(r).value();
}

// Reads every record of the queue through Peek/Remove; returns their ids.
std::vector<std::string> Drain(SinkQueue& q, size_t page = 1000) {
  std::vector<std::string> ids;
  while (true) {
    auto batch = PeekOk(q, page);
    if (batch.empty()) return ids;
    for (const QueuedEnvelope& e : batch) ids.push_back(e.envelope.id);
    REQUIRE(q.Remove(batch.back().seq).ok());
  }
}

std::vector<std::string> Ids(int from, int to) {
  std::vector<std::string> v;
  for (int i = from; i < to; ++i) v.push_back("id-" + std::to_string(i));
  return v;
}

QueueStats StatsOf(Store& store, const std::string& sink) {
  auto stats = store.Stats();
  REQUIRE(stats.ok());
  for (const QueueStats& s : *stats) {
    if (s.sink == sink) return s;
  }
  FAIL("no queue " << sink);
  return {};
}

void CheckInvariant(const QueueStats& s) {
  INFO("sink " << s.sink << ": records " << s.records << " appended " << s.appended
               << " delivered " << s.delivered << " dead_lettered " << s.dead_lettered
               << " dropped_oldest " << s.dropped_oldest << " purged " << s.purged);
  CHECK(s.records == s.appended - s.delivered - s.dead_lettered - s.dropped_oldest - s.purged);
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  REQUIRE(out.good());
}

std::vector<std::string> CorruptFiles(const std::string& dir) {
  std::vector<std::string> found;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (name.rfind("sluice.db.corrupt-", 0) == 0) found.push_back(e.path().string());
  }
  return found;
}

template <typename F>
bool Eventually(F f, Millis patience = Millis(5000)) {
  auto deadline = std::chrono::steady_clock::now() + patience;
  while (std::chrono::steady_clock::now() < deadline) {
    if (f()) return true;
    std::this_thread::sleep_for(Millis(5));
  }
  return f();
}

}  // namespace

TEST_CASE("store: append, peek and remove keep order across reopen") {
  TempDir dir;
  const std::string path = dir.File("sluice.db");
  uint64_t first_seq = 0;
  {
    auto store = OpenOk(path);
    int q = AddOk(*store, "cloud");
    AppendOk(*store, q, Records(0, 5));
    AppendOk(*store, q, Records(5, 10));
    SinkQueue& queue = *store->queue(q);
    CHECK(queue.size() == 10);
    auto a = PeekOk(queue, 3);
    REQUIRE(a.size() == 3);
    CHECK(a[0].envelope.id == "id-0");
    CHECK(a[0].envelope.key == "key-0");
    CHECK(a[0].envelope.body == Record(0).body);
    CHECK(a[0].seq < a[1].seq);
    CHECK(a[1].seq < a[2].seq);
    auto again = PeekOk(queue, 3);  // Peek leaves them queued
    CHECK(again[0].seq == a[0].seq);
    REQUIRE(queue.Remove(a[2].seq).ok());
    CHECK(queue.size() == 7);
    first_seq = a[2].seq;
  }
  auto store = OpenOk(path);
  int q = AddOk(*store, "cloud");
  SinkQueue& queue = *store->queue(q);
  CHECK(queue.size() == 7);
  auto b = PeekOk(queue, 100);
  REQUIRE(b.size() == 7);
  CHECK(b[0].envelope.id == "id-3");
  CHECK(b[0].seq > first_seq);
  CHECK(b.back().envelope.id == "id-9");
  // Sequence numbers are never reused, even after the queue was emptied.
  REQUIRE(queue.Remove(b.back().seq).ok());
  CHECK(queue.size() == 0);
  store.reset();
  store = OpenOk(path);
  q = AddOk(*store, "cloud");
  AppendOk(*store, q, Records(10, 11));
  auto c = PeekOk(*store->queue(q), 10);
  REQUIRE(c.size() == 1);
  CHECK(c[0].seq > b.back().seq);
}

TEST_CASE("store: queues are independent and kept when not declared again") {
  TempDir dir;
  const std::string path = dir.File("sluice.db");
  {
    auto store = OpenOk(path);
    int a = AddOk(*store, "a");
    int b = AddOk(*store, "b");
    CHECK(AddOk(*store, "a") == a);  // declaring twice gives the same queue
    CHECK(store->queue_count() == 2);
    CHECK(store->queue(2) == nullptr);
    Commit c;
    c.outputs.resize(2);
    c.outputs[a] = Records(0, 3);
    c.outputs[b] = Records(100, 102);
    REQUIRE(store->Write(c).ok());
    CHECK(store->queue(a)->size() == 3);
    CHECK(store->queue(b)->size() == 2);
    Commit too_wide;
    too_wide.outputs.resize(3);
    too_wide.outputs[2] = Records(0, 1);
    CHECK(store->Write(too_wide).code() == StatusCode::kInvalidArgument);
  }
  auto store = OpenOk(path);
  int b = AddOk(*store, "b");  // "a" not declared: its rows stay
  CHECK(Drain(*store->queue(b)) == Ids(100, 102));
  CHECK(StatsOf(*store, "a").records == 3);
  int a = AddOk(*store, "a");
  CHECK(Drain(*store->queue(a)) == Ids(0, 3));
}

TEST_CASE("store: counters are exact after appends, drops and removes") {
  TempDir dir;
  const std::string path = dir.File("sluice.db");
  {
    auto store = OpenOk(path);
    int q = AddOk(*store, "cloud", {1000, OverflowPolicy::kDropOldest});
    for (int i = 0; i < 25; i += 5) AppendOk(*store, q, Records(i, i + 5));
    QueueStats s = StatsOf(*store, "cloud");
    CHECK(s.records == 10);
    CHECK(s.bytes == 1000);
    CHECK(s.appended == 25);
    CHECK(s.dropped_oldest == 15);
    CHECK(s.dropped_newest == 0);
    CHECK(s.delivered == 0);
    CheckInvariant(s);
    auto peeked = PeekOk(*store->queue(q), 3);
    CHECK(peeked[0].envelope.id == "id-15");
    REQUIRE(store->queue(q)->Remove(peeked[2].seq).ok());
    s = StatsOf(*store, "cloud");
    CHECK(s.records == 7);
    CHECK(s.bytes == 700);
    CHECK(s.delivered == 3);
    CheckInvariant(s);
    CHECK(s.oldest_ms > 0);
  }
  auto store = OpenOk(path);  // the figures live in the file
  QueueStats s = StatsOf(*store, "cloud");
  CHECK(s.records == 7);
  CHECK(s.bytes == 700);
  CHECK(s.appended == 25);
  CHECK(s.delivered == 3);
  CHECK(s.dropped_oldest == 15);
  CheckInvariant(s);
}

TEST_CASE("store: records the sink refused count as dead-lettered, not delivered") {
  TempDir dir;
  const std::string path = dir.File("sluice.db");
  {
    auto store = OpenOk(path);
    int q = AddOk(*store, "cloud");
    AppendOk(*store, q, Records(0, 10));
    SinkQueue& queue = *store->queue(q);
    auto first = PeekOk(queue, 4);
    REQUIRE(first.size() == 4);
    REQUIRE(queue.Remove(first.back().seq, 4).ok());  // deleted at once
    QueueStats s = StatsOf(*store, "cloud");
    CHECK(s.delivered == 0);
    CHECK(s.dead_lettered == 4);
    CheckInvariant(s);
    auto second = PeekOk(queue, 4);
    REQUIRE(second.size() == 4);
    REQUIRE(queue.Remove(second.back().seq, 1).ok());  // right after: the delete waits
    s = StatsOf(*store, "cloud");
    CHECK(s.records == 2);
    CHECK(s.delivered == 3);
    CHECK(s.dead_lettered == 5);
    CheckInvariant(s);
    AppendOk(*store, q, Records(10, 12));  // the commit carries the delete
    s = StatsOf(*store, "cloud");
    CHECK(s.delivered == 3);
    CHECK(s.dead_lettered == 5);
    CheckInvariant(s);
    REQUIRE(queue.Remove(PeekOk(queue, 100).back().seq).ok());
  }
  auto store = OpenOk(path);  // the figures live in the file
  QueueStats s = StatsOf(*store, "cloud");
  CHECK(s.records == 0);
  CHECK(s.appended == 12);
  CHECK(s.delivered == 7);
  CHECK(s.dead_lettered == 5);
  CheckInvariant(s);
}

TEST_CASE("store: overflow policies at the cap") {
  TempDir dir;
  auto store = OpenOk(dir.File("sluice.db"));

  SECTION("drop_oldest deletes exactly the oldest records") {
    int q = AddOk(*store, "q", {1000, OverflowPolicy::kDropOldest});
    AppendOk(*store, q, Records(0, 10));
    AppendOk(*store, q, Records(10, 13));
    QueueStats s = StatsOf(*store, "q");
    CHECK(s.records == 10);
    CHECK(s.dropped_oldest == 3);
    CHECK(Drain(*store->queue(q)) == Ids(3, 13));
    CheckInvariant(StatsOf(*store, "q"));
  }
  SECTION("drop_oldest: a batch larger than the cap keeps its newest records") {
    int q = AddOk(*store, "q", {300, OverflowPolicy::kDropOldest});
    AppendOk(*store, q, Records(0, 2));
    AppendOk(*store, q, Records(2, 7));
    QueueStats s = StatsOf(*store, "q");
    CHECK(s.records == 3);
    CHECK(s.bytes == 300);
    CHECK(s.appended == 7);
    CHECK(s.dropped_oldest == 4);
    CheckInvariant(s);
    CHECK(Drain(*store->queue(q)) == Ids(4, 7));
  }
  SECTION("drop_newest leaves the new records out, counted") {
    int q = AddOk(*store, "q", {1000, OverflowPolicy::kDropNewest});
    AppendOk(*store, q, Records(0, 8));
    AppendOk(*store, q, Records(8, 13));
    QueueStats s = StatsOf(*store, "q");
    CHECK(s.records == 10);
    CHECK(s.appended == 10);
    CHECK(s.dropped_newest == 3);
    CheckInvariant(s);
    CHECK(Drain(*store->queue(q)) == Ids(0, 10));
  }
  SECTION("drop_newest keeps a later record that still fits") {
    int q = AddOk(*store, "q", {250, OverflowPolicy::kDropNewest});
    std::vector<Envelope> batch = {Record(0, 100), Record(1, 100), Record(2, 100), Record(3, 50)};
    AppendOk(*store, q, batch);
    QueueStats s = StatsOf(*store, "q");
    CHECK(s.records == 3);
    CHECK(s.bytes == 250);
    CHECK(s.dropped_newest == 1);
    CHECK(Drain(*store->queue(q)) == std::vector<std::string>{"id-0", "id-1", "id-3"});
  }
  SECTION("block: an empty queue takes a batch above the cap") {
    int q = AddOk(*store, "q", {100, OverflowPolicy::kBlock});
    AppendOk(*store, q, Records(0, 5));
    CHECK(store->queue(q)->size() == 5);
  }
}

TEST_CASE("store: the global cap applies on top of each queue's") {
  TempDir dir;
  StoreOptions options;
  options.max_total_bytes = 1000;
  auto store = OpenOk(dir.File("sluice.db"), options);
  int a = AddOk(*store, "a", {0, OverflowPolicy::kDropOldest});
  int b = AddOk(*store, "b", {0, OverflowPolicy::kDropNewest});
  int c = AddOk(*store, "c", {0, OverflowPolicy::kBlock});
  AppendOk(*store, a, Records(0, 6));
  AppendOk(*store, b, Records(100, 106));
  QueueStats sb = StatsOf(*store, "b");
  CHECK(sb.records == 4);
  CHECK(sb.dropped_newest == 2);
  // a may hold 1000 - 400: two more records push out its two oldest.
  AppendOk(*store, a, Records(6, 8));
  QueueStats sa = StatsOf(*store, "a");
  CHECK(sa.records == 6);
  CHECK(sa.dropped_oldest == 2);
  CHECK(sa.bytes + sb.bytes == 1000);

  // c (block) is empty: takes one batch, then waits for room.
  AppendOk(*store, c, Records(200, 201));
  std::atomic<bool> done{false};
  Status result;
  std::thread writer([&] {
    result = Append(*store, c, Records(201, 202));
    done = true;
  });
  std::this_thread::sleep_for(Millis(100));
  CHECK_FALSE(done);
  auto batch = PeekOk(*store->queue(a), 2);
  REQUIRE(store->queue(a)->Remove(batch.back().seq).ok());
  writer.join();
  CHECK(result.ok());
  CHECK(store->queue(c)->size() == 2);
}

TEST_CASE("store: block policy waits for the delivery loop") {
  TempDir dir;
  auto store = OpenOk(dir.File("sluice.db"));
  int q = AddOk(*store, "q", {1000, OverflowPolicy::kBlock});
  AppendOk(*store, q, Records(0, 10));
  SinkQueue& queue = *store->queue(q);

  SECTION("a Remove in another thread lets the writer through") {
    std::atomic<bool> done{false};
    Status result;
    std::thread writer([&] {
      result = queue.Append(Records(10, 12));
      done = true;
    });
    std::this_thread::sleep_for(Millis(150));
    CHECK_FALSE(done);
    CHECK(queue.size() == 10);
    auto batch = PeekOk(queue, 1);
    REQUIRE(queue.Remove(batch.back().seq).ok());  // 100 bytes: not yet enough
    std::this_thread::sleep_for(Millis(100));
    CHECK_FALSE(done);
    batch = PeekOk(queue, 1);
    REQUIRE(queue.Remove(batch.back().seq).ok());
    writer.join();
    CHECK(result.ok());
    QueueStats s = StatsOf(*store, "q");
    CHECK(s.records == 10);
    CHECK(s.appended == 12);
    CHECK(s.delivered == 2);
    CHECK(s.dropped_oldest + s.dropped_newest == 0);
    CHECK(Drain(queue) == Ids(2, 12));
  }
  SECTION("Close wakes a blocked writer with kCancelled, and nothing was written") {
    Commit c;
    c.journal.push_back({"plant", "t", "p", 1});
    c.outputs.resize(1);
    c.outputs[0] = Records(10, 11);
    Status result;
    std::thread writer([&] { result = store->Write(c); });
    std::this_thread::sleep_for(Millis(100));
    store->Close();
    writer.join();
    CHECK(result.code() == StatusCode::kCancelled);
    CHECK(*store->LastJournalSeq() == 0);
    CHECK(queue.size() == 10);
    // Closed: no new writes, but the delivery loop can still drain.
    CHECK(Append(*store, q, Records(20, 21)).code() == StatusCode::kCancelled);
    CHECK(Drain(queue) == Ids(0, 10));
  }
  SECTION("a Purge makes room too") {
    Status result;
    std::thread writer([&] { result = queue.Append(Records(10, 11)); });
    std::this_thread::sleep_for(Millis(100));
    auto purged = store->Purge("q");
    REQUIRE(purged.ok());
    CHECK(*purged == 10);
    writer.join();
    CHECK(result.ok());
    QueueStats s = StatsOf(*store, "q");
    CHECK(s.purged == 10);
    CHECK(s.records == 1);
    CheckInvariant(s);
  }
}

TEST_CASE("store: Peek waits for records and wakes on Close") {
  TempDir dir;
  auto store = OpenOk(dir.File("sluice.db"));
  int q = AddOk(*store, "q");
  SinkQueue& queue = *store->queue(q);
  auto start = std::chrono::steady_clock::now();
  CHECK(PeekOk(queue, 10, Millis(50)).empty());
  CHECK(std::chrono::steady_clock::now() - start >= Millis(50));

  Status appended;
  std::thread writer([&] {  // no Catch macros off the main thread
    std::this_thread::sleep_for(Millis(50));
    appended = Append(*store, q, Records(0, 1));
  });
  start = std::chrono::steady_clock::now();
  auto got = PeekOk(queue, 10, Millis(10000));
  writer.join();
  CHECK(appended.ok());
  CHECK(got.size() == 1);
  CHECK(std::chrono::steady_clock::now() - start < Millis(5000));
  REQUIRE(queue.Remove(got[0].seq).ok());

  std::thread closer([&] {
    std::this_thread::sleep_for(Millis(50));
    queue.Close();
  });
  start = std::chrono::steady_clock::now();
  CHECK(PeekOk(queue, 10, Millis(10000)).empty());
  closer.join();
  CHECK(std::chrono::steady_clock::now() - start < Millis(5000));
  CHECK(queue.Append(Records(1, 2)).code() == StatusCode::kCancelled);
}

// Write syscalls of this process so far (/proc/self/io); 0 if not there.
uint64_t WriteSyscalls() {
  std::ifstream io("/proc/self/io");
  std::string name;
  uint64_t value = 0;
  while (io >> name >> value) {
    if (name == "syscw:") return value;
  }
  return 0;
}

// SQLite writes each WAL frame as its header and then its page; the store's
// VFS (platform/sqlite_wal_batch.h) gathers a transaction's frames.
TEST_CASE("store: a commit of many pages reaches the WAL in two writes, and reads back") {
  TempDir dir;
  if (WriteSyscalls() == 0 && !std::ifstream("/proc/self/io")) {
    WARN("skipped: no /proc/self/io to count write calls");
    return;
  }
  uint64_t writes = 0;
  {
    auto store = OpenOk(dir.File("s.db"));
    const int q = AddOk(*store, "cloud");
    REQUIRE(Append(*store, q, Records(0, 10)).ok());  // the tables' first pages
    Commit c;
    c.outputs.resize(1);
    c.outputs[0] = Records(10, 60, 300);  // 15 KB of records
    for (int i = 0; i < 40; ++i) c.journal.push_back({"plant", "sensors/a", std::string(200, 'j'), i});
    const uint64_t before = WriteSyscalls();
    REQUIRE(store->Write(c).ok());
    writes = WriteSyscalls() - before;
  }
  INFO("write calls for one commit of ~23 KB: " << writes);
  // Gathered: the frames with the commit frame's header, then its page,
  // and at times a byte that grows the -shm file. Frame by frame: two per
  // page, over twenty here.
  CHECK(writes >= 2);
  CHECK(writes <= 3);
  auto store = OpenOk(dir.File("s.db"));
  const int q = AddOk(*store, "cloud");
  std::vector<QueuedEnvelope> batch = PeekOk(*store->queue(q), 100);
  REQUIRE(batch.size() == 60);
  for (size_t i = 0; i < batch.size(); ++i) {
    const int n = static_cast<int>(i);
    CHECK(batch[i].envelope.body == Record(n, n < 10 ? 100 : 300).body);
  }
  size_t journaled = 0;
  REQUIRE(store->ReadJournal(0, [&](uint64_t, const JournalEntry& e) {
    CHECK(e.payload == std::string(200, 'j'));
    ++journaled;
    return Status::Ok();
  }).ok());
  CHECK(journaled == 40);
}

TEST_CASE("store: journal append, read and trim through a checkpoint") {
  TempDir dir;
  const std::string path = dir.File("sluice.db");
  const std::string binary("bin\0ary\xff", 8);
  {
    auto store = OpenOk(path);
    CHECK(*store->LastJournalSeq() == 0);
    auto none = store->LoadCheckpoint();
    REQUIRE(none.ok());
    CHECK_FALSE(none->has_value());
    int q = AddOk(*store, "q");
    for (int i = 0; i < 600; ++i) {  // more than one page
      Commit c;
      c.journal.push_back({"plant", "sensors/" + std::to_string(i), i == 0 ? binary : "p" + std::to_string(i),
                           1000 + i});
      c.outputs.resize(1);
      if (i % 2 == 0) c.outputs[q] = Records(i, i + 1);
      REQUIRE(store->Write(c).ok());
    }
    CHECK(*store->LastJournalSeq() == 600);
    std::vector<uint64_t> seqs;
    REQUIRE(store->ReadJournal(0, [&](uint64_t seq, const JournalEntry& e) {
      if (seqs.empty()) {
        CHECK(e.payload == binary);
        CHECK(e.source == "plant");
        CHECK(e.topic == "sensors/0");
        CHECK(e.arrival_ms == 1000);
      }
      seqs.push_back(seq);
      return Status::Ok();
    }).ok());
    REQUIRE(seqs.size() == 600);
    CHECK(seqs.front() == 1);
    CHECK(seqs.back() == 600);
    CHECK(store->queue(q)->size() == 300);

    // A callback's error stops the read and comes back.
    int calls = 0;
    Status stop = store->ReadJournal(10, [&](uint64_t, const JournalEntry&) {
      return ++calls == 3 ? Status(StatusCode::kAborted, "enough") : Status::Ok();
    });
    CHECK(stop.code() == StatusCode::kAborted);
    CHECK(calls == 3);

    std::map<std::string, std::string> snaps = {{"temp_1m", binary}, {"overheat", "{}"}};
    REQUIRE(store->SaveCheckpoint(snaps, 400).ok());
    seqs.clear();
    REQUIRE(store->ReadJournal(0, [&](uint64_t seq, const JournalEntry&) {
      seqs.push_back(seq);
      return Status::Ok();
    }).ok());
    REQUIRE(seqs.size() == 200);
    CHECK(seqs.front() == 401);
    // A checkpoint replaces the previous one entirely.
    REQUIRE(store->SaveCheckpoint({{"temp_1m", "v2"}}, 600).ok());
    CHECK(*store->LastJournalSeq() == 600);  // the newest entry, even when trimmed
  }
  auto store = OpenOk(path);
  auto cp = store->LoadCheckpoint();
  REQUIRE(cp.ok());
  REQUIRE(cp->has_value());
  CHECK((*cp)->journal_seq == 600);
  CHECK((*cp)->snapshots == std::map<std::string, std::string>{{"temp_1m", "v2"}});
  CHECK((*cp)->saved_ms > 1600000000000);
  int entries = 0;
  REQUIRE(store->ReadJournal(0, [&](uint64_t, const JournalEntry&) {
    ++entries;
    return Status::Ok();
  }).ok());
  CHECK(entries == 0);
  // Sequence numbers go on after the trimmed ones: a replay from the
  // checkpoint must see the new entry.
  Commit c;
  c.journal.push_back({"plant", "t", "p", 1});
  REQUIRE(store->Write(c).ok());
  CHECK(*store->LastJournalSeq() == 601);
  std::vector<uint64_t> after;
  REQUIRE(store->ReadJournal((*cp)->journal_seq, [&](uint64_t seq, const JournalEntry&) {
    after.push_back(seq);
    return Status::Ok();
  }).ok());
  CHECK(after == std::vector<uint64_t>{601});
}

TEST_CASE("store: checkpoint round trip, and a ReadJournal callback may write") {
  auto store = OpenOk(":memory:");
  std::map<std::string, std::string> snaps;
  for (int i = 0; i < 20; ++i) snaps["p" + std::to_string(i)] = std::string(i * 1000, char('a' + i));
  REQUIRE(store->SaveCheckpoint(snaps, 0).ok());
  auto cp = store->LoadCheckpoint();
  REQUIRE(cp.ok());
  REQUIRE(cp->has_value());
  CHECK((*cp)->snapshots == snaps);
  CHECK((*cp)->journal_seq == 0);
  REQUIRE(store->SaveCheckpoint({}, 0).ok());
  cp = store->LoadCheckpoint();
  REQUIRE(cp->has_value());
  CHECK((*cp)->snapshots.empty());

  Commit c;
  c.journal.push_back({"s", "t", "p", 1});
  REQUIRE(store->Write(c).ok());
  int seen = 0;
  REQUIRE(store->ReadJournal(0, [&](uint64_t, const JournalEntry&) {
    ++seen;
    Commit more;
    more.journal.push_back({"s", "t", "again", 2});
    return store->Write(more);  // no deadlock: the callback runs unlocked
  }).ok());
  CHECK(seen >= 1);
  CHECK(*store->LastJournalSeq() == 1 + static_cast<uint64_t>(seen));
}

TEST_CASE("store: a file that is not a database is quarantined") {
  TempDir dir;
  const std::string path = dir.File("sluice.db");
  std::string garbage;
  for (int i = 0; i < 9000; ++i) garbage += char('A' + (i * 7) % 26);
  WriteAll(path, garbage);
  WriteAll(path + "-wal", "not a wal either");
  auto store = OpenOk(path);
  auto corrupt = CorruptFiles(dir.path());
  REQUIRE(corrupt.size() == 2);
  std::sort(corrupt.begin(), corrupt.end());
  CHECK(ReadAll(corrupt[0]) == garbage);
  CHECK(corrupt[1] == corrupt[0] + "-wal");
  int q = AddOk(*store, "q");
  AppendOk(*store, q, Records(0, 3));
  CHECK(Drain(*store->queue(q)) == Ids(0, 3));
}

TEST_CASE("store: a truncated database is quarantined") {
  TempDir dir;
  const std::string good = dir.File("good.db");
  {
    auto store = OpenOk(good);
    int q = AddOk(*store, "q");
    for (int i = 0; i < 3000; i += 100) AppendOk(*store, q, Records(i, i + 100, 300));
  }  // closing checkpoints the WAL into the file
  REQUIRE_FALSE(fs::exists(good + "-wal"));
  std::string bytes = ReadAll(good);
  REQUIRE(bytes.size() > 64 * 1024);
  const std::string path = dir.File("sluice.db");
  std::string truncated = bytes.substr(0, bytes.size() / 2);
  WriteAll(path, truncated);

  auto store = OpenOk(path);
  auto corrupt = CorruptFiles(dir.path());
  REQUIRE(corrupt.size() == 1);
  CHECK(ReadAll(corrupt[0]) == truncated);
  auto stats = store->Stats();
  REQUIRE(stats.ok());
  CHECK(stats->empty());  // a fresh store
  int q = AddOk(*store, "q");
  AppendOk(*store, q, Records(0, 2));
  CHECK(store->queue(q)->size() == 2);
  store.reset();
  // The fresh store is healthy: opening it again quarantines nothing.
  store = OpenOk(path);
  CHECK(CorruptFiles(dir.path()).size() == 1);
}

TEST_CASE("store: one writer per data directory") {
  TempDir dir;
  const std::string path = dir.File("sluice.db");
  auto store = OpenOk(path);
  const std::string our_pid = "pid " + std::to_string(::getpid());

  SECTION("in the same process") {
    auto second = Store::Open(path, {});
    REQUIRE_FALSE(second.ok());
    CHECK(second.status().code() == StatusCode::kFailedPrecondition);
    INFO(second.status().ToString());
    CHECK(second.status().message().find("in use by another sluice") != std::string_view::npos);
    CHECK(second.status().message().find(our_pid) != std::string_view::npos);
    CHECK(second.status().message().find(dir.path()) != std::string_view::npos);
  }
  SECTION("in a forked child") {
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      auto second = Store::Open(path, {});
      bool refused = !second.ok() && second.status().code() == StatusCode::kFailedPrecondition &&
                     second.status().message().find(our_pid) != std::string_view::npos;
      ::_exit(refused ? 0 : 1);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  SECTION("free again once the first one is gone") {
    store.reset();
    auto second = Store::Open(path, {});
    CHECK(second.ok());
  }
}

TEST_CASE("store: a read-only store sees a running writer's data") {
  TempDir dir;
  const std::string path = dir.File("sluice.db");
  auto writer = OpenOk(path);
  int q = AddOk(*writer, "cloud");
  AppendOk(*writer, q, Records(0, 5));
  Commit c;
  c.journal.push_back({"plant", "t", "p", 7});
  REQUIRE(writer->Write(c).ok());

  StoreOptions ro;
  ro.read_only = true;
  auto reader = OpenOk(path, ro);
  auto stats = reader->Stats();
  REQUIRE(stats.ok());
  REQUIRE(stats->size() == 1);
  CHECK((*stats)[0].records == 5);
  CHECK((*stats)[0].oldest_ms > 0);
  CHECK(*reader->LastJournalSeq() == 1);
  int rq = AddOk(*reader, "cloud");
  SinkQueue& view = *reader->queue(rq);
  CHECK(view.size() == 5);
  CHECK(PeekOk(view, 100).size() == 5);
  CHECK(reader->AddQueue("other", {}).status().code() == StatusCode::kNotFound);
  CHECK(Append(*reader, rq, Records(9, 10)).code() == StatusCode::kFailedPrecondition);
  CHECK(view.Remove(1000).code() == StatusCode::kFailedPrecondition);
  CHECK(reader->Purge("").status().code() == StatusCode::kFailedPrecondition);

  AppendOk(*writer, q, Records(5, 8));  // the reader sees new commits
  CHECK(view.size() == 8);
  CHECK(PeekOk(view, 100).size() == 8);

  ro.read_only = true;
  CHECK(Store::Open(dir.File("missing.db"), ro).status().code() == StatusCode::kNotFound);
}

TEST_CASE("store: Purge deletes and counts") {
  auto store = OpenOk(":memory:");
  int a = AddOk(*store, "a");
  int b = AddOk(*store, "b");
  AppendOk(*store, a, Records(0, 4));
  AppendOk(*store, b, Records(0, 6));
  auto n = store->Purge("a");
  REQUIRE(n.ok());
  CHECK(*n == 4);
  CHECK(store->queue(a)->size() == 0);
  CHECK(store->queue(b)->size() == 6);
  CHECK(store->Purge("nope").status().code() == StatusCode::kNotFound);
  n = store->Purge("");
  REQUIRE(n.ok());
  CHECK(*n == 6);
  QueueStats sa = StatsOf(*store, "a"), sb = StatsOf(*store, "b");
  CHECK(sa.purged == 4);
  CHECK(sb.purged == 6);
  CHECK(sa.delivered + sb.delivered == 0);
  CheckInvariant(sa);
  CheckInvariant(sb);
  CHECK(sb.oldest_ms == 0);
}

TEST_CASE("store: in-memory stores are independent and need no lock") {
  auto one = OpenOk(":memory:");
  auto two = OpenOk(":memory:");
  int q1 = AddOk(*one, "q");
  int q2 = AddOk(*two, "q");
  AppendOk(*one, q1, Records(0, 3));
  CHECK(one->queue(q1)->size() == 3);
  CHECK(two->queue(q2)->size() == 0);
  CHECK(Drain(*one->queue(q1)) == Ids(0, 3));
  StoreOptions ro;
  ro.read_only = true;
  CHECK(Store::Open(":memory:", ro).status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("store: a big backlog drains in bounded pages") {
  TempDir dir;
  auto store = OpenOk(dir.File("sluice.db"));
  int q = AddOk(*store, "q", {0, OverflowPolicy::kDropOldest});
  constexpr int kRows = 200000;
  for (int i = 0; i < kRows; i += 2000) AppendOk(*store, q, Records(i, i + 2000, 200));
  SinkQueue& queue = *store->queue(q);
  CHECK(queue.size() == kRows);
  auto page = PeekOk(queue, SIZE_MAX);
  CHECK(page.size() <= 4096);  // one Peek never loads the backlog
  CHECK(page.size() >= 1000);
  size_t count = 0;
  size_t largest = 0;
  bool in_order = true;
  while (true) {
    auto batch = PeekOk(queue, 5000);
    if (batch.empty()) break;
    largest = std::max(largest, batch.size());
    for (const QueuedEnvelope& e : batch) {
      in_order = in_order && e.envelope.id == "id-" + std::to_string(count);
      ++count;
    }
    REQUIRE(queue.Remove(batch.back().seq).ok());
  }
  CHECK(in_order);
  CHECK(count == kRows);
  CHECK(largest <= 4096);
  QueueStats s = StatsOf(*store, "q");
  CHECK(s.records == 0);
  CHECK(s.bytes == 0);
  CHECK(s.delivered == kRows);
}

// Fills the store until a Write fails; returns the ids committed.
static std::vector<std::string> FillUntilFull(Store& store, int q, int& next, Status& failure,
                                              int journal_per_write = 1) {
  std::vector<std::string> committed;
  for (int attempt = 0; attempt < 100000; ++attempt) {
    Commit c;
    for (int j = 0; j < journal_per_write; ++j) c.journal.push_back({"plant", "t", std::string(200, 'j'), 1});
    c.outputs.resize(q + 1);
    c.outputs[q] = Records(next, next + 20, 500);
    Status s = store.Write(c);
    if (!s.ok()) {
      failure = s;
      return committed;
    }
    for (int i = next; i < next + 20; ++i) committed.push_back("id-" + std::to_string(i));
    next += 20;
  }
  FAIL("the store never filled up");
  return committed;
}

TEST_CASE("store: PRAGMA max_page_count full, block holds, then usable again") {
  TempDir dir;
  const std::string path = dir.File("sluice.db");
  StoreOptions options;
  options.max_db_bytes = 512 * 1024;
  std::vector<std::string> expected;
  {
    auto store = OpenOk(path, options);
    int q = AddOk(*store, "q", {0, OverflowPolicy::kBlock});
    int next = 0;
    Status failure;
    expected = FillUntilFull(*store, q, next, failure);
    INFO(failure.ToString());
    CHECK(failure.code() == StatusCode::kResourceExhausted);
    CHECK(failure.message().find(path) != std::string_view::npos);
    REQUIRE(expected.size() > 100);
    // Nothing of the failed commit is there: one journal entry per commit.
    CHECK(*store->LastJournalSeq() == expected.size() / 20);
    size_t queued = store->queue(q)->size();
    CHECK(queued == expected.size());
    Status again = Append(*store, q, Records(next, next + 20, 500));
    CHECK(again.code() == StatusCode::kResourceExhausted);
    CHECK(store->queue(q)->size() == queued);
    QueueStats held = StatsOf(*store, "q");
    CHECK(held.appended == queued);
    CHECK(held.dropped_oldest == 0);
    CHECK(held.dropped_newest == 0);
    // Peek and Remove still work; then there is room again.
    SinkQueue& queue = *store->queue(q);
    auto batch = PeekOk(queue, 100);
    REQUIRE(batch.size() == 100);
    CHECK(batch[0].envelope.id == expected[0]);
    REQUIRE(queue.Remove(batch.back().seq).ok());
    CHECK(queue.size() == queued - 100);
    expected.erase(expected.begin(), expected.begin() + 100);
    AppendOk(*store, q, Records(next, next + 20, 500));
    for (int i = next; i < next + 20; ++i) expected.push_back("id-" + std::to_string(i));
    next += 20;
    REQUIRE(store->SaveCheckpoint({{"p", "s"}}, *store->LastJournalSeq()).ok());
    QueueStats s = StatsOf(*store, "q");
    CheckInvariant(s);
  }
  auto store = OpenOk(path, options);
  int q = AddOk(*store, "q");
  CHECK(Drain(*store->queue(q)) == expected);
}

TEST_CASE("store: a full database, drop_oldest: the newest records go in, the oldest go, counted") {
  TempDir dir;
  const std::string path = dir.File("sluice.db");
  StoreOptions options;
  options.max_db_bytes = 512 * 1024;  // fails writes exactly like a full disk
  auto store = OpenOk(path, options);
  // No cap of its own: only the database's size stops it.
  int q = AddOk(*store, "q", {0, OverflowPolicy::kDropOldest});
  int other = AddOk(*store, "other", {0, OverflowPolicy::kBlock});
  AppendOk(*store, other, Records(100000, 100010));
  // 300 commits of 20 records of 500 bytes: 3 MB through a 512 KiB database.
  constexpr int kCommits = 300;
  int next = 0;
  for (int i = 0; i < kCommits; ++i) {
    Commit c;
    c.journal.push_back({"plant", "t", std::string(50, 'j'), i});
    c.outputs.resize(q + 1);
    c.outputs[q] = Records(next, next + 20, 500);
    Status s = store->Write(c);
    INFO("commit " << i << ": " << s.ToString());
    REQUIRE(s.ok());
    next += 20;
  }
  CHECK(*store->LastJournalSeq() == static_cast<uint64_t>(kCommits));  // every journal row too
  QueueStats s = StatsOf(*store, "q");
  CheckInvariant(s);
  CHECK(s.appended == static_cast<uint64_t>(next));
  CHECK(s.dropped_oldest > static_cast<uint64_t>(next) / 2);
  CHECK(s.dropped_newest == 0);
  CHECK(s.delivered == 0);
  CHECK(s.records >= 400);  // the database stays in use, not emptied at each eviction
  CHECK(store->queue(q)->size() == s.records);
  // The other queue is not touched by q's policy.
  QueueStats o = StatsOf(*store, "other");
  CHECK(o.records == 10);
  CHECK(o.dropped_oldest == 0);

  // Exactly the oldest are missing, as many as counted; order kept; the
  // newest are there. Checked across a reopen: all of it was committed.
  const uint64_t dropped = s.dropped_oldest;
  store.reset();
  store = OpenOk(path, options);
  q = AddOk(*store, "q", {0, OverflowPolicy::kDropOldest});
  other = AddOk(*store, "other", {0, OverflowPolicy::kBlock});
  CHECK(Drain(*store->queue(q)) == Ids(static_cast<int>(dropped), next));
  CHECK(Drain(*store->queue(other)) == Ids(100000, 100010));
  // Room again: nothing more is dropped.
  AppendOk(*store, q, Records(next, next + 20, 500));
  CHECK(StatsOf(*store, "q").dropped_oldest == dropped);
  CHECK(Drain(*store->queue(q)) == Ids(next, next + 20));
  CheckInvariant(StatsOf(*store, "q"));
}

TEST_CASE("store: a full database, drop_newest: the new records are left out, counted, and the "
          "journal and the other queues commit") {
  TempDir dir;
  const std::string path = dir.File("sluice.db");
  StoreOptions options;
  options.max_db_bytes = 512 * 1024;
  auto store = OpenOk(path, options);
  int n = AddOk(*store, "newest", {0, OverflowPolicy::kDropNewest});
  int b = AddOk(*store, "blocking", {0, OverflowPolicy::kBlock});
  // Fill with records for `newest` until the database refuses them: the
  // Write still succeeds, without them.
  int next = 0;
  while (StatsOf(*store, "newest").dropped_newest == 0) {
    REQUIRE(next < 100000);
    AppendOk(*store, n, Records(next, next + 20, 500));
    next += 20;
  }
  QueueStats full = StatsOf(*store, "newest");
  CHECK(full.dropped_newest == 20);  // the whole batch of the commit that did not fit
  CHECK(full.records == static_cast<uint64_t>(next - 20));
  CheckInvariant(full);

  // Deliver 100 (about 50 KB): room for a journal entry and a few records,
  // not for 200 more records of 500 bytes.
  SinkQueue& queue = *store->queue(n);
  auto batch = PeekOk(queue, 100);
  REQUIRE(batch.size() == 100);
  REQUIRE(queue.Remove(batch.back().seq).ok());
  const uint64_t journal_before = *store->LastJournalSeq();
  Commit c;
  c.journal.push_back({"plant", "t", std::string(200, 'j'), 1});
  c.outputs.resize(std::max(n, b) + 1);
  c.outputs[n] = Records(next, next + 200, 500);
  c.outputs[b] = Records(200000, 200005);
  Status s = store->Write(c);
  INFO(s.ToString());
  REQUIRE(s.ok());
  CHECK(*store->LastJournalSeq() == journal_before + 1);
  QueueStats after = StatsOf(*store, "newest");
  CHECK(after.dropped_newest == 220);
  CHECK(after.records == static_cast<uint64_t>(next - 20 - 100));
  CHECK(after.appended == full.appended);
  CheckInvariant(after);
  CHECK(StatsOf(*store, "blocking").records == 5);

  // Not even the rest fits (a journal entry bigger than the database): the
  // commit waits, nothing written, nothing counted.
  Commit big;
  big.journal.push_back({"plant", "t", std::string(600 * 1024, 'j'), 2});
  big.outputs.resize(n + 1);
  big.outputs[n] = Records(next + 200, next + 220, 500);
  Status held = store->Write(big);
  CHECK(held.code() == StatusCode::kResourceExhausted);
  CHECK(*store->LastJournalSeq() == journal_before + 1);
  CHECK(StatsOf(*store, "newest").dropped_newest == 220);

  CHECK(Drain(*store->queue(n)) == Ids(100, next - 20));
  CHECK(Drain(*store->queue(b)) == Ids(200000, 200005));
}

TEST_CASE("store: a full database, block holds, and so does an empty drop_oldest queue") {
  TempDir dir;
  StoreOptions options;
  options.max_db_bytes = 512 * 1024;
  auto store = OpenOk(dir.File("sluice.db"), options);
  int b = AddOk(*store, "b", {0, OverflowPolicy::kBlock});
  int o = AddOk(*store, "o", {0, OverflowPolicy::kDropOldest});
  int next = 0;
  Status failure;
  std::vector<std::string> committed = FillUntilFull(*store, b, next, failure, 0);
  INFO(failure.ToString());
  REQUIRE(failure.code() == StatusCode::kResourceExhausted);
  // Nothing to drop in `o`: its records wait too.
  Status s = Append(*store, o, Records(next, next + 20, 500));
  CHECK(s.code() == StatusCode::kResourceExhausted);
  Commit both;
  both.outputs.resize(std::max(b, o) + 1);
  both.outputs[b] = Records(next, next + 20, 500);
  both.outputs[o] = Records(next + 20, next + 40, 500);
  CHECK(store->Write(both).code() == StatusCode::kResourceExhausted);
  for (const char* sink : {"b", "o"}) {
    QueueStats st = StatsOf(*store, sink);
    CHECK(st.dropped_oldest == 0);
    CHECK(st.dropped_newest == 0);
    CheckInvariant(st);
  }
  CHECK(StatsOf(*store, "o").appended == 0);
  CHECK(StatsOf(*store, "b").records == committed.size());
  CHECK(Drain(*store->queue(b)) == committed);
}

// A real full disk: a 2 MiB tmpfs (needs root and mount permission).
TEST_CASE("store: disk full on a tmpfs, block holds, then usable again") {
  TempDir dir;
  const std::string mnt = dir.File("mnt");
  REQUIRE(fs::create_directory(mnt));
  if (::geteuid() != 0 || ::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=2m") != 0) {
    WARN("skipped: mounting a 2 MiB tmpfs needs root (" << std::strerror(errno) << ")");
    return;
  }
  struct Unmount {
    std::string dir;
    ~Unmount() { ::umount2(dir.c_str(), MNT_DETACH); }
  } unmount{mnt};
  const std::string path = mnt + "/sluice.db";
  const std::string filler = mnt + "/filler";
  WriteAll(filler, std::string(512 * 1024, 'f'));

  std::vector<std::string> expected;
  {
    auto store = OpenOk(path);
    int q = AddOk(*store, "q", {0, OverflowPolicy::kBlock});
    SinkQueue& queue = *store->queue(q);
    int next = 0;
    Status failure;
    expected = FillUntilFull(*store, q, next, failure);
    INFO(failure.ToString());
    CHECK(failure.code() == StatusCode::kResourceExhausted);
    CHECK(failure.message().find(path) != std::string_view::npos);
    REQUIRE(expected.size() > 100);
    // Nothing of the failed commit is there: one journal entry per commit.
    CHECK(*store->LastJournalSeq() == expected.size() / 20);
    CHECK(queue.size() == expected.size());
    CHECK(StatsOf(*store, "q").records == expected.size());

    // Peek and Remove work on the full disk.
    auto batch = PeekOk(queue, 200);
    REQUIRE(batch.size() == 200);
    CHECK(batch[0].envelope.id == expected[0]);
    REQUIRE(queue.Remove(batch.back().seq).ok());
    CHECK(queue.size() == expected.size() - 200);
    expected.erase(expected.begin(), expected.begin() + 200);
    auto rest = PeekOk(queue, 1);
    REQUIRE(rest.size() == 1);
    CHECK(rest[0].envelope.id == expected[0]);

    // After removing rows, writes go in again.
    Status s = Append(*store, q, Records(next, next + 20, 500));
    INFO(s.ToString());
    CHECK(s.ok());
    if (s.ok()) {
      for (int i = next; i < next + 20; ++i) expected.push_back("id-" + std::to_string(i));
    }
    next += 20;

    // Full again; deleting the filler file gives the space back.
    std::vector<std::string> more = FillUntilFull(*store, q, next, failure);
    CHECK(failure.code() == StatusCode::kResourceExhausted);
    expected.insert(expected.end(), more.begin(), more.end());
    REQUIRE(fs::remove(filler));
    for (int i = 0; i < 5; ++i) {
      AppendOk(*store, q, Records(next, next + 20, 500));
      for (int k = next; k < next + 20; ++k) expected.push_back("id-" + std::to_string(k));
      next += 20;
    }
    CHECK(queue.size() == expected.size());
    CheckInvariant(StatsOf(*store, "q"));
  }
  // Nothing committed is lost.
  auto store = OpenOk(path);
  int q = AddOk(*store, "q");
  CHECK(store->queue(q)->size() == expected.size());
  CHECK(Drain(*store->queue(q)) == expected);
}

TEST_CASE("store: disk full on a tmpfs, drop_oldest keeps taking the newest records") {
  TempDir dir;
  const std::string mnt = dir.File("mnt");
  REQUIRE(fs::create_directory(mnt));
  if (::geteuid() != 0 || ::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=2m") != 0) {
    WARN("skipped: mounting a 2 MiB tmpfs needs root (" << std::strerror(errno) << ")");
    return;
  }
  struct Unmount {
    std::string dir;
    ~Unmount() { ::umount2(dir.c_str(), MNT_DETACH); }
  } unmount{mnt};
  const std::string path = mnt + "/sluice.db";
  WriteAll(mnt + "/filler", std::string(512 * 1024, 'f'));

  int next = 0;
  uint64_t dropped = 0;
  {
    auto store = OpenOk(path);
    int q = AddOk(*store, "q", {0, OverflowPolicy::kDropOldest});
    // 400 commits of 20 records of 500 bytes: 4 MB through a 2 MiB disk.
    constexpr int kCommits = 400;
    for (int i = 0; i < kCommits; ++i) {
      Commit c;
      c.journal.push_back({"plant", "t", std::string(50, 'j'), i});
      c.outputs.resize(q + 1);
      c.outputs[q] = Records(next, next + 20, 500);
      Status s = store->Write(c);
      INFO("commit " << i << ": " << s.ToString());
      REQUIRE(s.ok());
      next += 20;
    }
    CHECK(*store->LastJournalSeq() == static_cast<uint64_t>(kCommits));
    QueueStats s = StatsOf(*store, "q");
    CheckInvariant(s);
    CHECK(s.appended == static_cast<uint64_t>(next));
    CHECK(s.dropped_oldest > 0);
    CHECK(s.records >= 200);
    dropped = s.dropped_oldest;
    // Delivering still works on the full disk.
    auto batch = PeekOk(*store->queue(q), 100);
    REQUIRE(batch.size() == 100);
    CHECK(batch[0].envelope.id == "id-" + std::to_string(dropped));
    REQUIRE(store->queue(q)->Remove(batch.back().seq).ok());
  }
  // What is queued is committed: exactly the newest, in order.
  auto store = OpenOk(path);
  int q = AddOk(*store, "q");
  CHECK(Drain(*store->queue(q)) == Ids(static_cast<int>(dropped) + 100, next));
  CheckInvariant(StatsOf(*store, "q"));
}

// Fills the file system at `dir` to the last byte with a file of its own.
static void FillDisk(const std::string& file) {
  std::ofstream out(file, std::ios::binary | std::ios::app);
  const std::string chunk(4096, 'z');
  for (int i = 0; i < 100000 && out.good(); ++i) out.write(chunk.data(), chunk.size()).flush();
  std::string small(512, 'z');
  std::ofstream tail(file, std::ios::binary | std::ios::app);
  for (int i = 0; i < 64 && tail.good(); ++i) tail.write(small.data(), small.size()).flush();
}

TEST_CASE("store: a delete that cannot be committed stays hidden, then happens") {
  TempDir dir;
  const std::string mnt = dir.File("mnt");
  REQUIRE(fs::create_directory(mnt));
  if (::geteuid() != 0 || ::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=2m") != 0) {
    WARN("skipped: mounting a 2 MiB tmpfs needs root (" << std::strerror(errno) << ")");
    return;
  }
  struct Unmount {
    std::string dir;
    ~Unmount() { ::umount2(dir.c_str(), MNT_DETACH); }
  } unmount{mnt};
  const std::string path = mnt + "/sluice.db";
  std::vector<std::string> expected;
  {
    auto store = OpenOk(path);
    int q = AddOk(*store, "q", {0, OverflowPolicy::kBlock});
    SinkQueue& queue = *store->queue(q);
    int next = 0;
    Status failure;
    expected = FillUntilFull(*store, q, next, failure, 0);
    REQUIRE(failure.code() == StatusCode::kResourceExhausted);
    // Take the reserve's space too: nothing is left for the delete.
    fs::remove(path + ".reserve");
    FillDisk(mnt + "/filler");

    StoreOptions ro;
    ro.read_only = true;
    auto reader = OpenOk(path, ro);
    const uint64_t committed_before = StatsOf(*reader, "q").records;
    auto batch = PeekOk(queue, 300);
    REQUIRE(batch.size() == 300);
    REQUIRE(queue.Remove(batch.back().seq).ok());  // OK: delivered is delivered
    CHECK(queue.size() == expected.size() - 300);
    auto next_batch = PeekOk(queue, 1);
    REQUIRE(next_batch.size() == 1);
    CHECK(next_batch[0].envelope.id == expected[300]);  // never delivered twice
    CHECK(StatsOf(*store, "q").records == expected.size() - 300);
    CHECK(StatsOf(*store, "q").delivered == 300);
    const uint64_t committed = StatsOf(*reader, "q").records;
    if (committed == committed_before) {
      INFO("the delete is pending: the file still holds the rows");
      REQUIRE(fs::remove(mnt + "/filler"));
      (void)PeekOk(queue, 1);  // retries the pending delete
      CHECK(StatsOf(*reader, "q").records == committed_before - 300);
    } else {
      WARN("the delete fit on the full disk; the pending path was not exercised");
      fs::remove(mnt + "/filler");
    }
    expected.erase(expected.begin(), expected.begin() + 300);
    AppendOk(*store, q, Records(next, next + 20, 500));
    for (int i = next; i < next + 20; ++i) expected.push_back("id-" + std::to_string(i));
    CheckInvariant(StatsOf(*store, "q"));
  }
  auto store = OpenOk(path);
  int q = AddOk(*store, "q");
  CHECK(Drain(*store->queue(q)) == expected);
}

// ---------------------------------------------------------------- dead letters

namespace {

DeadLetter Letter(int n, std::string payload = "") {
  if (payload.empty()) payload = "bad payload " + std::to_string(n);
  return DeadLetter{1000 + n, "source", "plant", "sensors/a/" + std::to_string(n),
                    "payload is not valid JSON", std::move(payload)};
}

void PutOk(Store& store, const DeadLetter& letter) {
  Status s = store.dead_letters().Put(letter);
  INFO(s.ToString());
  REQUIRE(s.ok());
}

std::vector<StoredDeadLetter> ReadAllDeadLetters(Store& store, size_t limit = 100000) {
  auto letters = store.ReadDeadLetters(0, limit);
  INFO(letters.status().ToString());
  REQUIRE(letters.ok());
  return std::move(letters).value();
}

DeadLetterStats DeadStats(Store& store) {
  auto stats = store.GetDeadLetterStats();
  INFO(stats.status().ToString());
  REQUIRE(stats.ok());
  INFO("letters " << stats->letters << " total " << stats->total << " dropped " << stats->dropped
                  << " purged " << stats->purged);
  CHECK(stats->letters == stats->total - stats->dropped - stats->purged);
  return *stats;
}

uint64_t SizeOf(const DeadLetter& l) {
  return l.origin.size() + l.name.size() + l.topic.size() + l.reason.size() + l.payload.size();
}

}  // namespace

TEST_CASE("store: dead letters are kept with every byte and read back oldest first") {
  TempDir dir;
  const std::string path = dir.File("sluice.db");
  std::string binary("\x00\xff\xfe{\x01\"\\\n", 9);
  const std::vector<DeadLetter> put = {
      Letter(1, "not json at all"),
      Letter(2, binary),
      DeadLetter{3, "sink", "cloud", "", "rejected: 400 bad request", "{\"id\":\"x\"}"},
      DeadLetter{4, "pipeline", "temp_1m", "sensors/\xc3\xa9/b", "late", std::string(1, '\0')},
  };
  {
    auto store = OpenOk(path);
    for (const DeadLetter& l : put) PutOk(*store, l);
    DeadLetterStats st = DeadStats(*store);
    CHECK(st.letters == 4);
    CHECK(st.total == 4);
    uint64_t bytes = 0;
    for (const DeadLetter& l : put) bytes += SizeOf(l);
    CHECK(st.bytes == bytes);
  }
  auto store = OpenOk(path);  // and it survives a reopen
  auto got = ReadAllDeadLetters(*store);
  REQUIRE(got.size() == put.size());
  for (size_t i = 0; i < put.size(); ++i) {
    INFO("letter " << i);
    CHECK(got[i].seq == i + 1);
    CHECK(got[i].letter.time_ms == put[i].time_ms);
    CHECK(got[i].letter.origin == put[i].origin);
    CHECK(got[i].letter.name == put[i].name);
    CHECK(got[i].letter.topic == put[i].topic);
    CHECK(got[i].letter.reason == put[i].reason);
    CHECK(got[i].letter.payload == put[i].payload);
  }
  // A limit and a cursor page through them.
  auto first = store->ReadDeadLetters(0, 2);
  REQUIRE(first.ok());
  REQUIRE(first->size() == 2);
  auto rest = store->ReadDeadLetters(first->back().seq, 10);
  REQUIRE(rest.ok());
  REQUIRE(rest->size() == 2);
  CHECK((*rest)[0].letter.payload == put[2].payload);
  CHECK(store->ReadDeadLetters(0, 0)->empty());
  PutOk(*store, Letter(5));  // numbering goes on after a reopen
  CHECK(ReadAllDeadLetters(*store).back().seq == 5);
}

TEST_CASE("store: the dead-letter cap deletes the oldest and counts them") {
  TempDir dir;
  const std::string path = dir.File("sluice.db");
  StoreOptions options;
  const uint64_t one = SizeOf(Letter(10));  // every Letter(10..99) has this size
  options.max_dead_letter_bytes = 10 * one + one / 2;
  {
    auto store = OpenOk(path, options);
    for (int n = 10; n < 40; ++n) PutOk(*store, Letter(n));
    DeadLetterStats st = DeadStats(*store);
    CHECK(st.total == 30);
    CHECK(st.letters == 10);
    CHECK(st.dropped == 20);
    CHECK(st.bytes == 10 * one);
    CHECK(st.bytes <= options.max_dead_letter_bytes);
    auto kept = ReadAllDeadLetters(*store);
    REQUIRE(kept.size() == 10);
    CHECK(kept.front().letter.payload == Letter(30).payload);  // the newest ten
    CHECK(kept.back().letter.payload == Letter(39).payload);
  }
  SECTION("the figures survive a reopen and the cap goes on from them") {
    auto store = OpenOk(path, options);
    PutOk(*store, Letter(40));
    DeadLetterStats st = DeadStats(*store);
    CHECK(st.total == 31);
    CHECK(st.letters == 10);
    CHECK(st.dropped == 21);
    CHECK(ReadAllDeadLetters(*store).front().letter.payload == Letter(31).payload);
  }
  SECTION("a letter bigger than the cap alone is kept cut, and says so") {
    auto store = OpenOk(path, options);
    PutOk(*store, Letter(50, std::string(5 * options.max_dead_letter_bytes, 'z')));
    DeadLetterStats st = DeadStats(*store);
    CHECK(st.letters == 1);
    CHECK(st.dropped == 30);
    CHECK(st.bytes <= options.max_dead_letter_bytes);
    auto kept = ReadAllDeadLetters(*store);
    REQUIRE(kept.size() == 1);
    CHECK(kept[0].letter.topic == "sensors/a/50");
    CHECK(kept[0].letter.reason.find("payload is not valid JSON") == 0);
    CHECK(kept[0].letter.reason.find("cut to fit the dead-letter cap") != std::string::npos);
    CHECK(kept[0].letter.payload.size() > 0);
    CHECK(kept[0].letter.payload == std::string(kept[0].letter.payload.size(), 'z'));
  }
}

TEST_CASE("store: dead letters are read while the writer runs, purged only by the writer") {
  TempDir dir;
  const std::string path = dir.File("sluice.db");
  auto writer = OpenOk(path);
  StoreOptions ro;
  ro.read_only = true;
  auto reader = OpenOk(path, ro);
  CHECK(DeadStats(*reader).letters == 0);
  for (int n = 0; n < 3; ++n) PutOk(*writer, Letter(n));
  CHECK(DeadStats(*reader).letters == 3);  // sees each new commit
  auto seen = ReadAllDeadLetters(*reader);
  REQUIRE(seen.size() == 3);
  CHECK(seen[2].letter.payload == Letter(2).payload);
  CHECK(reader->dead_letters().Put(Letter(9)).code() == StatusCode::kFailedPrecondition);
  CHECK(reader->PurgeDeadLetters().status().code() == StatusCode::kFailedPrecondition);

  auto purged = writer->PurgeDeadLetters();
  REQUIRE(purged.ok());
  CHECK(*purged == 3);
  DeadLetterStats st = DeadStats(*reader);
  CHECK(st.letters == 0);
  CHECK(st.bytes == 0);
  CHECK(st.purged == 3);
  CHECK(st.total == 3);
  CHECK(ReadAllDeadLetters(*reader).empty());
  PutOk(*writer, Letter(4));  // numbers are not reused after a purge
  auto after = ReadAllDeadLetters(*reader);
  REQUIRE(after.size() == 1);
  CHECK(after[0].seq == 4);

  writer->Close();  // a sink's last dead letter during shutdown still lands
  PutOk(*writer, Letter(5));
  CHECK(DeadStats(*reader).letters == 2);
}

TEST_CASE("store: dead letters from many threads are all kept") {
  auto store = OpenOk(":memory:");
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        if (!store->dead_letters().Put(Letter(t * 100 + i)).ok()) ++failures;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  CHECK(failures == 0);
  CHECK(DeadStats(*store).letters == 200);
  auto all = ReadAllDeadLetters(*store);
  REQUIRE(all.size() == 200);
  for (size_t i = 0; i < all.size(); ++i) CHECK(all[i].seq == i + 1);
}

TEST_CASE("store: a dead letter on a full database fails with ResourceExhausted, nothing written") {
  TempDir dir;
  const std::string path = dir.File("sluice.db");
  StoreOptions options;
  options.max_db_bytes = 256 * 1024;
  options.max_dead_letter_bytes = 0;  // only the database's limit
  auto store = OpenOk(path, options);
  Status failure;
  int n = 0;
  for (; n < 10000 && failure.ok(); ++n) {
    failure = store->dead_letters().Put(Letter(n, std::string(2000, 'q')));
  }
  INFO(failure.ToString());
  REQUIRE(failure.code() == StatusCode::kResourceExhausted);
  CHECK(failure.message().find(path) != std::string_view::npos);
  DeadLetterStats st = DeadStats(*store);
  CHECK(st.letters == static_cast<uint64_t>(n - 1));
  CHECK(st.total == static_cast<uint64_t>(n - 1));
  // Purging makes room again.
  REQUIRE(store->PurgeDeadLetters().ok());
  PutOk(*store, Letter(n));
  CHECK(DeadStats(*store).letters == 1);
}

// A store file as sluice wrote it at schema version 1 (before dead letters
// moved into the store, and before journal_batches): one queue 'cloud' with
// one record, two journal rows.
namespace {
void WriteVersion1File(const std::string& path) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  const char* old_schema = R"sql(
    PRAGMA journal_mode=WAL;
    CREATE TABLE meta(key TEXT PRIMARY KEY, value);
    CREATE TABLE queues(
      id INTEGER PRIMARY KEY, sink TEXT NOT NULL UNIQUE,
      records INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0,
      appended INTEGER NOT NULL DEFAULT 0, delivered INTEGER NOT NULL DEFAULT 0,
      dropped_oldest INTEGER NOT NULL DEFAULT 0, dropped_newest INTEGER NOT NULL DEFAULT 0,
      purged INTEGER NOT NULL DEFAULT 0, last_seq INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE journal(seq INTEGER PRIMARY KEY, source TEXT NOT NULL, topic TEXT NOT NULL,
      payload BLOB NOT NULL, arrival_ms INTEGER NOT NULL);
    CREATE TABLE checkpoints(pipeline TEXT PRIMARY KEY, snapshot BLOB NOT NULL);
    INSERT INTO meta(key, value) VALUES('schema_version', 1);
    INSERT INTO queues(id, sink, records, bytes, appended, last_seq) VALUES(1, 'cloud', 1, 7, 1, 1);
    CREATE TABLE outbox_1(seq INTEGER PRIMARY KEY, id TEXT NOT NULL, key TEXT NOT NULL,
      body BLOB NOT NULL, created_ms INTEGER NOT NULL);
    INSERT INTO outbox_1 VALUES(1, 'id-old', 'k', '{"a":1}', 5);
    INSERT INTO journal VALUES(1, 'plant', 'sensors/a', 'old-1', 11);
    INSERT INTO journal VALUES(2, 'plant', 'sensors/b', 'old-2', 12);
  )sql";
  char* err = nullptr;
  int rc = sqlite3_exec(db, old_schema, nullptr, nullptr, &err);
  INFO((err ? err : ""));
  sqlite3_free(err);
  REQUIRE(rc == SQLITE_OK);
  sqlite3_close(db);
}
}  // namespace

TEST_CASE("store: a database written before the dead-letter table opens and gains it") {
  TempDir dir;
  const std::string path = dir.File("sluice.db");
  WriteVersion1File(path);
  StoreOptions ro;
  ro.read_only = true;
  {  // `sluice buffer` while an older agent still runs: no dead letters, no error
    auto reader = OpenOk(path, ro);
    DeadLetterStats st = DeadStats(*reader);
    CHECK(st.letters == 0);
    CHECK(st.total == 0);
    CHECK(ReadAllDeadLetters(*reader).empty());
    CHECK(StatsOf(*reader, "cloud").records == 1);
  }
  auto writer = OpenOk(path);
  StoreOptions ro2 = ro;
  auto reader = OpenOk(path, ro2);
  int q = AddOk(*writer, "cloud");
  auto old = PeekOk(*writer->queue(q), 10);
  REQUIRE(old.size() == 1);
  CHECK(old[0].envelope.id == "id-old");
  PutOk(*writer, Letter(1));
  CHECK(DeadStats(*writer).letters == 1);
  CHECK(ReadAllDeadLetters(*reader).size() == 1);  // the reader finds the new table
}

namespace {

std::vector<std::pair<uint64_t, JournalEntry>> ReadAllJournal(Store& store, uint64_t after = 0) {
  std::vector<std::pair<uint64_t, JournalEntry>> out;
  Status s = store.ReadJournal(after, [&](uint64_t seq, const JournalEntry& e) {
    out.push_back({seq, e});
    return Status::Ok();
  });
  REQUIRE(s.ok());
  return out;
}

}  // namespace

// Version 2 keeps a commit's readings in one journal row; version 1's rows
// (one reading each) are still read, in sequence with the new ones.
TEST_CASE("store: a version-1 journal reads on in order with the batched rows after it") {
  TempDir dir;
  const std::string path = dir.File("sluice.db");
  WriteVersion1File(path);
  StoreOptions ro;
  ro.read_only = true;
  {  // an older agent still writes the file: its journal reads
    auto reader = OpenOk(path, ro);
    auto old = ReadAllJournal(*reader);
    REQUIRE(old.size() == 2);
    CHECK(old[1].second.payload == "old-2");
    CHECK(reader->Journal()->readings == 2);
  }
  auto store = OpenOk(path);
  CHECK(*store->LastJournalSeq() == 2);
  const std::string binary("a\0b\xff", 4);
  Commit c;
  c.journal.push_back({"plant", "sensors/c", binary, 13});
  c.journal.push_back({"plant", "sensors/d", std::string(300, 'x'), 14});  // a 2-byte length
  c.journal.push_back({"lab", "lab/e", "", 15});                          // another source: its own row
  c.journal.push_back({"lab", "", "f", 16});
  REQUIRE(store->Write(c).ok());
  CHECK(*store->LastJournalSeq() == 6);

  auto all = ReadAllJournal(*store);
  REQUIRE(all.size() == 6);
  for (size_t i = 0; i < all.size(); ++i) CHECK(all[i].first == i + 1);
  CHECK(all[0].second.topic == "sensors/a");
  CHECK(all[2].second.payload == binary);
  CHECK(all[2].second.arrival_ms == 13);
  CHECK(all[3].second.payload.size() == 300);
  CHECK(all[4].second.source == "lab");
  CHECK(all[4].second.payload.empty());
  CHECK(all[5].second.topic.empty());
  CHECK(all[5].second.payload == "f");
  auto stats = store->Journal();
  REQUIRE(stats.ok());
  CHECK(stats->readings == 6);
  CHECK(stats->bytes == 5 + 5 + 4 + 300 + 0 + 1);

  // A checkpoint inside a row: the row stays, its covered readings are not read again.
  REQUIRE(store->SaveCheckpoint({{"p", "state"}}, 3).ok());
  auto rest = ReadAllJournal(*store, 3);
  REQUIRE(rest.size() == 3);
  CHECK(rest[0].first == 4);
  CHECK(rest[0].second.topic == "sensors/d");
  REQUIRE(store->SaveCheckpoint({{"p", "state"}}, 6).ok());
  CHECK(ReadAllJournal(*store).empty());
  CHECK(store->Journal()->readings == 0);
  store.reset();

  // A version-1 sluice would not see the batched rows: it refuses the file now.
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key='schema_version'", -1, &st,
                             nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  CHECK(sqlite3_column_int(st, 0) == 3);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

namespace {

void ExecSql(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  INFO((err ? err : ""));
  sqlite3_free(err);
  sqlite3_close(db);
  REQUIRE(rc == SQLITE_OK);
}

int64_t IntSql(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, sql, -1, &st, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

}  // namespace

// Version 3 keeps checkpoints in parts; a version-2 file's checkpoint is read
// where it is (read-only store and writer alike) until the first save
// replaces it.
TEST_CASE("store: a version-2 checkpoint is read, and carried over by a writer") {
  TempDir dir;
  const std::string path = dir.File("sluice.db");
  WriteVersion1File(path);
  const std::string old_snapshot(3 << 20, 'x');  // bigger than a part
  {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, "INSERT INTO checkpoints VALUES(?1, ?2)", -1, &st, nullptr) ==
            SQLITE_OK);
    for (const auto& [name, bytes] : {std::pair<std::string, std::string>{"big", old_snapshot},
                                      {"small", "s"}}) {
      sqlite3_bind_text(st, 1, name.data(), name.size(), SQLITE_TRANSIENT);
      sqlite3_bind_blob(st, 2, bytes.data(), bytes.size(), SQLITE_TRANSIENT);
      REQUIRE(sqlite3_step(st) == SQLITE_DONE);
      sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
  }
  ExecSql(path,
          "CREATE TABLE journal_batches(seq INTEGER PRIMARY KEY, first_seq INTEGER NOT NULL, "
          "source TEXT NOT NULL, bytes INTEGER NOT NULL, entries BLOB NOT NULL);"
          "UPDATE meta SET value=2 WHERE key='schema_version';"
          "INSERT INTO meta VALUES('checkpoint_journal_seq', 1), ('checkpoint_saved_ms', 77);");
  const std::map<std::string, std::string> expected = {{"big", old_snapshot}, {"small", "s"}};
  StoreOptions ro;
  ro.read_only = true;
  {  // `sluice buffer` while a version-2 agent still runs
    auto reader = OpenOk(path, ro);
    auto cp = reader->LoadCheckpoint();
    REQUIRE(cp.ok());
    REQUIRE(cp->has_value());
    CHECK((*cp)->journal_seq == 1);
    CHECK((*cp)->saved_ms == 77);
    CHECK((*cp)->snapshots == expected);
  }
  {
    auto writer = OpenOk(path);
    auto cp = writer->LoadCheckpoint();
    REQUIRE(cp.ok());
    REQUIRE(cp->has_value());
    CHECK((*cp)->journal_seq == 1);
    CHECK((*cp)->snapshots == expected);
    CHECK(ReadAllJournal(*writer, (*cp)->journal_seq).size() == 1);  // sensors/b
    REQUIRE(writer->SaveCheckpoint({{"small", "t"}}, 2).ok());
  }
  CHECK(IntSql(path, "SELECT value FROM meta WHERE key='schema_version'") == 3);
  CHECK(IntSql(path, "SELECT count(*) FROM checkpoints") == 0);  // read in place until then
  CHECK(IntSql(path, "SELECT count(*) FROM checkpoint_parts") == 1);
  auto reader = OpenOk(path, ro);
  auto cp = reader->LoadCheckpoint();
  REQUIRE(cp.ok());
  REQUIRE(cp->has_value());
  CHECK((*cp)->snapshots == std::map<std::string, std::string>{{"small", "t"}});
  CHECK(ReadAllJournal(*reader, 0).empty());
}

// What an older sluice does with a store a newer one upgraded (README
// "Upgrade"): it refuses it, says why, and leaves the file alone.
TEST_CASE("store: a store of a newer schema is refused and left as it is") {
  TempDir dir;
  const std::string path = dir.File("sluice.db");
  {
    auto store = OpenOk(path);
    REQUIRE(store->SaveCheckpoint({{"p", "state"}}, 0).ok());
  }
  ExecSql(path, "UPDATE meta SET value=value+1 WHERE key='schema_version'");
  auto newer = Store::Open(path, StoreOptions{});
  REQUIRE_FALSE(newer.ok());
  CHECK(newer.status().code() == StatusCode::kFailedPrecondition);
  CHECK(std::string(newer.status().message()).find("written by a newer sluice") !=
        std::string::npos);
  CHECK(IntSql(path, "SELECT count(*) FROM checkpoint_parts") == 1);  // not moved aside
}

// With room for one checkpoint but not two side by side, the save replaces
// the old one in a single transaction instead of failing every time.
TEST_CASE("store: a checkpoint that fits only in place of the old one is still saved") {
  TempDir dir;
  const std::string path = dir.File("sluice.db");
  StoreOptions capped;
  capped.max_db_bytes = 8 << 20;
  auto store = OpenOk(path, capped);
  auto snapshot = [](char fill) { return std::string(5 << 20, fill); };
  REQUIRE(store->SaveCheckpoint({{"p", snapshot('a')}}, 0).ok());
  // Beside the first it needs 10 MiB: over the cap.
  Status second = store->SaveCheckpoint({{"p", snapshot('b')}}, 0);
  INFO(second.ToString());
  REQUIRE(second.ok());
  auto cp = store->LoadCheckpoint();
  REQUIRE(cp.ok());
  REQUIRE(cp->has_value());
  CHECK((*cp)->snapshots == std::map<std::string, std::string>{{"p", snapshot('b')}});
  CHECK(IntSql(path, "SELECT count(DISTINCT generation) FROM checkpoint_parts") == 1);
  // Readings still commit afterwards.
  Commit c;
  c.journal.push_back({"plant", "t", "p", 1});
  CHECK(store->Write(c).ok());
}

// A snapshot of megabytes is written in parts, in transactions of its own:
// commits of readings go on while it is written, and a save that stopped
// half-way (a crash, a full disk) leaves nothing that is read.
TEST_CASE("store: a big checkpoint does not hold commits back, and half a save is never read") {
  TempDir dir;
  const std::string path = dir.File("sluice.db");
  std::map<std::string, std::string> snaps;
  for (int i = 0; i < 3; ++i) {
    std::string bytes(3 << 20, '\0');
    for (size_t j = 0; j < bytes.size(); ++j) bytes[j] = static_cast<char>((j * 7 + i) % 251);
    snaps["p" + std::to_string(i)] = std::move(bytes);
  }
  snaps["empty"] = "";
  {
    auto store = OpenOk(path);
    std::atomic<bool> stop{false};
    std::atomic<bool> failed{false};
    std::atomic<int> commits{0};
    std::thread writer([&] {  // no Catch assertions off the main thread
      while (!stop.load() && !failed.load()) {
        Commit c;
        c.journal.push_back({"plant", "sensors/a", "reading", 1});
        if (!store->Write(c).ok()) failed.store(true);
        commits.fetch_add(1);
      }
    });
    while (commits.load() == 0) std::this_thread::yield();
    const int before = commits.load();
    Status saved = store->SaveCheckpoint(snaps, 1);
    const int during = commits.load() - before;
    stop.store(true);
    writer.join();
    REQUIRE(saved.ok());
    REQUIRE_FALSE(failed.load());
    // One transaction for the whole save would let through only the commit
    // already under way and perhaps the one right after it.
    INFO("commits during the save: " << during);
    CHECK(during >= 5);
    auto cp = store->LoadCheckpoint();
    REQUIRE(cp.ok());
    REQUIRE(cp->has_value());
    CHECK((*cp)->journal_seq == 1);
    CHECK((*cp)->snapshots == snaps);
    // Only the current generation is kept.
    CHECK(IntSql(path, "SELECT count(DISTINCT generation) FROM checkpoint_parts") == 1);
    CHECK(IntSql(path, "SELECT count(*) FROM checkpoint_parts WHERE pipeline='p0'") > 1);
  }
  // A save that stopped after writing parts of the next generation, and a
  // crash after a checkpoint was made current but before the journal it
  // covers was deleted.
  ExecSql(path,
          "INSERT INTO checkpoint_parts SELECT generation + 1, pipeline, part, x'00' "
          "FROM checkpoint_parts;"
          "INSERT INTO journal_batches VALUES(1000000, 1000000, 'plant', 5, x'00');"
          "UPDATE meta SET value=1000000 WHERE key='checkpoint_journal_seq';");
  auto store = OpenOk(path);
  auto cp = store->LoadCheckpoint();
  REQUIRE(cp.ok());
  REQUIRE(cp->has_value());
  CHECK((*cp)->snapshots == snaps);
  CHECK(ReadAllJournal(*store, 0).empty());  // the covered row is not read...
  CHECK(store->Journal()->readings == 0);    // ...nor counted
  Commit c;
  c.journal.push_back({"plant", "sensors/a", "after", 2});
  REQUIRE(store->Write(c).ok());
  CHECK(*store->LastJournalSeq() == 1000001);
  REQUIRE(store->SaveCheckpoint({{"p0", "new"}}, 1000000).ok());
  cp = store->LoadCheckpoint();
  REQUIRE(cp.ok());
  CHECK((*cp)->snapshots == std::map<std::string, std::string>{{"p0", "new"}});
  CHECK(IntSql(path, "SELECT count(*) FROM checkpoint_parts") == 1);
  // Covered rows go within the save's time budget, or with the next saves.
  for (int save = 0; save < 20 && IntSql(path, "SELECT count(*) FROM journal_batches WHERE "
                                               "seq<=1000000") > 0; ++save) {
    REQUIRE(store->SaveCheckpoint({{"p0", "new"}}, 1000000).ok());
  }
  CHECK(IntSql(path, "SELECT count(*) FROM journal_batches WHERE seq<=1000000") == 0);
  auto rest = ReadAllJournal(*store, 1000000);
  REQUIRE(rest.size() == 1);
  CHECK(rest[0].second.payload == "after");
}

// Deletes of delivered records are deferred (at most one commit per queue
// every 100 ms), yet never delivered twice while the store is open, and
// committed at the latest when the queue goes idle or the store closes.
TEST_CASE("store: deletes of delivered records are batched, and done by close") {
  TempDir dir;
  const std::string path = dir.File("sluice.db");
  StoreOptions ro;
  ro.read_only = true;
  {
    auto store = OpenOk(path);
    int q = AddOk(*store, "q");
    SinkQueue& queue = *store->queue(q);
    AppendOk(*store, q, Records(0, 30));
    auto reader = OpenOk(path, ro);
    const auto start = std::chrono::steady_clock::now();
    auto first = PeekOk(queue, 10);
    REQUIRE(queue.Remove(first.back().seq).ok());  // the first delete commits at once
    auto second = PeekOk(queue, 10);
    REQUIRE(second.size() == 10);
    CHECK(second.front().envelope.id == "id-10");  // never the delivered ones again
    REQUIRE(queue.Remove(second.back().seq).ok());
    const bool quick = std::chrono::steady_clock::now() - start < std::chrono::milliseconds(90);
    CHECK(StatsOf(*store, "q").records == 10);
    CHECK(StatsOf(*store, "q").delivered == 20);
    if (quick) CHECK(StatsOf(*reader, "q").records == 20);  // the second delete waits
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    auto third = PeekOk(queue, 5);  // past the interval: the waiting delete commits
    REQUIRE(third.size() == 5);
    CHECK(third.front().envelope.id == "id-20");
    CHECK(StatsOf(*reader, "q").records == 10);
    REQUIRE(queue.Remove(third.back().seq).ok());  // deferred again, until close
  }
  auto store = OpenOk(path);
  int q = AddOk(*store, "q");
  auto rest = Drain(*store->queue(q));
  REQUIRE(rest.size() == 5);
  CHECK(rest.front() == "id-25");
}

TEST_CASE("store: the WAL is checkpointed by a thread of its own, and stays bounded") {
  TempDir dir;
  const std::string path = dir.File("sluice.db");
  auto size_of = [](const std::string& file) {
    std::error_code ec;
    uintmax_t n = fs::file_size(file, ec);
    return ec ? uintmax_t{0} : n;
  };
  auto store = OpenOk(path);
  int q = AddOk(*store, "q");
  // 1 MiB per commit. On a roomy file system the threshold is 1000 pages
  // (~4 MiB) and a commit checkpoints by itself only at twice that.
  int n = 0;
  auto commit_mib = [&] {
    AppendOk(*store, q, Records(n, n + 100, 10 * 1024));
    n += 100;
  };
  for (int i = 0; i < 6; ++i) commit_mib();  // past the threshold, not past twice it
  // Nothing is written any more: only the checkpointer can move the WAL's
  // pages into the database file.
  CHECK(Eventually([&] { return size_of(path) >= (5u << 20); }, Millis(20000)));
  uintmax_t largest_wal = 0;
  for (int i = 0; i < 30; ++i) {
    commit_mib();
    largest_wal = std::max(largest_wal, size_of(path + "-wal"));
  }
  INFO("largest -wal: " << largest_wal);
  // At most twice the threshold plus the commit that crossed it.
  CHECK(largest_wal <= (10u << 20));
  CHECK(StatsOf(*store, "q").records == 3600);
}

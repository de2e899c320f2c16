// Store on SQLite (see platform/store.h).
//
// One connection, guarded by db_mu_: every statement is prepared once and
// cached. A second mutex, mu_, guards what waiters look at (the figures, the
// closed flags, the room generation), so size() and the wait predicates never
// wait for an fsync. Lock order: db_mu_ before mu_; nobody waits on a
// condition variable while holding db_mu_.
//
// Schema (version 3):
//   meta(key TEXT PRIMARY KEY, value)       schema_version, checkpoint_journal_seq,
//                                           checkpoint_saved_ms, checkpoint_generation
//   queues(id INTEGER PRIMARY KEY, sink TEXT UNIQUE, records, bytes, appended,
//          delivered, dropped_oldest, dropped_newest, purged, last_seq,
//          dead_lettered)                   dead_lettered added to version 3 in
//                                           place (ALTER TABLE; older builds ignore it)
//   outbox_<queues.id>(seq INTEGER PRIMARY KEY, id, key, body BLOB, created_ms)
//                                           one table per queue: Peek, Remove and
//                                           eviction are rowid ranges, no index
//   journal(seq INTEGER PRIMARY KEY, source, topic, payload BLOB, arrival_ms)
//                                           version 1's journal, one reading per
//                                           row: read and trimmed, no longer written
//   journal_batches(seq INTEGER PRIMARY KEY, first_seq, source, bytes, entries BLOB)
//                                           a commit's readings of one source in one
//                                           row (one insert, not one per reading);
//                                           seq is its last reading's, and entries
//                                           holds per reading: varint topic length,
//                                           topic, varint payload length, payload,
//                                           varint arrival_ms
//   checkpoint_parts(generation, pipeline, part, bytes BLOB)
//                                           a snapshot cut in kCheckpointPartBytes
//                                           pieces; the current generation is in meta
//   checkpoints(pipeline TEXT PRIMARY KEY, snapshot BLOB)
//                                           version 2's checkpoint, generation 0
//   dead_letters(seq INTEGER PRIMARY KEY, time_ms, origin, name, topic, reason,
//                payload BLOB)           counters in meta: dead_letters_total,
//                                           dead_letters_dropped, dead_letters_purged
// Version 2 added journal_batches: a version-1 sluice refuses the file
// (it would not see the journal). Version 3 replaced checkpoints(pipeline,
// snapshot), one row per pipeline written and replaced in one transaction,
// by checkpoint_parts: with thousands of keys a snapshot is megabytes, and one
// transaction that size held every commit back for hundreds of milliseconds.
// A version-2 sluice refuses the file (it would read no checkpoint and replay
// from the wrong place). Version 2's table stays: its rows are generation 0,
// read as they are (no copy: an upgrade on a full disk must not need room
// for the checkpoint twice) until the first save makes generation 1 current
// and deletes them. A writer opening a version-1 file adds the
// table and raises the version; a read-only store on a version-1 file (an
// older agent still running) reads the old journal only.
// dead_letters came after version 1 shipped without it; CREATE TABLE IF NOT
// EXISTS adds it when a writer opens an older file, and an older sluice
// ignores it, so the version stays 1. A read-only store on a file without it
// (an older agent still running) sees no dead letters.
// Sequence numbers are assigned here, never reused once a table has been
// emptied (a delivery loop's Remove(seq) and a checkpoint's journal_seq must
// never cover rows written later): a queue's next seq is above queues.last_seq,
// updated in the same transaction as its rows; the journal's is above both its
// newest row and the checkpoint's journal_seq (the only rows ever deleted).
// Thus a single-record commit writes 3 pages: the queue's last leaf, the
// queues row, and the journal's leaf when it has an entry.
//
// Per queue, always: records = appended - delivered - dead_lettered - dropped_oldest - purged,
// and bytes is the sum of the queued bodies' lengths.
//
// Dead letters: their count and bytes are read from the table itself (the
// writer keeps its bytes in memory for the cap); a letter's seq is one more
// than the total ever put, so numbers are never reused, not even after a purge.
//
// Behaviour the interface leaves open:
// - Caps count body bytes. The global cap leaves each queue what the others
//   do not hold. drop_newest skips each record that does not fit (a later,
//   smaller one may); drop_oldest deletes the queue's oldest rows, then, if
//   the batch alone is too big, its own first records (counted appended and
//   dropped_oldest); block waits for a Remove/Purge, but an empty queue takes
//   any batch, so a batch above the cap cannot wait forever.
// - Disk full at commit (SQLITE_FULL, or the max_db_bytes cap): the
//   commit is rolled back, then each queue it appends to applies its policy
//   and it is tried again. drop_newest queues take none of their new records
//   (counted dropped_newest in the retried commit, which carries the rest:
//   the journal and the other queues' records). drop_oldest queues lose their
//   oldest records, in a transaction of their own counted dropped_oldest: per
//   round twice what the commit adds to the queue plus kFullEvictSlackBytes
//   (whole pages go to the freelist and the new rows reuse them), doubling
//   for up to kFullEvictRounds rounds; a WAL checkpoint after each eviction
//   lets the WAL start over instead of growing. That delete may itself need
//   the reserve (below). While the file system is full (less than four
//   reserves free) the database stops growing (max_page_count = its size,
//   lifted once the space and the reserve are back): new rows only reuse
//   freed pages, a write that needs more fails before it reaches the WAL,
//   and a checkpoint never has to grow the file, so the WAL keeps starting
//   over in the space it has. Block queues and the journal have no policy: if the
//   commit still fails (every drop_oldest queue empty, or the journal or a
//   block queue's records alone do not fit), Write returns
//   kResourceExhausted with nothing of the commit written, as before (the
//   records dropped to make room stay dropped). Logged at most once a minute.
// - Remove() on a full disk: the records count as delivered at once (Peek
//   skips them, size() and Stats() leave them out) and Remove returns OK; the
//   delete is retried by the next Peek/Remove/Write of the queue, and after a
//   crash before that they are delivered again (same ids).
// - "<path>.reserve" holds back disk space (1/8 of the file system, at most
//   16 MiB), released when a delete of delivered records hits a full disk and
//   re-created once the space is back, so a store that filled its own disk
//   recovers by delivering. "<path>.lock" holds the writer's PID and flock.
// - After Close(): Write/Append return kCancelled; Peek (without waiting),
//   Remove, Stats, SaveCheckpoint and Purge keep working.
// - SaveCheckpoint writes the new generation's parts in transactions of
//   about kCheckpointPartBytes, releasing the connection between them, then
//   makes it current, with the journal position, in one small transaction;
//   only then are the old generation and the covered journal deleted, again
//   in small transactions (at most kTrimBudget of them per save). A crash in
//   between leaves rows that are not read (parts of another generation,
//   journal rows at or below the checkpoint) and that the next save deletes.
//   When the new parts do not fit beside the old ones (disk full,
//   max_db_bytes), the save is done again in one transaction that deletes
//   the old checkpoint and reuses its pages: commits wait for that one.
// - Read-only: reads the writer's last commit on each call; Peek never waits.
// - LastJournalSeq() is the highest sequence number given out, also when the
//   checkpoint has trimmed that entry.
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "platform/log.h"
#include "platform/sqlite_wal_batch.h"
#include "platform/store.h"
#include "platform/thread_name.h"

namespace sluice {
namespace {

constexpr int kSchemaVersion = 3;
constexpr int kBusyTimeoutMs = 5000;
// One Peek returns at most this much, whatever `max` asks: memory stays flat
// however long the backlog is.
constexpr size_t kPeekMaxRows = 4096;
constexpr uint64_t kPeekMaxBytes = 8ull << 20;
// Rows read per page while evicting the oldest records or reading the journal.
constexpr int kPageRows = 256;
// Rows deleted per transaction when a large delete is pending.
constexpr int kDeleteChunkRows = 1024;
// Checkpoints (see SaveCheckpoint at the top): a part's size, which is also
// what one transaction writes (one part, or several small snapshots), and
// the journal rows one transaction deletes afterwards (a row is one
// commit's readings of a source, up to tens of KiB; SQLite reads every
// overflow page of a row it deletes). Old parts go one per transaction.
constexpr size_t kCheckpointPartBytes = 256u << 10;
constexpr int kTrimJournalRowsPerTxn = 8;
// Between two of those transactions (see PaceBulkWork): a std::mutex is not
// fair, and a loop that releases and takes db_mu_ again at once keeps a
// waiting commit out.
constexpr Millis kBulkPause{1};
constexpr Millis kTrimBudget{1000};
// Delivered records are deleted at most this often per queue (and when the
// queue goes idle, or a commit appends to it): a sink delivering small
// batches at a high rate would otherwise pay a commit per batch. A crash
// before the delete delivers them again, with the same ids.
constexpr Millis kDeleteInterval{100};
// A WAL checkpoint that completes resets the -wal file; above this size it is
// also truncated back to it.
constexpr int64_t kJournalSizeLimit = 16ll << 20;
constexpr Millis kTroubleLogInterval = std::chrono::minutes(1);
// Disk space kept back in "<path>.reserve" so that delivered records can be
// deleted on a full disk (a delete needs WAL space too): 1/8 of the file
// system, between these bounds. The WAL is checkpointed every quarter of it
// (by the checkpointer thread; by the writer itself if the WAL reaches half
// of it), so releasing the reserve always lets a checkpoint complete.
constexpr uint64_t kMaxReserveBytes = 16ull << 20;
constexpr uint64_t kMinReserveBytes = 64ull << 10;
constexpr Millis kReserveRetryInterval = std::chrono::seconds(10);
constexpr int kWalWriterCheckpointFactor = 2;
// Disk full with a drop_oldest queue: what one round of eviction frees beyond
// twice the commit's bytes for that queue (a few pages' worth, so that the
// next commits fit as well), and how many rounds, doubling, one Write tries.
constexpr uint64_t kFullEvictSlackBytes = 64ull << 10;
constexpr int kFullEvictRounds = 4;
constexpr Millis kMaxWait = std::chrono::hours(24 * 365);

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value);
CREATE TABLE IF NOT EXISTS queues(
  id INTEGER PRIMARY KEY,
  sink TEXT NOT NULL UNIQUE,
  records INTEGER NOT NULL DEFAULT 0,
  bytes INTEGER NOT NULL DEFAULT 0,
  appended INTEGER NOT NULL DEFAULT 0,
  delivered INTEGER NOT NULL DEFAULT 0,
  dropped_oldest INTEGER NOT NULL DEFAULT 0,
  dropped_newest INTEGER NOT NULL DEFAULT 0,
  purged INTEGER NOT NULL DEFAULT 0,
  last_seq INTEGER NOT NULL DEFAULT 0,
  dead_lettered INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS journal(
  seq INTEGER PRIMARY KEY,
  source TEXT NOT NULL,
  topic TEXT NOT NULL,
  payload BLOB NOT NULL,
  arrival_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS journal_batches(
  seq INTEGER PRIMARY KEY,
  first_seq INTEGER NOT NULL,
  source TEXT NOT NULL,
  bytes INTEGER NOT NULL,
  entries BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoint_parts(
  generation INTEGER NOT NULL,
  pipeline TEXT NOT NULL,
  part INTEGER NOT NULL,
  bytes BLOB NOT NULL,
  PRIMARY KEY(generation, pipeline, part));
CREATE TABLE IF NOT EXISTS checkpoints(pipeline TEXT PRIMARY KEY, snapshot BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters(
  seq INTEGER PRIMARY KEY,
  time_ms INTEGER NOT NULL,
  origin TEXT NOT NULL,
  name TEXT NOT NULL,
  topic TEXT NOT NULL,
  reason TEXT NOT NULL,
  payload BLOB NOT NULL);
INSERT OR IGNORE INTO meta(key, value) VALUES('schema_version', 3);
UPDATE meta SET value=3 WHERE key='schema_version' AND value<3;
)sql";

// A dead letter's size as DeadLetterStats::bytes counts it, in C++ and in SQL.
uint64_t DeadLetterBytes(const DeadLetter& l) {
  return l.origin.size() + l.name.size() + l.topic.size() + l.reason.size() + l.payload.size();
}
#define SLUICE_DEAD_LETTER_BYTES_SQL                                                  \
  "(length(CAST(origin AS BLOB)) + length(CAST(name AS BLOB)) + "                   \
  "length(CAST(topic AS BLOB)) + length(CAST(reason AS BLOB)) + length(payload))"

// One queue's table; `id` is an integer from the queues table.
std::string OutboxTable(int64_t id) { return "outbox_" + std::to_string(id); }

std::string OutboxDdl(int64_t id) {
  return "CREATE TABLE IF NOT EXISTS " + OutboxTable(id) +
         "(seq INTEGER PRIMARY KEY, id TEXT NOT NULL, key TEXT NOT NULL, body BLOB NOT NULL, "
         "created_ms INTEGER NOT NULL)";
}

bool IsCorruption(int rc) {
  int primary = rc & 0xff;
  return primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB;
}

StatusCode CodeFor(int rc) {
  switch (rc & 0xff) {
    case SQLITE_FULL:
    case SQLITE_NOMEM:
      return StatusCode::kResourceExhausted;
    case SQLITE_IOERR:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_PROTOCOL:
      return StatusCode::kUnavailable;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return StatusCode::kDataLoss;
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return StatusCode::kFailedPrecondition;
    case SQLITE_TOOBIG:
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
      return StatusCode::kInvalidArgument;
    default:
      return StatusCode::kInternal;
  }
}

// A prepared statement kept for the life of the connection.
class Stmt {
 public:
  Stmt() = default;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() { Finalize(); }
  int Prepare(sqlite3* db, const char* sql) {
    Finalize();
    return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
  }
  void Finalize() {
    sqlite3_finalize(stmt_);
    stmt_ = nullptr;
  }
  sqlite3_stmt* get() const { return stmt_; }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

// One use of a cached statement: bind, step, read columns; resets it when
// it goes out of scope. Bind failures surface from the first Step().
class Query {
 public:
  explicit Query(const Stmt& s) : s_(s.get()) {}
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;
  ~Query() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  Query& Int(int i, int64_t v) { return Check(sqlite3_bind_int64(s_, i, v)); }
  Query& U64(int i, uint64_t v) {
    return Int(i, static_cast<int64_t>(std::min<uint64_t>(v, std::numeric_limits<int64_t>::max())));
  }
  Query& Text(int i, std::string_view v) {
    return Check(sqlite3_bind_text64(s_, i, v.data(), v.size(), SQLITE_STATIC, SQLITE_UTF8));
  }
  Query& Blob(int i, std::string_view v) {
    return Check(v.empty() ? sqlite3_bind_zeroblob(s_, i, 0)
                           : sqlite3_bind_blob64(s_, i, v.data(), v.size(), SQLITE_STATIC));
  }
  int Step() { return bind_rc_ != SQLITE_OK ? bind_rc_ : sqlite3_step(s_); }
  sqlite3_stmt* stmt() const { return s_; }
  int64_t ColInt(int c) const { return sqlite3_column_int64(s_, c); }
  uint64_t ColU64(int c) const { return static_cast<uint64_t>(std::max<int64_t>(0, ColInt(c))); }
  std::string ColBytes(int c) const {
    const void* p = sqlite3_column_blob(s_, c);
    int n = sqlite3_column_bytes(s_, c);
    return p == nullptr ? std::string() : std::string(static_cast<const char*>(p), n);
  }

 private:
  Query& Check(int rc) {
    if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
    return *this;
  }
  sqlite3_stmt* s_;
  int bind_rc_ = SQLITE_OK;
};

struct Counters {
  uint64_t records = 0;
  uint64_t bytes = 0;
  uint64_t appended = 0;
  uint64_t delivered = 0;
  uint64_t dropped_oldest = 0;
  uint64_t dropped_newest = 0;
  uint64_t purged = 0;
  uint64_t dead_lettered = 0;
};

class SqliteStore;
class QueueView;

// Store::dead_letters(): Put goes to the store's table.
class DeadLetterTable final : public DeadLetterStore {
 public:
  explicit DeadLetterTable(SqliteStore& store) : store_(store) {}
  Status Put(const DeadLetter& letter) override;

 private:
  SqliteStore& store_;
};

// Everything known about one sink's queue. Fields written only with both
// db_mu_ and mu_ held, so either lock is enough to read them; `options`,
// `index` and `view` are set under db_mu_ + mu_ too.
struct QueueState {
  int64_t id = 0;
  std::string sink;
  QueueOptions options;
  int index = -1;  // position in queues_; -1 while not declared by AddQueue
  Counters c;      // == its row in `queues` (committed)
  uint64_t next_seq = 1;  // db_mu_ only
  // Statements on its table; db_mu_ only.
  Stmt insert, peek, oldest_page, count_through, delete_through, oldest_ms;
  // Delivered records whose delete is not committed yet (deferred, see
  // kDeleteInterval, or failed: disk full): Peek skips seq <= removed_through;
  // the delete comes with a later Peek, Remove or Write of this queue, or at
  // close. After a crash they are delivered again.
  uint64_t removed_through = 0;
  uint64_t pending_records = 0;
  uint64_t pending_bytes = 0;
  // Of the records removed and not yet counted, how many the sink refused
  // for good (dead-lettered): they count as dead_lettered, not delivered.
  // Removed records are counted as they are deleted, these first.
  uint64_t refused = 0;
  SteadyTime last_delete{};  // db_mu_ only
  bool closed = false;
  std::condition_variable rows_cv;  // with mu_: rows arrived or closed
  std::unique_ptr<QueueView> view;

  uint64_t visible() const { return c.records - std::min(c.records, pending_records); }
  // `n` removed records into `to`: the refused ones first, the rest delivered.
  // Returns how many were refused; take them off `refused` once committed.
  uint64_t CountRemoved(uint64_t n, Counters& to) const {
    const uint64_t r = std::min(n, refused);
    to.delivered += n - r;
    to.dead_lettered += r;
    return r;
  }
  // Every removed record is counted now: a refused count beyond them (rows
  // evicted or purged between Peek and Remove) must not pass to later ones.
  void ClearPending() {
    refused = 0;
    pending_records = 0;
    pending_bytes = 0;
  }
};

class QueueView final : public SinkQueue {
 public:
  QueueView(SqliteStore& store, QueueState& q) : store_(store), q_(q) {}
  Status Append(std::vector<Envelope> batch) override;
  StatusOr<std::vector<QueuedEnvelope>> Peek(size_t max, Millis wait) override;
  using SinkQueue::Remove;
  Status Remove(uint64_t through_seq, uint64_t refused) override;
  void Close() override;
  size_t size() const override;

 private:
  SqliteStore& store_;
  QueueState& q_;
};

class SqliteStore final : public Store {
 public:
  SqliteStore(std::string path, StoreOptions options, const Clock& clock)
      : path_(std::move(path)),
        options_(options),
        clock_(clock),
        memory_(path_ == ":memory:"),
        trouble_log_(LogLevel::kError, kTroubleLogInterval, clock),
        full_log_(LogLevel::kWarn, kTroubleLogInterval, clock),
        reserve_path_(path_ + ".reserve"),
        dead_letter_table_(*this) {}

  ~SqliteStore() override {
    Close();
    FlushDeletes();
    CloseDb();
    if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
  }

  Status Init();

  StatusOr<int> AddQueue(const std::string& sink, QueueOptions options) override;
  size_t queue_count() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return queues_.size();
  }
  SinkQueue* queue(int index) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (index < 0 || static_cast<size_t>(index) >= queues_.size()) return nullptr;
    return queues_[index]->view.get();
  }
  Status Write(Commit& commit) override;
  StatusOr<uint64_t> LastJournalSeq() override;
  StatusOr<JournalStats> Journal() override;
  Status ReadJournal(uint64_t after,
                     const std::function<Status(uint64_t, const JournalEntry&)>& fn) override;
  Status SaveCheckpoint(const std::map<std::string, std::string>& snapshots,
                        uint64_t journal_seq) override;
  StatusOr<std::optional<Checkpoint>> LoadCheckpoint() override;
  StatusOr<std::vector<QueueStats>> Stats() override;
  StatusOr<uint64_t> Purge(const std::string& sink) override;
  DeadLetterStore& dead_letters() override { return dead_letter_table_; }
  StatusOr<DeadLetterStats> GetDeadLetterStats() override;
  StatusOr<std::vector<StoredDeadLetter>> ReadDeadLetters(uint64_t after, size_t limit) override;
  StatusOr<uint64_t> PurgeDeadLetters() override;
  void Close() override;

  Status PutDeadLetter(const DeadLetter& letter);

  // SinkQueue views.
  StatusOr<std::vector<QueuedEnvelope>> PeekQueue(QueueState& q, size_t max, Millis wait);
  Status RemoveFromQueue(QueueState& q, uint64_t through_seq, uint64_t refused);
  void CloseQueue(QueueState& q);
  size_t QueueSize(QueueState& q);

 private:
  // --- opening ---
  Status AcquireLock();
  // Opens the connection and checks it. *corrupt tells a damaged file apart
  // from a failure to open it (full disk, permissions) that must not cost data.
  Status OpenDb(bool* corrupt, std::string* reason);
  Status Quarantine(const std::string& reason);
  Status PrepareStatements();
  Status LoadQueues();
  // Prepares the dead-letter statements once the table exists; false (and
  // OK) while it does not, which only a read-only store can see. db_mu_ held.
  StatusOr<bool> DeadLetterTableReady();
  // Writer: the table's bytes and the next seq (db_mu_ held).
  Status LoadDeadLetters();
  // Counter `key` in meta (0 when not there yet); db_mu_ held.
  StatusOr<uint64_t> MetaCounter(const char* key);
  Status SetMetaCounter(const char* key, uint64_t value);
  Status PrepareQueue(QueueState& q, uint64_t last_seq);
  // Read-only: picks up queues the writer added since (db_mu_ held).
  Status LoadNewQueues();
  void CloseDb();
  // Commits every queue's deferred deletes (at close: not delivered twice).
  void FlushDeletes();
  // Deletes `q`'s delivered records through `through` now (FreeSpace around
  // DeleteDelivered); a delete that happened restarts kDeleteInterval.
  Status DeleteNow(QueueState& q, uint64_t through, std::string_view context = {});
  // Records through `through` count as delivered and are hidden from Peek;
  // `n` of them (`b` bytes) still wait for their delete. db_mu_ held.
  void HideDelivered(QueueState& q, uint64_t through, uint64_t n, uint64_t b);
  StatusOr<std::vector<std::string>> Strings(const char* sql, int* rc_out) {
    return Strings(db_, sql, rc_out);
  }
  StatusOr<std::vector<std::string>> Strings(sqlite3* db, const char* sql, int* rc_out);
  // Checks an existing file on a read-only connection of its own: closing it
  // never checkpoints or deletes a -wal we may have to keep as evidence.
  Status Probe(bool* corrupt, std::string* reason);
  // --- the disk-space reserve ---
  void SetUpReserve();
  void CreateReserve();
  bool ReleaseReserve();     // db_mu_ held; true when space was given back
  void MaybeRestoreReserve();  // db_mu_ held
  // Disk full: the database stops growing (max_page_count = its page count),
  // so new rows only reuse freed pages, a failing write fails before
  // anything reaches the WAL, and a checkpoint never needs to grow the file:
  // the WAL starts over in the space it has. Lifted when the reserve is back.
  void CapGrowth();            // db_mu_ held
  bool MaybeLiftGrowthCap();   // db_mu_ held; true when lifted
  bool SpaceIsBack() const;    // 4 reserves' worth free

  // --- helpers, db_mu_ held ---
  Status Sql(int rc, std::string_view what) const { return Sql(db_, rc, what); }
  Status Sql(sqlite3* db, int rc, std::string_view what) const;
  Status Exec(const Stmt& s, std::string_view what);
  Status InTransaction(std::string_view what, const std::function<Status()>& body);
  Status UpdateQueueRow(const QueueState& q, const Counters& c, uint64_t last_seq);
  Status CountThrough(const QueueState& q, uint64_t through, uint64_t* n, uint64_t* bytes);
  Status DeleteThrough(const QueueState& q, uint64_t through);
  // In the caller's transaction: deletes what HideDelivered hid and takes
  // it off `c` as delivered. The caller clears the pending counts once the
  // transaction committed (QueueState::ClearPending).
  Status DeletePending(const QueueState& q, Counters& c);
  Status EvictOldest(const QueueState& q, uint64_t need, Counters& c);
  // One transaction for `commit`. Queues marked in `refused` (drop_newest on a
  // full disk) take none of their records, counted dropped_newest.
  Status WriteOnce(const Commit& commit, const std::vector<bool>* refused, bool* blocked);
  // `commit` failed with kResourceExhausted (disk full): applies the
  // overflow policies of the queues it appends to and retries (see the top).
  Status WriteWhenFull(const Commit& commit, const Status& failure, bool* blocked);
  // Disk full: deletes the oldest records of `q` (at least `need` body bytes,
  // or all) in a transaction of its own, counted dropped_oldest; returns how
  // many. Delivered records whose delete was pending go first (delivered).
  StatusOr<uint64_t> EvictToMakeRoom(QueueState& q, uint64_t need);
  // A passive WAL checkpoint: once it has copied every frame, the next write
  // starts the -wal file over (reusing its space) instead of growing it.
  void CheckpointWal();
  Status DeleteDelivered(QueueState& q, uint64_t through);
  void NoteFailure(const Status& s);
  void NoteSuccess();
  // Runs a deletion that gives space back. A delete needs WAL space too: on a
  // full disk the reserve is released and the deletion tried once more. The
  // outcome is noted (with `context` on failure) and returned. db_mu_ held.
  Status FreeSpace(const std::function<Status()>& deletion, std::string_view context = {});
  Status ReadOnlyError() const {
    return Status::FailedPrecondition("store " + path_ + " is open read-only");
  }

  const std::string path_;
  const StoreOptions options_;
  const Clock& clock_;
  const bool memory_;
  RateLimitedLog trouble_log_;
  RateLimitedLog full_log_;  // overflow policies applied on a full disk
  int lock_fd_ = -1;
  const std::string reserve_path_;
  uint64_t reserve_bytes_ = 0;  // 0: no reserve (in memory, read-only)
  bool reserve_present_ = false;   // guarded by db_mu_
  SteadyTime reserve_tried_{};     // guarded by db_mu_
  std::string base_max_pages_;     // max_page_count as opened; db_mu_
  bool growth_capped_ = false;     // see CapGrowth(); db_mu_

  // WAL checkpoints run on a thread of their own, with a connection of its
  // own, so that a commit never waits for one (copying megabytes into the
  // database and two fsyncs: tens of milliseconds on an SD card, paid by
  // whichever reading's commit crossed the threshold). The writer's WAL hook
  // wakes it; the writer checkpoints itself only if the WAL grows to
  // kWalWriterCheckpointFactor times the threshold (the thread fell behind).
  static int OnWalCommit(void* self, sqlite3* db, const char* name, int wal_pages);
  void StartCheckpointer();  // db_mu_ held
  void StopCheckpointer();   // db_mu_ held
  void CheckpointLoop();
  // Between two transactions of bulk work (a checkpoint's parts, deletes of
  // what it replaced), db_mu_ not held: pauses kBulkPause, and copies the
  // WAL first if it is past the threshold. Bulk work writes megabytes in a
  // row; left to the thread, the WAL would reach the writer's own limit and
  // a commit of readings would pay for the copy.
  void PaceBulkWork();
  std::atomic<int> wal_pages_{0};  // as the WAL hook last reported
  int checkpoint_pages_ = 1000;
  sqlite3* checkpoint_db_ = nullptr;  // the thread's connection
  std::thread checkpointer_;
  std::mutex checkpoint_mu_;
  std::mutex checkpoint_pass_mu_;  // held by whichever of the two checkpoints
  std::condition_variable checkpoint_cv_;
  bool checkpoint_wanted_ = false;  // checkpoint_mu_
  bool checkpoint_stop_ = false;    // checkpoint_mu_

  std::mutex db_mu_;  // the connection, its statements, the transaction
  sqlite3* db_ = nullptr;
  bool failing_ = false;  // last write-side transaction failed (for the "again" line)
  bool dead_lettered_column_ = true;  // queues.dead_lettered exists (see PrepareStatements)
  Stmt begin_, commit_, rollback_;
  Stmt insert_journal_, update_queue_, insert_queue_, select_queues_;
  Stmt queue_records_, read_journal_, journal_high_, journal_count_;
  uint64_t next_journal_seq_ = 1;
  // Checkpoints. SaveCheckpoint takes save_mu_ for its whole run (saves
  // never interleave) and db_mu_ for each of its transactions.
  std::mutex save_mu_;
  Stmt insert_part_, select_checkpoint_, delete_stale_parts_, trim_journal_, trim_batches_;
  Stmt delete_legacy_checkpoints_;
  // Where InsertParts goes on from: snapshot, byte offset in it, part number.
  struct PartCursor {
    std::map<std::string, std::string>::const_iterator next;
    size_t offset = 0;
    int64_t part = 0;
  };
  // In the caller's transaction, db_mu_ held: parts from `at` on, about
  // `budget` bytes of them; `at` moves past what was written.
  Status InsertParts(uint64_t generation, const std::map<std::string, std::string>& snapshots,
                     PartCursor& at, size_t budget);
  // In the caller's transaction: `generation` is the checkpoint from now on.
  Status MakeCurrent(uint64_t generation, uint64_t journal_seq);
  // Deletes, in small transactions, the parts of other generations, version
  // 2's checkpoint once a generation is current, and the journal up to
  // `journal_seq` (at most kTrimBudget of work; the next save goes on).
  Status TrimAfterCheckpoint(uint64_t generation, uint64_t journal_seq);
  // Journal rows inserted (rolled back ones too), and that count at the last
  // trim: past kTrimBudget a trim still deletes twice what was written
  // since, so that a backlog shrinks and never grows. db_mu_.
  uint64_t journal_rows_written_ = 0;
  uint64_t journal_rows_at_trim_ = 0;
  Stmt set_meta_, get_meta_;
  // Dead letters; prepared by DeadLetterTableReady().
  bool dead_letters_ready_ = false;
  Stmt insert_dead_letter_, dead_letter_page_, delete_dead_letters_through_;
  Stmt read_dead_letters_, count_dead_letters_, delete_all_dead_letters_;
  uint64_t dead_letter_bytes_ = 0;     // writer: what the table holds (committed)
  uint64_t next_dead_letter_seq_ = 1;  // writer
  DeadLetterTable dead_letter_table_;

  mutable std::mutex mu_;  // see QueueState; and:
  std::map<std::string, std::unique_ptr<QueueState>> by_sink_;  // every queue in the file
  std::vector<QueueState*> queues_;                              // declared, by index
  uint64_t total_bytes_ = 0;  // sum of bytes over every queue (committed)
  uint64_t room_gen_ = 0;     // bumped whenever records leave a queue
  std::condition_variable room_cv_;
  bool closed_ = false;
};

// ---------------------------------------------------------------- opening

Status SqliteStore::Init() {
  if (memory_ && options_.read_only) {
    return Status::InvalidArgument("an in-memory store cannot be opened read-only");
  }
  if (options_.read_only) {
    struct stat st;
    if (::stat(path_.c_str(), &st) != 0) {
      return Status::NotFound("store " + path_ + ": " + std::strerror(errno));
    }
  } else if (!memory_) {
    RETURN_IF_ERROR(AcquireLock());
  }
  bool corrupt = false;
  std::string reason;
  Status s;
  if (!options_.read_only && !memory_) {
    s = Probe(&corrupt, &reason);
    if (!s.ok() && !corrupt) return s;  // e.g. an I/O error: not a reason to move data aside
  }
  if (!corrupt) s = OpenDb(&corrupt, &reason);
  if (corrupt && !options_.read_only && !memory_) {
    CloseDb();
    RETURN_IF_ERROR(Quarantine(reason));
    s = OpenDb(&corrupt, &reason);
  }
  if (!s.ok()) {
    CloseDb();
    return s;
  }
  return Status::Ok();
}

Status SqliteStore::AcquireLock() {
  const std::string lock_path = path_ + ".lock";
  size_t slash = path_.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path_.substr(0, std::max<size_t>(slash, 1));
  int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    int err = errno;
    std::string msg = "cannot open lock file " + lock_path + ": " + std::strerror(err);
    if (err == EACCES || err == EPERM) return Status::PermissionDenied(msg);
    if (err == ENOENT || err == ENOTDIR || err == EROFS) return Status::FailedPrecondition(msg);
    return Status::Unavailable(msg);
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    if (err != EWOULDBLOCK) {
      ::close(fd);
      return Status::Unavailable("cannot lock " + lock_path + ": " + std::strerror(err));
    }
    char buf[32] = {};
    ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
    ::close(fd);
    long pid = n > 0 ? std::strtol(buf, nullptr, 10) : 0;
    return Status::FailedPrecondition(
        "data directory " + dir + " is in use by another sluice (" +
        (pid > 0 ? "pid " + std::to_string(pid) : std::string("pid unknown")) + "; lock file " +
        lock_path + ")");
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 ||
      ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    // The lock holds without the PID; only the message to a second agent suffers.
    LogWarn("store: cannot write our PID into ", lock_path, ": ", std::strerror(errno));
  }
  lock_fd_ = fd;
  return Status::Ok();
}

StatusOr<std::vector<std::string>> SqliteStore::Strings(sqlite3* db, const char* sql,
                                                        int* rc_out) {
  *rc_out = SQLITE_OK;
  Stmt s;
  int rc = s.Prepare(db, sql);
  if (rc != SQLITE_OK) {
    *rc_out = rc;
    return Sql(db, rc, sql);
  }
  std::vector<std::string> out;
  Query q(s);
  while ((rc = q.Step()) == SQLITE_ROW) out.push_back(q.ColBytes(0));
  if (rc != SQLITE_DONE) {
    *rc_out = rc;
    return Sql(db, rc, sql);
  }
  return out;
}

Status SqliteStore::Probe(bool* corrupt, std::string* reason) {
  *corrupt = false;
  struct stat st;
  if (::stat(path_.c_str(), &st) != 0 || st.st_size == 0) return Status::Ok();  // new
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
  Status result;
  if (rc != SQLITE_OK) {
    result = Sql(db, rc, "opening to check");
    if (IsCorruption(rc)) {
      *corrupt = true;
      *reason = std::string(result.message());
    }
  } else {
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, kBusyTimeoutMs);
    int code = SQLITE_OK;
    auto check = Strings(db, "PRAGMA quick_check", &code);
    if (!check.ok()) {
      result = check.status();
      if (IsCorruption(code)) {
        *corrupt = true;
        *reason = std::string(result.message());
      }
    } else if (check->empty() || (*check)[0] != "ok") {
      *corrupt = true;
      *reason = "integrity check failed: " + (check->empty() ? std::string("no result") : (*check)[0]);
      result = Status::DataLoss("store " + path_ + ": " + *reason);
    }
  }
  sqlite3_close_v2(db);
  return result;
}

Status SqliteStore::OpenDb(bool* corrupt, std::string* reason) {
  *corrupt = false;
  int flags = options_.read_only ? SQLITE_OPEN_READONLY
                                 : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  flags |= SQLITE_OPEN_NOMUTEX;  // db_mu_ serializes every use
  // The only connection that writes WAL frames.
  int rc = sqlite3_open_v2(path_.c_str(), &db_, flags,
                           options_.read_only ? nullptr : WalBatchingVfs());
  if (rc != SQLITE_OK) {
    Status s = db_ ? Sql(rc, "opening") : Status(CodeFor(rc), "store " + path_ + ": opening: " +
                                                                  sqlite3_errstr(rc));
    return s;
  }
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, kBusyTimeoutMs);

  // Returns the failure, noting whether it says the file is damaged.
  auto failed = [&](int code, const Status& s) {
    if (IsCorruption(code)) {
      *corrupt = true;
      *reason = std::string(s.message());
    }
    return s;
  };
  int code = SQLITE_OK;
  if (!options_.read_only) {
    auto mode = Strings("PRAGMA journal_mode=WAL", &code);
    if (!mode.ok()) return failed(code, mode.status());
    if (!memory_ && (mode->empty() || (*mode)[0] != "wal")) {
      return Status::FailedPrecondition("store " + path_ + ": cannot switch to WAL mode (got '" +
                                        (mode->empty() ? std::string() : (*mode)[0]) + "')");
    }
    std::string pragmas =
        std::string("PRAGMA synchronous=") +
        (options_.durability == Durability::kFull ? "FULL" : "NORMAL") +
        "; PRAGMA journal_size_limit=" + std::to_string(kJournalSizeLimit) + ";";
    if (options_.max_db_bytes > 0) {
      auto page = Strings("PRAGMA page_size", &code);
      if (!page.ok()) return failed(code, page.status());
      uint64_t page_size = page->empty() ? 4096 : std::max(512ull, std::stoull((*page)[0]));
      pragmas += " PRAGMA max_page_count=" +
                 std::to_string(std::max<uint64_t>(1, options_.max_db_bytes / page_size)) + ";";
    }
    char* err = nullptr;
    rc = sqlite3_exec(db_, pragmas.c_str(), nullptr, nullptr, &err);
    sqlite3_free(err);
    if (rc != SQLITE_OK) return failed(rc, Sql(rc, "setting pragmas"));
    auto max_pages = Strings("PRAGMA max_page_count", &code);
    if (!max_pages.ok()) return failed(code, max_pages.status());
    base_max_pages_ = max_pages->empty() ? std::string() : (*max_pages)[0];
    std::string schema = std::string("BEGIN IMMEDIATE;") + kSchema + "COMMIT;";
    rc = sqlite3_exec(db_, schema.c_str(), nullptr, nullptr, &err);
    sqlite3_free(err);
    if (rc != SQLITE_OK) {
      Status s = Sql(rc, "creating the schema");
      if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      return failed(rc, s);
    }
    // Added after schema 3 without a version change: older builds read and
    // write such a store as before (their statements name their columns).
    auto column = Strings("SELECT name FROM pragma_table_info('queues') WHERE name='dead_lettered'", &code);
    if (!column.ok()) return failed(code, column.status());
    if (column->empty()) {
      rc = sqlite3_exec(db_, "ALTER TABLE queues ADD COLUMN dead_lettered INTEGER NOT NULL DEFAULT 0",
                        nullptr, nullptr, nullptr);
      // A full disk must not keep an upgraded agent from starting (and from
      // delivering its backlog): without the column it runs as the older one.
      if (rc != SQLITE_OK) {
        LogWarn("store ", path_, ": cannot add queues.dead_lettered yet (",
                sqlite3_errstr(rc), "); refused records are not counted apart until a later start");
      }
    }
    if (!memory_) SetUpReserve();
  }
  auto version = Strings("SELECT value FROM meta WHERE key='schema_version'", &code);
  if (!version.ok()) {
    if (options_.read_only && !IsCorruption(code)) {
      return Status::FailedPrecondition("store " + path_ + " is not a sluice store (" +
                                        std::string(version.status().message()) + ")");
    }
    return failed(code, version.status());
  }
  int v = version->empty() ? 0 : std::atoi((*version)[0].c_str());
  if (v > kSchemaVersion) {
    return Status::FailedPrecondition("store " + path_ + " has schema version " +
                                      std::to_string(v) + ", written by a newer sluice (this one reads " +
                                      std::to_string(kSchemaVersion) + ")");
  }
  RETURN_IF_ERROR(PrepareStatements());
  Status s = LoadQueues();
  if (s.ok() && !options_.read_only) s = LoadDeadLetters();
  if (!s.ok()) return failed(s.code() == StatusCode::kDataLoss ? SQLITE_CORRUPT : SQLITE_ERROR, s);
  return Status::Ok();
}

Status SqliteStore::Quarantine(const std::string& reason) {
  const std::string dest = path_ + ".corrupt-" + std::to_string(ToEpochMillis(clock_.WallNow()));
  for (const char* suffix : {"", "-wal", "-journal", "-shm"}) {
    std::string from = path_ + suffix;
    std::string to = dest + suffix;
    struct stat st;
    if (::stat(from.c_str(), &st) != 0) continue;
    // The -shm is an index rebuilt from the -wal: nothing to keep. An empty
    // -wal or -journal holds nothing either.
    if (*suffix != '\0' && (st.st_size == 0 || std::string_view(suffix) == "-shm")) {
      ::unlink(from.c_str());
      continue;
    }
    if (::rename(from.c_str(), to.c_str()) != 0 && *suffix == '\0') {
      return Status::Unavailable("store " + path_ + " is damaged (" + reason +
                                 ") and cannot be moved aside to " + dest + ": " +
                                 std::strerror(errno));
    }
  }
  LogError("store ", path_, " is damaged (", reason, "): moved it aside to ", dest,
           " and starting with an EMPTY store; records queued and state kept in it are not used. "
           "Keep the file for inspection (sqlite3 ", dest, " '.recover').");
  return Status::Ok();
}

Status SqliteStore::PrepareStatements() {
  // A read-only store may look at a version-1 file (no journal_batches) or a
  // version-2 one (checkpoints, not checkpoint_parts).
  int code = SQLITE_OK;
  auto found = Strings("SELECT name FROM sqlite_master WHERE name='journal_batches'", &code);
  if (!found.ok()) return found.status();
  const bool batches = !found->empty();
  found = Strings("SELECT name FROM sqlite_master WHERE name='checkpoint_parts'", &code);
  if (!found.ok()) return found.status();
  const bool parts = !found->empty();
  // A read-only look at a store an older build wrote: no queues.dead_lettered
  // (reads as 0; a read-only store never updates).
  found = Strings("SELECT name FROM pragma_table_info('queues') WHERE name='dead_lettered'", &code);
  if (!found.ok()) return found.status();
  const bool dead_lettered = !found->empty();
  dead_lettered_column_ = dead_lettered;
  const std::string select_queues =
      std::string("SELECT id, sink, records, bytes, appended, delivered, dropped_oldest, "
                  "dropped_newest, purged, last_seq, ") +
      (dead_lettered ? "dead_lettered" : "0") + " FROM queues ORDER BY id";
  const std::string update_queue =
      std::string("UPDATE queues SET records=?2, bytes=?3, appended=?4, delivered=?5, "
                  "dropped_oldest=?6, dropped_newest=?7, purged=?8, last_seq=max(last_seq, ?9)") +
      (dead_lettered ? ", dead_lettered=?10" : "") + " WHERE id=?1";
  // Rows at or below the checkpoint may wait for their delete (see the top):
  // they are not read, nor counted.
  const std::string covered =
      "ifnull((SELECT value FROM meta WHERE key='checkpoint_journal_seq'), 0)";
  const std::string after = "max(?1, " + covered + ")";
  const std::string read_journal =
      batches ? "SELECT seq, seq, source, topic, payload, arrival_ms, 0 FROM journal WHERE seq>" +
                    after +
                    " UNION ALL SELECT seq, first_seq, source, '', entries, 0, 1 FROM "
                    "journal_batches WHERE seq>" +
                    after + " ORDER BY 1 LIMIT ?2"
              : "SELECT seq, seq, source, topic, payload, arrival_ms, 0 FROM journal WHERE seq>" +
                    after + " ORDER BY 1 LIMIT ?2";
  const std::string journal_high =
      std::string("SELECT max(ifnull((SELECT max(seq) FROM journal), 0), ") +
      (batches ? "ifnull((SELECT max(seq) FROM journal_batches), 0), " : "") +
      covered + ")";
  const std::string journal_count =
      batches ? "SELECT (SELECT count(*) FROM journal WHERE seq>" + covered + ") + "
                "ifnull((SELECT sum(seq - max(first_seq, " + covered + " + 1) + 1) "
                "FROM journal_batches WHERE seq>" + covered + "), 0), "
                "ifnull((SELECT sum(length(payload)) FROM journal WHERE seq>" + covered + "), 0) + "
                "ifnull((SELECT sum(bytes) FROM journal_batches WHERE seq>" + covered + "), 0)"
              : "SELECT count(*), ifnull(sum(length(payload)), 0) FROM journal WHERE seq>" +
                    covered;
  // One statement, so one read transaction: the meta values and the parts
  // belong to the same save even while the writer makes the next current.
  // A never-saved checkpoint has a NULL journal position.
  // Version 2's table holds generation 0 (see the top); its LEFT JOIN also
  // gives the one row that carries the meta values when there is no part.
  const std::string meta_value = "(SELECT value FROM meta WHERE key=";
  const std::string select_checkpoint =
      "WITH m AS (SELECT " + meta_value + "'checkpoint_journal_seq') AS seq, " + meta_value +
      "'checkpoint_saved_ms') AS saved, " +
      (parts ? "ifnull(" + meta_value + "'checkpoint_generation'), 0)" : std::string("0")) +
      " AS gen) " +
      (parts ? "SELECT m.seq, m.saved, p.pipeline, p.part, p.bytes FROM m JOIN checkpoint_parts p "
               "ON p.generation=m.gen UNION ALL "
             : "") +
      "SELECT m.seq, m.saved, c.pipeline, 0, c.snapshot FROM m LEFT JOIN checkpoints c "
      "ON m.gen=0 ORDER BY 3, 4";
  struct Item {
    Stmt* stmt;
    const char* sql;
  };
  const Item items[] = {
      {&begin_, "BEGIN IMMEDIATE"},
      {&commit_, "COMMIT"},
      {&rollback_, "ROLLBACK"},
      {&insert_journal_,
       batches ? "INSERT INTO journal_batches(seq, first_seq, source, bytes, entries) "
                 "VALUES(?1, ?2, ?3, ?4, ?5)"
               : "SELECT 1"},
      {&update_queue_, update_queue.c_str()},
      {&insert_queue_, "INSERT INTO queues(sink) VALUES(?1)"},
      {&select_queues_, select_queues.c_str()},
      {&queue_records_, "SELECT records FROM queues WHERE id=?1"},
      {&read_journal_, read_journal.c_str()},
      {&journal_high_, journal_high.c_str()},
      {&journal_count_, journal_count.c_str()},
      {&insert_part_,
       parts ? "INSERT INTO checkpoint_parts(generation, pipeline, part, bytes) "
               "VALUES(?1, ?2, ?3, ?4)"
             : "SELECT 1"},
      {&select_checkpoint_, select_checkpoint.c_str()},
      {&delete_stale_parts_,
       parts ? "DELETE FROM checkpoint_parts WHERE rowid IN "
               "(SELECT rowid FROM checkpoint_parts WHERE generation<>?1 LIMIT ?2)"
             : "SELECT 1"},
      {&delete_legacy_checkpoints_,
       "DELETE FROM checkpoints WHERE rowid IN (SELECT rowid FROM checkpoints WHERE ?1<>0 "
       "LIMIT ?2)"},
      {&trim_journal_,
       "DELETE FROM journal WHERE seq IN (SELECT seq FROM journal WHERE seq<=?1 ORDER BY seq "
       "LIMIT ?2)"},
      {&trim_batches_, batches ? "DELETE FROM journal_batches WHERE seq IN (SELECT seq FROM "
                                 "journal_batches WHERE seq<=?1 ORDER BY seq LIMIT ?2)"
                               : "SELECT 1"},
      {&set_meta_,
       "INSERT INTO meta(key, value) VALUES(?1, ?2) "
       "ON CONFLICT(key) DO UPDATE SET value=excluded.value"},
      {&get_meta_, "SELECT value FROM meta WHERE key=?1"},
  };
  for (const Item& item : items) {
    int rc = item.stmt->Prepare(db_, item.sql);
    if (rc != SQLITE_OK) return Sql(rc, std::string("preparing \"") + item.sql + "\"");
  }
  return Status::Ok();
}

Status SqliteStore::LoadQueues() {
  std::lock_guard<std::mutex> db_lock(db_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    by_sink_.clear();
    total_bytes_ = 0;
  }
  RETURN_IF_ERROR(LoadNewQueues());
  Query high(journal_high_);
  int rc = high.Step();
  if (rc != SQLITE_ROW) return Sql(rc, "reading the journal sequence");
  next_journal_seq_ = high.ColU64(0) + 1;
  return Status::Ok();
}

Status SqliteStore::LoadNewQueues() {
  std::vector<std::pair<std::unique_ptr<QueueState>, uint64_t>> fresh;
  {
    Query q(select_queues_);
    int rc;
    while ((rc = q.Step()) == SQLITE_ROW) {
      std::string sink = q.ColBytes(1);
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (by_sink_.count(sink) != 0) continue;
      }
      auto state = std::make_unique<QueueState>();
      state->id = q.ColInt(0);
      state->sink = std::move(sink);
      state->c = {q.ColU64(2), q.ColU64(3), q.ColU64(4), q.ColU64(5),
                  q.ColU64(6), q.ColU64(7), q.ColU64(8), q.ColU64(10)};
      fresh.push_back({std::move(state), q.ColU64(9)});
    }
    if (rc != SQLITE_DONE) return Sql(rc, "reading the queues");
  }
  for (auto& [state, last_seq] : fresh) {
    RETURN_IF_ERROR(PrepareQueue(*state, last_seq));
    std::lock_guard<std::mutex> lock(mu_);
    total_bytes_ += state->c.bytes;
    by_sink_[state->sink] = std::move(state);
  }
  return Status::Ok();
}

Status SqliteStore::PrepareQueue(QueueState& q, uint64_t last_seq) {
  const std::string t = OutboxTable(q.id);
  if (!options_.read_only) {  // normally there already
    char* err = nullptr;
    int rc = sqlite3_exec(db_, OutboxDdl(q.id).c_str(), nullptr, nullptr, &err);
    sqlite3_free(err);
    if (rc != SQLITE_OK) return Sql(rc, "creating " + t);
  }
  struct Item {
    Stmt* stmt;
    std::string sql;
  };
  const Item items[] = {
      {&q.insert, "INSERT INTO " + t + "(seq, id, key, body, created_ms) VALUES(?1, ?2, ?3, ?4, ?5)"},
      {&q.peek, "SELECT seq, id, key, body FROM " + t + " WHERE seq>?1 ORDER BY seq LIMIT ?2"},
      {&q.oldest_page, "SELECT seq, length(body) FROM " + t + " WHERE seq>?1 ORDER BY seq LIMIT ?2"},
      {&q.count_through,
       "SELECT count(*), ifnull(sum(length(body)), 0) FROM " + t + " WHERE seq<=?1"},
      {&q.delete_through, "DELETE FROM " + t + " WHERE seq<=?1"},
      {&q.oldest_ms, "SELECT created_ms FROM " + t + " WHERE seq>?1 ORDER BY seq LIMIT 1"},
  };
  for (const Item& item : items) {
    int rc = item.stmt->Prepare(db_, item.sql.c_str());
    if (rc != SQLITE_OK) return Sql(rc, "preparing \"" + item.sql + "\"");
  }
  int code = SQLITE_OK;
  auto max_seq = Strings(("SELECT ifnull(max(seq), 0) FROM " + t).c_str(), &code);
  if (!max_seq.ok()) return max_seq.status();
  uint64_t newest = max_seq->empty() ? 0 : std::strtoull((*max_seq)[0].c_str(), nullptr, 10);
  q.next_seq = std::max(newest, last_seq) + 1;
  return Status::Ok();
}

void SqliteStore::CloseDb() {
  for (Stmt* s : {&begin_, &commit_, &rollback_, &insert_journal_, &update_queue_,
                  &insert_queue_, &select_queues_, &queue_records_, &read_journal_,
                  &journal_high_, &journal_count_, &insert_part_, &select_checkpoint_,
                  &delete_stale_parts_, &delete_legacy_checkpoints_, &trim_journal_,
                  &trim_batches_, &set_meta_, &get_meta_,
                  &insert_dead_letter_, &dead_letter_page_, &delete_dead_letters_through_,
                  &read_dead_letters_, &count_dead_letters_, &delete_all_dead_letters_}) {
    s->Finalize();
  }
  dead_letters_ready_ = false;
  for (auto& [sink, q] : by_sink_) {
    for (Stmt* s : {&q->insert, &q->peek, &q->oldest_page, &q->count_through,
                    &q->delete_through, &q->oldest_ms}) {
      s->Finalize();
    }
  }
  StopCheckpointer();
  if (db_ != nullptr) {
    sqlite3_close_v2(db_);  // checkpoints the WAL and removes it when it can
    db_ = nullptr;
  }
}

// ---------------------------------------------------------------- helpers

Status SqliteStore::Sql(sqlite3* db, int rc, std::string_view what) const {
  std::string msg = "store " + path_ + ": " + std::string(what) + ": ";
  const char* detail = db ? sqlite3_errmsg(db) : nullptr;
  msg += detail ? detail : sqlite3_errstr(rc);
  msg += " (SQLite code " + std::to_string(rc) + ")";
  return Status(CodeFor(rc), msg);
}

Status SqliteStore::Exec(const Stmt& s, std::string_view what) {
  Query q(s);
  int rc = q.Step();
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) return Sql(rc, what);
  return Status::Ok();
}

Status SqliteStore::InTransaction(std::string_view what,
                                  const std::function<Status()>& body) {
  Status s = Exec(begin_, what);
  if (s.ok()) s = body();
  if (s.ok()) s = Exec(commit_, what);
  // SQLite may have rolled back by itself (SQLITE_FULL at COMMIT does).
  if (!s.ok() && !sqlite3_get_autocommit(db_)) {
    Query q(rollback_);
    (void)q.Step();
  }
  return s;
}

Status SqliteStore::UpdateQueueRow(const QueueState& qs, const Counters& c, uint64_t last_seq) {
  Query q(update_queue_);
  q.Int(1, qs.id).U64(9, last_seq).U64(2, c.records).U64(3, c.bytes).U64(4, c.appended).U64(5, c.delivered)
      .U64(6, c.dropped_oldest).U64(7, c.dropped_newest).U64(8, c.purged);
  if (dead_lettered_column_) q.U64(10, c.dead_lettered);
  int rc = q.Step();
  return rc == SQLITE_DONE ? Status::Ok() : Sql(rc, "updating queue figures");
}

Status SqliteStore::CountThrough(const QueueState& q, uint64_t through, uint64_t* n,
                                 uint64_t* bytes) {
  Query query(q.count_through);
  query.U64(1, through);
  int rc = query.Step();
  if (rc != SQLITE_ROW) return Sql(rc, "counting delivered records");
  *n = query.ColU64(0);
  *bytes = query.ColU64(1);
  return Status::Ok();
}

Status SqliteStore::DeleteThrough(const QueueState& q, uint64_t through) {
  Query query(q.delete_through);
  query.U64(1, through);
  int rc = query.Step();
  return rc == SQLITE_DONE ? Status::Ok() : Sql(rc, "deleting records");
}

Status SqliteStore::DeletePending(const QueueState& q, Counters& c) {
  RETURN_IF_ERROR(DeleteThrough(q, q.removed_through));
  // HideDelivered counted them, and only a committed delete changes them.
  c.records -= std::min(c.records, q.pending_records);
  c.bytes -= std::min(c.bytes, q.pending_bytes);
  q.CountRemoved(q.pending_records, c);
  return Status::Ok();
}

// Deletes the oldest records of `q` until at least `need` body bytes are
// freed or the queue is empty; counts them as dropped_oldest in `c`.
Status SqliteStore::EvictOldest(const QueueState& q, uint64_t need, Counters& c) {
  uint64_t freed = 0, n = 0, through = 0;
  while (freed < need) {
    Query page(q.oldest_page);
    page.U64(1, through).Int(2, kPageRows);
    int rc = SQLITE_DONE;
    int rows = 0;
    while (freed < need && (rc = page.Step()) == SQLITE_ROW) {
      ++rows;
      through = page.ColU64(0);
      freed += page.ColU64(1);
      ++n;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return Sql(rc, "finding the oldest records");
    if (rows == 0) break;  // queue empty
  }
  if (n == 0) return Status::Ok();
  RETURN_IF_ERROR(DeleteThrough(q, through));
  c.records -= std::min(c.records, n);
  c.bytes -= std::min(c.bytes, freed);
  c.dropped_oldest += n;
  return Status::Ok();
}

void SqliteStore::SetUpReserve() {
  size_t slash = path_.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path_.substr(0, std::max<size_t>(slash, 1));
  struct statvfs vfs;
  uint64_t fs_bytes = ::statvfs(dir.c_str(), &vfs) == 0
                          ? static_cast<uint64_t>(vfs.f_blocks) * vfs.f_frsize
                          : kMaxReserveBytes * 8;
  reserve_bytes_ = std::clamp(fs_bytes / 8, kMinReserveBytes, kMaxReserveBytes);
  int code = SQLITE_OK;
  auto page = Strings("PRAGMA page_size", &code);
  uint64_t page_size = page.ok() && !page->empty() ? std::max(512ull, std::stoull((*page)[0])) : 4096;
  checkpoint_pages_ =
      static_cast<int>(std::clamp<uint64_t>(reserve_bytes_ / page_size / 4, 16, 1000));
  StartCheckpointer();
  reserve_tried_ = clock_.Now();
  CreateReserve();
}

void SqliteStore::StartCheckpointer() {
  StopCheckpointer();
  // Used under checkpoint_pass_mu_ only (by its thread, or PaceBulkWork).
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(path_.c_str(), &checkpoint_db_, flags, nullptr);
  if (rc == SQLITE_OK) {
    sqlite3_busy_timeout(checkpoint_db_, kBusyTimeoutMs);
    // The checkpoint's fsyncs follow the connection's own setting.
    const std::string sync = std::string("PRAGMA synchronous=") +
                             (options_.durability == Durability::kFull ? "FULL" : "NORMAL");
    rc = sqlite3_exec(checkpoint_db_, sync.c_str(), nullptr, nullptr, nullptr);
  }
  if (rc != SQLITE_OK) {
    // Not fatal: the writer checkpoints as SQLite does by default.
    LogWarn("store ", path_, ": no checkpointer connection (", sqlite3_errstr(rc),
            "); commits will checkpoint the WAL themselves");
    sqlite3_close_v2(checkpoint_db_);
    checkpoint_db_ = nullptr;
    sqlite3_wal_autocheckpoint(db_, checkpoint_pages_);
    return;
  }
  checkpoint_stop_ = false;
  checkpoint_wanted_ = false;
  sqlite3_wal_hook(db_, &SqliteStore::OnWalCommit, this);  // replaces the auto-checkpoint
  checkpointer_ = std::thread([this] {
    NameThisThread("checkpointer");
    CheckpointLoop();
  });
}

void SqliteStore::StopCheckpointer() {
  if (checkpointer_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(checkpoint_mu_);
      checkpoint_stop_ = true;
    }
    checkpoint_cv_.notify_all();
    checkpointer_.join();
  }
  {
    std::lock_guard<std::mutex> pass(checkpoint_pass_mu_);
    if (checkpoint_db_ != nullptr) {
      sqlite3_close_v2(checkpoint_db_);
      checkpoint_db_ = nullptr;
    }
  }
  if (db_ != nullptr) sqlite3_wal_hook(db_, nullptr, nullptr);
}

int SqliteStore::OnWalCommit(void* self, sqlite3* db, const char*, int wal_pages) {
  auto* store = static_cast<SqliteStore*>(self);
  store->wal_pages_.store(wal_pages, std::memory_order_relaxed);
  if (wal_pages < store->checkpoint_pages_) return SQLITE_OK;
  if (wal_pages >= kWalWriterCheckpointFactor * store->checkpoint_pages_) {
    // The thread is behind (a writer faster than its copying, or its
    // checkpoints never catching up with commits that keep coming): the
    // writer waits for its pass, then copies the rest itself between two
    // commits, as SQLite's own auto-checkpoint does, so that the next commit
    // starts the WAL over: that bounds the -wal file. PASSIVE still: a
    // reader (`sluice buffer`) must never stall ingest. (The thread's pass
    // is waited for because SQLite refuses a second checkpointer at once.)
    std::lock_guard<std::mutex> pass(store->checkpoint_pass_mu_);
    sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    return SQLITE_OK;
  }
  {
    std::lock_guard<std::mutex> lock(store->checkpoint_mu_);
    store->checkpoint_wanted_ = true;
  }
  store->checkpoint_cv_.notify_one();
  return SQLITE_OK;
}

void SqliteStore::PaceBulkWork() {
  std::this_thread::sleep_for(kBulkPause);
  if (wal_pages_.load(std::memory_order_relaxed) < checkpoint_pages_) return;
  std::lock_guard<std::mutex> pass(checkpoint_pass_mu_);
  if (checkpoint_db_ == nullptr) return;
  sqlite3_wal_checkpoint_v2(checkpoint_db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
}

void SqliteStore::CheckpointLoop() {
  std::unique_lock<std::mutex> lock(checkpoint_mu_);
  int last_copied = 0;
  while (true) {
    checkpoint_cv_.wait(lock, [this] { return checkpoint_stop_ || checkpoint_wanted_; });
    if (checkpoint_stop_) return;
    checkpoint_wanted_ = false;
    lock.unlock();
    // PASSIVE: copies what no reader still needs, never blocks the writer;
    // once everything is copied, the writer's next commit starts the -wal
    // file over. A failure (busy, I/O) is left to the next wake-up.
    int frames = 0, copied = 0, rc;
    {
      std::lock_guard<std::mutex> pass(checkpoint_pass_mu_);
      rc = sqlite3_wal_checkpoint_v2(checkpoint_db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, &frames,
                                     &copied);
    }
    lock.lock();
    // Commits went on meanwhile: go again at once while that makes progress
    // (no progress: a reader still needs the old pages; wait for a commit).
    if (rc == SQLITE_OK && copied < frames && copied > last_copied) checkpoint_wanted_ = true;
    last_copied = copied;
  }
}

void SqliteStore::CreateReserve() {
  int fd = ::open(reserve_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return;
  struct stat st;
  bool ok = ::fstat(fd, &st) == 0 && static_cast<uint64_t>(st.st_size) >= reserve_bytes_ &&
            static_cast<uint64_t>(st.st_blocks) * 512 >= reserve_bytes_;
  if (!ok) ok = ::posix_fallocate(fd, 0, static_cast<off_t>(reserve_bytes_)) == 0;
  ::close(fd);
  if (!ok) ::unlink(reserve_path_.c_str());  // no room: run without, retry later
  reserve_present_ = ok;
}

bool SqliteStore::ReleaseReserve() {
  if (!reserve_present_) return false;
  ::unlink(reserve_path_.c_str());
  reserve_present_ = false;
  reserve_tried_ = clock_.Now();
  LogWarn("store ", path_, ": disk full; released the ", reserve_bytes_ >> 10, " KiB reserve (",
          reserve_path_, ") so that records can still be deleted");
  // Moves the WAL into the database and gives its space back.
  sqlite3_exec(db_, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr);
  return true;
}

bool SqliteStore::SpaceIsBack() const {
  size_t slash = path_.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path_.substr(0, std::max<size_t>(slash, 1));
  struct statvfs vfs;
  return ::statvfs(dir.c_str(), &vfs) == 0 &&
         static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize >= 4 * reserve_bytes_;
}

void SqliteStore::MaybeRestoreReserve() {
  if (reserve_bytes_ == 0 || (reserve_present_ && !growth_capped_)) return;
  SteadyTime now = clock_.Now();
  if (now - reserve_tried_ < kReserveRetryInterval) return;
  reserve_tried_ = now;
  (void)MaybeLiftGrowthCap();
  if (!reserve_present_ && SpaceIsBack()) CreateReserve();
}

void SqliteStore::CapGrowth() {
  // Room on the file system: max_db_bytes is what is full, not the disk.
  if (memory_ || growth_capped_ || reserve_bytes_ == 0 || SpaceIsBack()) return;
  int code = SQLITE_OK;
  auto pages = Strings("PRAGMA page_count", &code);
  if (!pages.ok() || pages->empty()) return;
  if (!Strings(("PRAGMA max_page_count=" + (*pages)[0]).c_str(), &code).ok()) return;
  growth_capped_ = true;
}

bool SqliteStore::MaybeLiftGrowthCap() {
  if (!growth_capped_ || !SpaceIsBack()) return false;
  if (!reserve_present_) CreateReserve();
  int code = SQLITE_OK;
  if (!reserve_present_ || base_max_pages_.empty() ||
      !Strings(("PRAGMA max_page_count=" + base_max_pages_).c_str(), &code).ok()) {
    return false;
  }
  growth_capped_ = false;
  LogInfo("store ", path_, ": disk space is back; the database may grow again");
  return true;
}

void SqliteStore::NoteFailure(const Status& s) {
  failing_ = true;
  trouble_log_.Log(s.ToString());
}

void SqliteStore::NoteSuccess() {
  MaybeRestoreReserve();
  if (failing_) {
    failing_ = false;
    LogInfo("store ", path_, ": the database accepts writes again");
  }
}

Status SqliteStore::FreeSpace(const std::function<Status()>& deletion, std::string_view context) {
  Status s = deletion();
  if (s.code() == StatusCode::kResourceExhausted && ReleaseReserve()) s = deletion();
  if (s.ok()) {
    NoteSuccess();
  } else {
    NoteFailure(context.empty() ? s : s.WithContext(context));
  }
  return s;
}

// ---------------------------------------------------------------- queues

StatusOr<int> SqliteStore::AddQueue(const std::string& sink, QueueOptions options) {
  if (sink.empty()) return Status::InvalidArgument("a queue needs a sink name");
  std::lock_guard<std::mutex> db_lock(db_mu_);
  QueueState* state = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = by_sink_.find(sink);
    if (it != by_sink_.end()) state = it->second.get();
  }
  if (state == nullptr && options_.read_only) {  // added by the writer since we opened?
    RETURN_IF_ERROR(LoadNewQueues());
    std::lock_guard<std::mutex> lock(mu_);
    auto it = by_sink_.find(sink);
    if (it == by_sink_.end()) {
      return Status::NotFound("store " + path_ + " has no queue for sink '" + sink + "'");
    }
    state = it->second.get();
  }
  if (state == nullptr) {
    auto fresh = std::make_unique<QueueState>();
    fresh->sink = sink;
    Status s = InTransaction("adding the queue of sink '" + sink + "'", [&]() -> Status {
      Query q(insert_queue_);
      q.Text(1, sink);
      int rc = q.Step();
      if (rc != SQLITE_DONE) return Sql(rc, "adding the queue of sink '" + sink + "'");
      fresh->id = sqlite3_last_insert_rowid(db_);
      char* err = nullptr;
      rc = sqlite3_exec(db_, OutboxDdl(fresh->id).c_str(), nullptr, nullptr, &err);
      sqlite3_free(err);
      return rc == SQLITE_OK ? Status::Ok() : Sql(rc, "creating " + OutboxTable(fresh->id));
    });
    if (!s.ok()) return s;
    RETURN_IF_ERROR(PrepareQueue(*fresh, 0));
    state = fresh.get();
    std::lock_guard<std::mutex> lock(mu_);
    by_sink_[sink] = std::move(fresh);
  }
  std::lock_guard<std::mutex> lock(mu_);
  state->options = options;
  if (state->index < 0) {
    state->index = static_cast<int>(queues_.size());
    state->view = std::make_unique<QueueView>(*this, *state);
    queues_.push_back(state);
  }
  return state->index;
}

Status SqliteStore::Write(Commit& commit) {
  if (options_.read_only) return ReadOnlyError();
  if (commit.journal.empty() &&
      std::all_of(commit.outputs.begin(), commit.outputs.end(),
                  [](const std::vector<Envelope>& v) { return v.empty(); })) {
    return Status::Ok();
  }
  std::unique_lock<std::mutex> db_lock(db_mu_);
  if (commit.outputs.size() > queues_.size()) {
    return Status::InvalidArgument("commit has outputs for " + std::to_string(commit.outputs.size()) +
                                   " queues, the store declares " + std::to_string(queues_.size()));
  }
  // True when the store or a queue this commit writes to is closed; mu_ held.
  auto closed = [&]() -> const QueueState* {
    for (size_t i = 0; i < commit.outputs.size(); ++i) {
      if (!commit.outputs[i].empty() && queues_[i]->closed) return queues_[i];
    }
    return nullptr;
  };
  while (true) {
    uint64_t gen;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closed_) return Status::Cancelled("store " + path_ + " is closed");
      if (const QueueState* q = closed()) {
        return Status::Cancelled("queue of sink '" + q->sink + "' is closed");
      }
      gen = room_gen_;
    }
    bool blocked = false;
    Status s = WriteOnce(commit, nullptr, &blocked);
    if (!blocked && s.code() == StatusCode::kResourceExhausted) {
      s = WriteWhenFull(commit, s, &blocked);
    }
    if (!blocked) {
      if (s.ok()) {
        NoteSuccess();
      } else {
        NoteFailure(s);
      }
      return s;
    }
    // A block-policy queue is full: wait, outside any transaction, for the
    // delivery loop (Remove) or a Purge to make room.
    db_lock.unlock();
    {
      std::unique_lock<std::mutex> lock(mu_);
      room_cv_.wait(lock, [&] { return room_gen_ != gen || closed_ || closed() != nullptr; });
    }
    db_lock.lock();
  }
}

Status SqliteStore::WriteOnce(const Commit& commit, const std::vector<bool>* refused,
                             bool* blocked) {
  const int64_t now_ms = ToEpochMillis(clock_.WallNow());
  struct Change {
    QueueState* q;
    Counters c;
    uint64_t next_seq;
    bool inserted;
    bool flushed_pending;
  };
  std::vector<Change> changes;
  uint64_t total = total_bytes_;
  uint64_t journal_seq = next_journal_seq_;
  Status s = InTransaction("writing a commit", [&]() -> Status {
    for (const JournalBatch::Run& run : commit.journal.runs()) {
      const uint64_t first = journal_seq;
      journal_seq += run.readings;
      Query q(insert_journal_);
      q.U64(1, journal_seq - 1).U64(2, first).Text(3, run.source).U64(4, run.payload_bytes);
      q.Blob(5, run.packed);
      int rc = q.Step();
      if (rc != SQLITE_DONE) return Sql(rc, "writing the journal");
      ++journal_rows_written_;
    }
    for (size_t i = 0; i < commit.outputs.size(); ++i) {
      const std::vector<Envelope>& batch = commit.outputs[i];
      if (batch.empty()) continue;
      QueueState& q = *queues_[i];
      Change change{&q, q.c, q.next_seq, false, false};
      Counters& c = change.c;
      const uint64_t others = total - c.bytes;  // what every other queue holds
      if (q.pending_records > 0) {  // delivered, delete not yet committed
        RETURN_IF_ERROR(DeletePending(q, c));
        change.flushed_pending = true;
      }

      // What this queue may hold now: its own cap, and what the other queues
      // leave of the global one.
      uint64_t cap = q.options.max_bytes > 0 ? q.options.max_bytes
                                             : std::numeric_limits<uint64_t>::max();
      if (options_.max_total_bytes > 0) {
        cap = std::min(cap, options_.max_total_bytes > others ? options_.max_total_bytes - others : 0);
      }
      uint64_t batch_bytes = 0;
      for (const Envelope& e : batch) batch_bytes += e.body.size();

      size_t first = 0;  // records before it are dropped as oldest
      std::vector<bool> skip;  // drop_newest: left out
      const bool refuse = refused != nullptr && i < refused->size() && (*refused)[i];
      if (refuse) {  // drop_newest on a full disk: none of them
        skip.assign(batch.size(), true);
        c.dropped_newest += batch.size();
      } else {
        switch (q.options.overflow) {
          case OverflowPolicy::kBlock:
            // An empty queue takes any batch, so a batch above the cap cannot
            // wait forever.
            if (c.bytes > 0 && c.bytes + batch_bytes > cap) {
              *blocked = true;
              return Status(StatusCode::kAborted, "queue of sink '" + q.sink + "' is full");
            }
            break;
          case OverflowPolicy::kDropNewest: {
            skip.assign(batch.size(), false);
            uint64_t room = cap > c.bytes ? cap - c.bytes : 0;
            for (size_t k = 0; k < batch.size(); ++k) {
              if (batch[k].body.size() <= room) {
                room -= batch[k].body.size();
              } else {
                skip[k] = true;
                ++c.dropped_newest;
              }
            }
            break;
          }
          case OverflowPolicy::kDropOldest: {
            if (c.bytes + batch_bytes > cap) {
              RETURN_IF_ERROR(EvictOldest(q, c.bytes + batch_bytes - cap, c));
              // Still too much: the batch alone exceeds the cap; its own
              // oldest records go (counted as appended and dropped).
              uint64_t left = batch_bytes;
              while (first < batch.size() && c.bytes + left > cap) {
                left -= batch[first].body.size();
                ++first;
                ++c.appended;
                ++c.dropped_oldest;
              }
            }
            break;
          }
        }
      }
      for (size_t k = first; k < batch.size(); ++k) {
        if (!skip.empty() && skip[k]) continue;
        const Envelope& e = batch[k];
        Query ins(q.insert);
        ins.U64(1, change.next_seq).Text(2, e.id).Text(3, e.key).Blob(4, e.body).Int(5, now_ms);
        int rc = ins.Step();
        if (rc != SQLITE_DONE) return Sql(rc, "queueing records for sink '" + q.sink + "'");
        ++change.next_seq;
        ++c.records;
        ++c.appended;
        c.bytes += e.body.size();
        change.inserted = true;
      }
      total = others + c.bytes;
      RETURN_IF_ERROR(UpdateQueueRow(q, c, change.next_seq - 1));
      changes.push_back(change);
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;

  next_journal_seq_ = journal_seq;
  std::lock_guard<std::mutex> lock(mu_);
  bool room = false;
  for (Change& ch : changes) {
    total_bytes_ = total_bytes_ - ch.q->c.bytes + ch.c.bytes;
    ch.q->c = ch.c;
    ch.q->next_seq = ch.next_seq;
    if (ch.flushed_pending) {
      ch.q->ClearPending();
      room = true;
    }
    if (ch.inserted) ch.q->rows_cv.notify_all();
  }
  if (room) {
    ++room_gen_;
    room_cv_.notify_all();
  }
  return Status::Ok();
}

Status SqliteStore::WriteWhenFull(const Commit& commit, const Status& failure, bool* blocked) {
  std::vector<bool> refused(commit.outputs.size(), false);
  bool any_refused = false;
  struct Evictee {
    QueueState* q;
    uint64_t adds;          // body bytes this commit appends to it
    uint64_t dropped = 0;   // by this Write
  };
  std::vector<Evictee> evictees;
  for (size_t i = 0; i < commit.outputs.size(); ++i) {
    const std::vector<Envelope>& batch = commit.outputs[i];
    if (batch.empty()) continue;
    QueueState& q = *queues_[i];
    if (q.options.overflow == OverflowPolicy::kDropNewest) {
      refused[i] = true;
      any_refused = true;
    } else if (q.options.overflow == OverflowPolicy::kDropOldest) {
      uint64_t adds = 0;
      for (const Envelope& e : batch) adds += e.body.size();
      evictees.push_back({&q, adds});
    }
  }
  Status s = failure;
  if (MaybeLiftGrowthCap()) {  // the space is back: as it was
    s = WriteOnce(commit, nullptr, blocked);
    if (s.code() != StatusCode::kResourceExhausted || *blocked) return s;
  }
  if (!any_refused && evictees.empty()) return s;  // block queues, the journal: hold

  CapGrowth();
  if (any_refused) {
    s = WriteOnce(commit, &refused, blocked);
    // Even a commit without those records (the drop counters, the other
    // queues) does not fit: the reserve is for this, or drop_newest would
    // hold intake like block. Once the WAL is checkpointed its space is
    // reused, so this carries on for as long as the disk stays full.
    if (s.code() == StatusCode::kResourceExhausted && !*blocked && ReleaseReserve()) {
      s = WriteOnce(commit, &refused, blocked);
    }
  }
  uint64_t dropped = 0;
  for (int round = 0; round < kFullEvictRounds && !evictees.empty() &&
                      s.code() == StatusCode::kResourceExhausted && !*blocked;
       ++round) {
    bool evicted = false;
    for (Evictee& e : evictees) {
      StatusOr<uint64_t> n = EvictToMakeRoom(*e.q, (e.adds << (round + 1)) + kFullEvictSlackBytes);
      if (!n.ok()) {
        s = n.status();
        break;
      }
      e.dropped += *n;
      dropped += *n;
      evicted = evicted || *n > 0;
    }
    if (!evicted) break;  // nothing left to drop (or the delete failed): hold
    CheckpointWal();
    s = WriteOnce(commit, any_refused ? &refused : nullptr, blocked);
  }
  if (dropped > 0 || (any_refused && s.ok())) {
    std::string what;
    for (const Evictee& e : evictees) {
      if (e.dropped == 0) continue;
      what += "; sink '" + e.q->sink + "': dropped its " + std::to_string(e.dropped) +
              " oldest queued record(s) (drop_oldest)";
    }
    if (s.ok()) {
      for (size_t i = 0; i < refused.size(); ++i) {
        if (!refused[i]) continue;
        what += "; sink '" + queues_[i]->sink + "': left out " +
                std::to_string(commit.outputs[i].size()) + " new record(s) (drop_newest)";
      }
    }
    full_log_.Log(std::string(failure.message()) + ": disk full, applied the overflow policies" +
                  what + (s.ok() ? "" : "; still no room: the commit waits"));
  }
  return s;
}

StatusOr<uint64_t> SqliteStore::EvictToMakeRoom(QueueState& q, uint64_t need) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (q.c.records == 0) return uint64_t{0};
  }
  Counters c;
  bool flushed = false;
  auto evict = [&]() -> Status {
    c = q.c;
    flushed = false;
    if (q.pending_records > 0) {  // delivered, delete not yet committed
      RETURN_IF_ERROR(DeletePending(q, c));
      flushed = true;
    }
    RETURN_IF_ERROR(EvictOldest(q, need, c));
    return UpdateQueueRow(q, c, 0);
  };
  const std::string what = "dropping the oldest records of sink '" + q.sink + "' to make room";
  Status s = InTransaction(what, evict);
  if (s.code() == StatusCode::kResourceExhausted && ReleaseReserve()) s = InTransaction(what, evict);
  if (!s.ok()) return s;
  const uint64_t dropped = c.dropped_oldest - q.c.dropped_oldest;
  std::lock_guard<std::mutex> lock(mu_);
  total_bytes_ = total_bytes_ - q.c.bytes + c.bytes;
  q.c = c;
  if (flushed) q.ClearPending();
  ++room_gen_;
  room_cv_.notify_all();
  return dropped;
}

void SqliteStore::CheckpointWal() {
  if (memory_) return;
  sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
}

// Deletes the records of `q` through `through` (and any whose delete is
// pending) and counts them delivered, in transactions of at most
// kDeleteChunkRows so that a long pending delete fits a nearly full disk.
// What cannot be committed stays hidden from Peek, its delete pending.
Status SqliteStore::DeleteDelivered(QueueState& q, uint64_t through) {
  through = std::max(through, q.removed_through);
  uint64_t n = 0, b = 0;  // still to delete, through `through`
  RETURN_IF_ERROR(CountThrough(q, through, &n, &b));
  Status s;
  while (n > 0) {
    uint64_t upto = through, chunk_n = n, chunk_b = b;
    if (n > kDeleteChunkRows) {  // the oldest chunk first
      Query page(q.oldest_page);
      page.Int(1, 0).Int(2, kDeleteChunkRows);
      chunk_n = chunk_b = 0;
      int rc;
      while ((rc = page.Step()) == SQLITE_ROW) {
        upto = page.ColU64(0);
        chunk_b += page.ColU64(1);
        ++chunk_n;
      }
      if (rc != SQLITE_DONE) {
        s = Sql(rc, "finding delivered records");
        break;
      }
    }
    Counters c = q.c;
    c.records -= std::min(c.records, chunk_n);
    c.bytes -= std::min(c.bytes, chunk_b);
    const uint64_t refused = q.CountRemoved(chunk_n, c);
    s = InTransaction("deleting delivered records", [&]() -> Status {
      RETURN_IF_ERROR(DeleteThrough(q, upto));
      return UpdateQueueRow(q, c, 0);
    });
    if (!s.ok()) break;
    q.refused -= refused;
    std::lock_guard<std::mutex> lock(mu_);
    total_bytes_ = total_bytes_ - q.c.bytes + c.bytes;
    q.c = c;
    n -= std::min(n, chunk_n);
    b -= std::min(b, chunk_b);
    ++room_gen_;
    room_cv_.notify_all();
  }
  HideDelivered(q, through, n, b);
  return s;
}

void SqliteStore::HideDelivered(QueueState& q, uint64_t through, uint64_t n, uint64_t b) {
  std::lock_guard<std::mutex> lock(mu_);
  q.removed_through = through;
  q.pending_records = n;
  q.pending_bytes = b;
  if (n == 0) q.refused = 0;  // see QueueState::ClearPending
}

Status SqliteStore::DeleteNow(QueueState& q, uint64_t through, std::string_view context) {
  Status s = FreeSpace([&] { return DeleteDelivered(q, through); }, context);
  if (s.ok()) q.last_delete = clock_.Now();
  return s;
}

StatusOr<std::vector<QueuedEnvelope>> SqliteStore::PeekQueue(QueueState& q, size_t max,
                                                             Millis wait) {
  std::vector<QueuedEnvelope> out;
  if (max == 0) return out;
  if (!options_.read_only && wait.count() > 0) {
    std::unique_lock<std::mutex> lock(mu_);
    const SteadyTime deadline = clock_.Now() + std::min(wait, kMaxWait);
    while (q.visible() == 0 && !closed_ && !q.closed) {
      if (!clock_.WaitUntil(lock, q.rows_cv, deadline) && clock_.Now() >= deadline) break;
    }
  }
  std::lock_guard<std::mutex> db_lock(db_mu_);
  if (q.pending_records > 0 &&
      (clock_.Now() - q.last_delete >= kDeleteInterval || q.visible() == 0)) {
    (void)DeleteNow(q, q.removed_through);
  }
  Query query(q.peek);
  query.U64(1, q.removed_through).U64(2, std::min(max, kPeekMaxRows));
  uint64_t bytes = 0;
  int rc = SQLITE_DONE;
  while (bytes < kPeekMaxBytes && (rc = query.Step()) == SQLITE_ROW) {
    QueuedEnvelope e;
    e.seq = query.ColU64(0);
    e.envelope.id = query.ColBytes(1);
    e.envelope.key = query.ColBytes(2);
    e.envelope.body = query.ColBytes(3);
    bytes += e.envelope.body.size();
    out.push_back(std::move(e));
  }
  if (bytes < kPeekMaxBytes && rc != SQLITE_DONE) {
    return Sql(rc, "reading the queue of sink '" + q.sink + "'");
  }
  return out;
}

void SqliteStore::FlushDeletes() {
  if (options_.read_only || db_ == nullptr) return;
  std::lock_guard<std::mutex> db_lock(db_mu_);
  for (auto& q : queues_) {
    if (q->pending_records > 0) (void)DeleteNow(*q, q->removed_through);
  }
}

Status SqliteStore::RemoveFromQueue(QueueState& q, uint64_t through_seq, uint64_t refused) {
  if (options_.read_only) return ReadOnlyError();
  std::lock_guard<std::mutex> db_lock(db_mu_);
  q.refused += refused;
  if (clock_.Now() - q.last_delete < kDeleteInterval && q.pending_records < kDeleteChunkRows) {
    // Deferred: hidden from Peek now, deleted with a later commit.
    uint64_t n = 0, b = 0;
    const uint64_t through = std::max(through_seq, q.removed_through);
    RETURN_IF_ERROR(CountThrough(q, through, &n, &b));
    HideDelivered(q, through, n, b);
    return Status::Ok();
  }
  // Only a delete that happened starts the interval: a failed one (disk
  // full) is retried by the next Peek or Remove.
  Status s = DeleteNow(q, through_seq,
                       "sink '" + q.sink + "': delivered records stay hidden until they can be deleted");
  if (s.ok()) return s;
  // The records count as removed (Peek skips them); only the delete waits.
  return IsTransient(s) ? Status::Ok() : s;
}

void SqliteStore::CloseQueue(QueueState& q) {
  std::lock_guard<std::mutex> lock(mu_);
  q.closed = true;
  q.rows_cv.notify_all();
  room_cv_.notify_all();
}

size_t SqliteStore::QueueSize(QueueState& q) {
  if (options_.read_only) {  // the writer is another process: ask the file
    std::lock_guard<std::mutex> db_lock(db_mu_);
    Query query(queue_records_);
    query.Int(1, q.id);
    return query.Step() == SQLITE_ROW ? query.ColU64(0) : 0;
  }
  std::lock_guard<std::mutex> lock(mu_);
  return q.visible();
}

void SqliteStore::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  closed_ = true;
  room_cv_.notify_all();
  for (auto& [sink, q] : by_sink_) q->rows_cv.notify_all();
}

// ---------------------------------------------------------------- journal, checkpoints

StatusOr<uint64_t> SqliteStore::LastJournalSeq() {
  std::lock_guard<std::mutex> db_lock(db_mu_);
  if (!options_.read_only) return next_journal_seq_ - 1;
  Query q(journal_high_);  // the writer is another process
  int rc = q.Step();
  if (rc == SQLITE_ROW) return q.ColU64(0);
  return Sql(rc, "reading the journal sequence");
}

StatusOr<Store::JournalStats> SqliteStore::Journal() {
  std::lock_guard<std::mutex> db_lock(db_mu_);
  Query q(journal_count_);
  int rc = q.Step();
  if (rc != SQLITE_ROW) return Sql(rc, "counting the journal");
  return JournalStats{q.ColU64(0), q.ColU64(1)};
}

Status SqliteStore::ReadJournal(
    uint64_t after, const std::function<Status(uint64_t, const JournalEntry&)>& fn) {
  std::vector<std::pair<uint64_t, JournalEntry>> page;
  while (true) {
    page.clear();
    int64_t rows = 0;
    uint64_t last_row = after;
    {
      std::lock_guard<std::mutex> db_lock(db_mu_);
      Query q(read_journal_);
      q.U64(1, after).Int(2, kPageRows);
      int rc;
      std::vector<JournalEntry> unpacked;
      while ((rc = q.Step()) == SQLITE_ROW) {
        ++rows;
        const uint64_t last = q.ColU64(0);
        last_row = last;
        if (q.ColInt(6) == 0) {  // a version-1 row: one reading
          page.push_back({last, JournalEntry{q.ColBytes(2), q.ColBytes(3), q.ColBytes(4),
                                             q.ColInt(5)}});
          continue;
        }
        unpacked.clear();
        const uint64_t first = q.ColU64(1);
        if (!UnpackJournal(q.ColBytes(4), q.ColBytes(2), &unpacked) ||
            unpacked.size() != last - first + 1) {
          return Status::DataLoss("journal row " + std::to_string(last) + " is malformed");
        }
        for (size_t i = 0; i < unpacked.size(); ++i) {
          if (first + i > after) page.push_back({first + i, std::move(unpacked[i])});
        }
      }
      if (rc != SQLITE_DONE) return Sql(rc, "reading the journal");
    }
    // fn runs without the lock: it may write to the store.
    for (const auto& [seq, entry] : page) RETURN_IF_ERROR(fn(seq, entry));
    // A short page was the end (rows the callbacks wrote meanwhile are not read).
    if (rows < kPageRows) return Status::Ok();
    after = last_row;
  }
}

Status SqliteStore::InsertParts(uint64_t generation,
                                const std::map<std::string, std::string>& snapshots,
                                PartCursor& at, size_t budget) {
  size_t written = 0;
  while (at.next != snapshots.end() && written < budget) {
    const std::string& snapshot = at.next->second;
    const size_t n = std::min(kCheckpointPartBytes, snapshot.size() - at.offset);
    Query q(insert_part_);
    q.U64(1, generation).Text(2, at.next->first).Int(3, at.part)
        .Blob(4, std::string_view(snapshot).substr(at.offset, n));
    int rc = q.Step();
    if (rc != SQLITE_DONE) return Sql(rc, "saving the checkpoint of '" + at.next->first + "'");
    written += n + 1;  // an empty snapshot is a row too
    at.offset += n;
    ++at.part;
    if (at.offset >= snapshot.size()) {
      ++at.next;
      at.offset = 0;
      at.part = 0;
    }
  }
  return Status::Ok();
}

Status SqliteStore::MakeCurrent(uint64_t generation, uint64_t journal_seq) {
  const int64_t now_ms = ToEpochMillis(clock_.WallNow());
  for (const auto& [key, value] :
       {std::pair<const char*, int64_t>{"checkpoint_generation", static_cast<int64_t>(generation)},
        std::pair<const char*, int64_t>{"checkpoint_journal_seq",
                                        static_cast<int64_t>(journal_seq)},
        std::pair<const char*, int64_t>{"checkpoint_saved_ms", now_ms}}) {
    Query q(set_meta_);
    q.Text(1, key).Int(2, value);
    int rc = q.Step();
    if (rc != SQLITE_DONE) return Sql(rc, "saving the checkpoint");
  }
  return Status::Ok();
}

Status SqliteStore::SaveCheckpoint(const std::map<std::string, std::string>& snapshots,
                                   uint64_t journal_seq) {
  if (options_.read_only) return ReadOnlyError();
  std::lock_guard<std::mutex> save_lock(save_mu_);
  uint64_t current = 0;
  {
    std::lock_guard<std::mutex> db_lock(db_mu_);
    Query q(get_meta_);
    q.Text(1, "checkpoint_generation");
    int rc = q.Step();
    if (rc == SQLITE_ROW) {
      current = q.ColU64(0);
    } else if (rc != SQLITE_DONE) {
      Status s = Sql(rc, "saving a checkpoint");
      NoteFailure(s);
      return s;
    }
  }
  // Leftovers of a save that crashed or failed half-way would be read as
  // parts of the new generation if their number came back.
  RETURN_IF_ERROR(TrimAfterCheckpoint(current, 0));
  const uint64_t generation = current + 1;

  // The parts, a transaction per kCheckpointPartBytes, the connection free
  // between them: commits of readings go on meanwhile. Then one small
  // transaction makes them current.
  Status s;
  PartCursor at{snapshots.begin()};
  for (bool first = true; s.ok() && at.next != snapshots.end(); first = false) {
    if (!first) PaceBulkWork();
    std::lock_guard<std::mutex> db_lock(db_mu_);
    s = InTransaction("saving a checkpoint", [&] {
      return InsertParts(generation, snapshots, at, kCheckpointPartBytes);
    });
  }
  if (s.ok()) {
    std::lock_guard<std::mutex> db_lock(db_mu_);
    s = InTransaction("saving a checkpoint", [&] { return MakeCurrent(generation, journal_seq); });
  }
  if (s.code() == StatusCode::kResourceExhausted) {
    // No room for the new checkpoint beside the old one (a full disk, or
    // max_db_bytes): replace it in one transaction, reusing its pages, as
    // before parts existed. Commits wait for this one.
    (void)TrimAfterCheckpoint(current, 0);  // the parts written so far
    std::lock_guard<std::mutex> db_lock(db_mu_);
    s = FreeSpace([&] {
      return InTransaction("saving a checkpoint in place", [&]() -> Status {
        // Every part (no generation is 0; the new one's first parts may
        // still be there) and version 2's rows (generation >= 1 deletes
        // them). LIMIT -1: no limit.
        for (auto [old, bound] : {std::pair<const Stmt*, uint64_t>{&delete_stale_parts_, 0},
                                  {&delete_legacy_checkpoints_, generation}}) {
          Query q(*old);
          q.U64(1, bound).Int(2, -1);
          int rc = q.Step();
          if (rc != SQLITE_DONE) return Sql(rc, "replacing the checkpoint");
        }
        PartCursor all{snapshots.begin()};
        RETURN_IF_ERROR(InsertParts(generation, snapshots, all, SIZE_MAX));
        return MakeCurrent(generation, journal_seq);
      });
    });
  }
  if (!s.ok()) {
    std::lock_guard<std::mutex> db_lock(db_mu_);
    NoteFailure(s);
    return s;
  }
  {
    std::lock_guard<std::mutex> db_lock(db_mu_);
    // Entries up to journal_seq will be deleted: their numbers are never reused.
    next_journal_seq_ = std::max(next_journal_seq_, journal_seq + 1);
    NoteSuccess();
  }
  // The checkpoint is saved; what it replaced goes now or with the next save.
  (void)TrimAfterCheckpoint(generation, journal_seq);
  return Status::Ok();
}

Status SqliteStore::TrimAfterCheckpoint(uint64_t generation, uint64_t journal_seq) {
  struct Trim {
    const Stmt* stmt;
    uint64_t bound;
    int rows;  // per transaction
    bool journal;
  };
  // A long backlog (after saves failed for a while) is left to the next
  // save past kTrimBudget: this runs on the thread that ticks the pipelines.
  // Journal rows written since the last trim are owed twice, budget or not.
  const SteadyTime deadline = clock_.Now() + kTrimBudget;
  uint64_t owed = 0;
  if (journal_seq > 0) {
    std::lock_guard<std::mutex> db_lock(db_mu_);
    owed = 2 * (journal_rows_written_ - journal_rows_at_trim_);
    journal_rows_at_trim_ = journal_rows_written_;
  }
  for (const Trim& trim : {Trim{&delete_stale_parts_, generation, 1, false},
                           Trim{&delete_legacy_checkpoints_, generation, 1, false},
                           Trim{&trim_journal_, journal_seq, kTrimJournalRowsPerTxn, true},
                           Trim{&trim_batches_, journal_seq, kTrimJournalRowsPerTxn, true}}) {
    if (trim.journal && journal_seq == 0) continue;  // nothing covered
    for (int deleted = trim.rows; deleted == trim.rows;) {
      if (clock_.Now() >= deadline && (!trim.journal || owed == 0)) break;
      PaceBulkWork();
      std::lock_guard<std::mutex> db_lock(db_mu_);
      Status s = FreeSpace([&]() -> Status {
        return InTransaction("deleting what a checkpoint replaced", [&]() -> Status {
          Query q(*trim.stmt);
          q.U64(1, trim.bound).Int(2, trim.rows);
          int rc = q.Step();
          if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
            return Sql(rc, "deleting what a checkpoint replaced");
          }
          deleted = sqlite3_changes(db_);
          if (trim.journal) owed -= std::min<uint64_t>(owed, static_cast<uint64_t>(deleted));
          return Status::Ok();
        });
      });
      RETURN_IF_ERROR(s);
    }
  }
  return Status::Ok();
}

StatusOr<std::optional<Store::Checkpoint>> SqliteStore::LoadCheckpoint() {
  std::lock_guard<std::mutex> db_lock(db_mu_);
  Checkpoint cp;
  Query q(select_checkpoint_);
  int rc;
  int64_t expected_part = 0;
  while ((rc = q.Step()) == SQLITE_ROW) {
    if (sqlite3_column_type(q.stmt(), 0) == SQLITE_NULL) return std::optional<Checkpoint>();
    cp.journal_seq = q.ColU64(0);
    cp.saved_ms = q.ColInt(1);
    if (sqlite3_column_type(q.stmt(), 2) == SQLITE_NULL) continue;  // the row for the meta values
    std::string name = q.ColBytes(2);
    if (cp.snapshots.count(name) == 0) expected_part = 0;  // rows come by pipeline, part
    if (q.ColInt(3) != expected_part++) {
      return Status::DataLoss("store " + path_ + ": the checkpoint of '" + name +
                              "' misses a part");
    }
    cp.snapshots[name] += q.ColBytes(4);
  }
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) return Sql(rc, "reading the checkpoint");
  return std::optional<Checkpoint>(std::move(cp));
}

// ---------------------------------------------------------------- stats, purge

StatusOr<std::vector<QueueStats>> SqliteStore::Stats() {
  std::lock_guard<std::mutex> db_lock(db_mu_);
  if (options_.read_only) RETURN_IF_ERROR(LoadNewQueues());
  std::vector<QueueStats> out;
  {
    Query q(select_queues_);
    int rc;
    while ((rc = q.Step()) == SQLITE_ROW) {
      QueueStats st;
      st.sink = q.ColBytes(1);
      st.records = q.ColU64(2);
      st.bytes = q.ColU64(3);
      st.appended = q.ColU64(4);
      st.delivered = q.ColU64(5);
      st.dropped_oldest = q.ColU64(6);
      st.dropped_newest = q.ColU64(7);
      st.purged = q.ColU64(8);
      st.dead_lettered = q.ColU64(10);
      out.push_back(std::move(st));
    }
    if (rc != SQLITE_DONE) return Sql(rc, "reading queue figures");
  }
  for (QueueStats& st : out) {
    QueueState* qs = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = by_sink_.find(st.sink);
      if (it == by_sink_.end()) continue;  // added after LoadNewQueues: next time
      qs = it->second.get();
      // Delivered, delete pending (disk full): report them as gone.
      st.records -= std::min(st.records, qs->pending_records);
      st.bytes -= std::min(st.bytes, qs->pending_bytes);
      Counters removed;
      qs->CountRemoved(qs->pending_records, removed);
      st.delivered += removed.delivered;
      st.dead_lettered += removed.dead_lettered;
    }
    Query q(qs->oldest_ms);
    q.U64(1, qs->removed_through);
    int rc = q.Step();
    if (rc == SQLITE_ROW) {
      st.oldest_ms = q.ColInt(0);
    } else if (rc != SQLITE_DONE) {
      return Sql(rc, "reading the oldest record");
    }
  }
  return out;
}

StatusOr<uint64_t> SqliteStore::Purge(const std::string& sink) {
  if (options_.read_only) return ReadOnlyError();
  std::lock_guard<std::mutex> db_lock(db_mu_);
  std::vector<QueueState*> targets;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [name, q] : by_sink_) {
      if (sink.empty() || name == sink) targets.push_back(q.get());
    }
  }
  if (!sink.empty() && targets.empty()) {
    return Status::NotFound("store " + path_ + " has no queue for sink '" + sink + "'");
  }
  std::vector<Counters> after(targets.size());
  uint64_t purged = 0;
  auto purge = [&]() -> Status {
    purged = 0;
    for (size_t i = 0; i < targets.size(); ++i) {
      QueueState& q = *targets[i];
      uint64_t n = 0, bytes = 0;
      RETURN_IF_ERROR(CountThrough(q, std::numeric_limits<int64_t>::max(), &n, &bytes));
      RETURN_IF_ERROR(DeleteThrough(q, std::numeric_limits<int64_t>::max()));
      uint64_t removed = std::min(n, q.pending_records);  // delivered, delete was pending
      Counters& c = after[i];
      c = q.c;
      q.CountRemoved(removed, c);
      c.purged += n - removed;
      c.records = 0;
      c.bytes = 0;
      purged += n - removed;
      RETURN_IF_ERROR(UpdateQueueRow(q, c, 0));
    }
    return Status::Ok();
  };
  RETURN_IF_ERROR(FreeSpace([&] { return InTransaction("purging", purge); }));
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < targets.size(); ++i) {
    QueueState& q = *targets[i];
    total_bytes_ -= std::min(total_bytes_, q.c.bytes);
    q.c = after[i];
    q.ClearPending();
    q.refused = 0;
  }
  ++room_gen_;
  room_cv_.notify_all();
  return purged;
}

// ---------------------------------------------------------------- the view

Status QueueView::Append(std::vector<Envelope> batch) {
  Commit c;
  c.outputs.resize(static_cast<size_t>(q_.index) + 1);
  c.outputs[q_.index] = std::move(batch);
  return store_.Write(c);
}

StatusOr<std::vector<QueuedEnvelope>> QueueView::Peek(size_t max, Millis wait) {
  return store_.PeekQueue(q_, max, wait);
}

Status QueueView::Remove(uint64_t through_seq, uint64_t refused) {
  return store_.RemoveFromQueue(q_, through_seq, refused);
}

void QueueView::Close() { store_.CloseQueue(q_); }

size_t QueueView::size() const { return store_.QueueSize(q_); }


// ---------------------------------------------------------------- dead letters

Status DeadLetterTable::Put(const DeadLetter& letter) { return store_.PutDeadLetter(letter); }

StatusOr<bool> SqliteStore::DeadLetterTableReady() {
  if (dead_letters_ready_) return true;
  int code = SQLITE_OK;
  auto tables = Strings(
      "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='dead_letters'", &code);
  if (!tables.ok()) return tables.status();
  if (tables->empty() || (*tables)[0] == "0") return false;
  struct Item {
    Stmt* stmt;
    const char* sql;
  };
  const Item items[] = {
      {&insert_dead_letter_,
       "INSERT INTO dead_letters(seq, time_ms, origin, name, topic, reason, payload) "
       "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"},
      {&dead_letter_page_, "SELECT seq, " SLUICE_DEAD_LETTER_BYTES_SQL
                           " FROM dead_letters WHERE seq>?1 ORDER BY seq LIMIT ?2"},
      {&delete_dead_letters_through_, "DELETE FROM dead_letters WHERE seq<=?1"},
      {&read_dead_letters_,
       "SELECT seq, time_ms, origin, name, topic, reason, payload FROM dead_letters "
       "WHERE seq>?1 ORDER BY seq LIMIT ?2"},
      {&count_dead_letters_, "SELECT count(*), ifnull(sum(" SLUICE_DEAD_LETTER_BYTES_SQL
                             "), 0), ifnull(max(seq), 0) FROM dead_letters"},
      {&delete_all_dead_letters_, "DELETE FROM dead_letters"},
  };
  for (const Item& item : items) {
    int rc = item.stmt->Prepare(db_, item.sql);
    if (rc != SQLITE_OK) return Sql(rc, std::string("preparing \"") + item.sql + "\"");
  }
  dead_letters_ready_ = true;
  return true;
}

StatusOr<uint64_t> SqliteStore::MetaCounter(const char* key) {
  Query q(get_meta_);
  q.Text(1, key);
  int rc = q.Step();
  if (rc == SQLITE_DONE) return uint64_t{0};
  if (rc != SQLITE_ROW) return Sql(rc, std::string("reading ") + key);
  return q.ColU64(0);
}

Status SqliteStore::SetMetaCounter(const char* key, uint64_t value) {
  Query q(set_meta_);
  q.Text(1, key).U64(2, value);
  int rc = q.Step();
  return rc == SQLITE_DONE ? Status::Ok() : Sql(rc, std::string("updating ") + key);
}

Status SqliteStore::LoadDeadLetters() {
  std::lock_guard<std::mutex> db_lock(db_mu_);
  ASSIGN_OR_RETURN(bool ready, DeadLetterTableReady());
  if (!ready) return Status::Internal("store " + path_ + ": the dead_letters table is missing");
  Query q(count_dead_letters_);
  int rc = q.Step();
  if (rc != SQLITE_ROW) return Sql(rc, "counting dead letters");
  dead_letter_bytes_ = q.ColU64(1);
  const uint64_t newest = q.ColU64(2);
  ASSIGN_OR_RETURN(uint64_t total, MetaCounter("dead_letters_total"));
  next_dead_letter_seq_ = std::max(newest, total) + 1;
  return Status::Ok();
}

Status SqliteStore::PutDeadLetter(const DeadLetter& letter) {
  if (options_.read_only) return ReadOnlyError();
  const uint64_t cap = options_.max_dead_letter_bytes;
  // A letter above the cap on its own keeps what fits of its payload, and
  // says so: the reason and where it came from matter more than the bytes.
  DeadLetter cut;
  const DeadLetter* kept = &letter;
  if (cap > 0 && DeadLetterBytes(letter) > cap) {
    cut = letter;
    cut.payload.clear();
    cut.reason += " (payload of " + std::to_string(letter.payload.size()) +
                  " bytes cut to fit the dead-letter cap of " + std::to_string(cap) + " bytes)";
    const uint64_t rest = DeadLetterBytes(cut);
    cut.payload = letter.payload.substr(0, rest < cap ? cap - rest : 0);
    kept = &cut;
  }
  const uint64_t size = DeadLetterBytes(*kept);

  std::lock_guard<std::mutex> db_lock(db_mu_);
  const uint64_t seq = next_dead_letter_seq_;
  uint64_t dropped = 0, freed = 0;
  Status s = InTransaction("writing a dead letter", [&]() -> Status {
    dropped = freed = 0;
    if (!dead_letters_ready_) return Status::Internal("store " + path_ + ": no dead_letters table");
    if (cap > 0 && dead_letter_bytes_ + size > cap) {  // the oldest go
      const uint64_t need = dead_letter_bytes_ + size - cap;
      uint64_t through = 0;
      while (freed < need) {
        Query page(dead_letter_page_);
        page.U64(1, through).Int(2, kPageRows);
        int rc = SQLITE_DONE, rows = 0;
        while (freed < need && (rc = page.Step()) == SQLITE_ROW) {
          ++rows;
          through = page.ColU64(0);
          freed += page.ColU64(1);
          ++dropped;
        }
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
          return Sql(rc, "finding the oldest dead letters");
        }
        if (rows == 0) break;  // none left
      }
      if (dropped > 0) {
        Query del(delete_dead_letters_through_);
        del.U64(1, through);
        int rc = del.Step();
        if (rc != SQLITE_DONE) return Sql(rc, "deleting the oldest dead letters");
        ASSIGN_OR_RETURN(uint64_t before, MetaCounter("dead_letters_dropped"));
        RETURN_IF_ERROR(SetMetaCounter("dead_letters_dropped", before + dropped));
      }
    }
    Query ins(insert_dead_letter_);
    ins.U64(1, seq).Int(2, kept->time_ms).Text(3, kept->origin).Text(4, kept->name)
        .Text(5, kept->topic).Text(6, kept->reason).Blob(7, kept->payload);
    int rc = ins.Step();
    if (rc != SQLITE_DONE) return Sql(rc, "writing a dead letter");
    // seq is one more than the total: it doubles as the counter.
    return SetMetaCounter("dead_letters_total", seq);
  });
  if (!s.ok()) {
    NoteFailure(s);
    return s;
  }
  NoteSuccess();
  next_dead_letter_seq_ = seq + 1;
  dead_letter_bytes_ = dead_letter_bytes_ - std::min(dead_letter_bytes_, freed) + size;
  return Status::Ok();
}

StatusOr<DeadLetterStats> SqliteStore::GetDeadLetterStats() {
  std::lock_guard<std::mutex> db_lock(db_mu_);
  DeadLetterStats st;
  ASSIGN_OR_RETURN(bool ready, DeadLetterTableReady());
  if (!ready) return st;  // read-only, on a file from before dead letters were kept here
  Query q(count_dead_letters_);
  int rc = q.Step();
  if (rc != SQLITE_ROW) return Sql(rc, "counting dead letters");
  st.letters = q.ColU64(0);
  st.bytes = q.ColU64(1);
  ASSIGN_OR_RETURN(st.total, MetaCounter("dead_letters_total"));
  ASSIGN_OR_RETURN(st.dropped, MetaCounter("dead_letters_dropped"));
  ASSIGN_OR_RETURN(st.purged, MetaCounter("dead_letters_purged"));
  return st;
}

StatusOr<std::vector<StoredDeadLetter>> SqliteStore::ReadDeadLetters(uint64_t after, size_t limit) {
  std::lock_guard<std::mutex> db_lock(db_mu_);
  std::vector<StoredDeadLetter> out;
  ASSIGN_OR_RETURN(bool ready, DeadLetterTableReady());
  if (!ready || limit == 0) return out;
  Query q(read_dead_letters_);
  q.U64(1, after).U64(2, limit);
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) {
    StoredDeadLetter d;
    d.seq = q.ColU64(0);
    d.letter.time_ms = q.ColInt(1);
    d.letter.origin = q.ColBytes(2);
    d.letter.name = q.ColBytes(3);
    d.letter.topic = q.ColBytes(4);
    d.letter.reason = q.ColBytes(5);
    d.letter.payload = q.ColBytes(6);
    out.push_back(std::move(d));
  }
  if (rc != SQLITE_DONE) return Sql(rc, "reading dead letters");
  return out;
}

StatusOr<uint64_t> SqliteStore::PurgeDeadLetters() {
  if (options_.read_only) return ReadOnlyError();
  std::lock_guard<std::mutex> db_lock(db_mu_);
  uint64_t purged = 0;
  auto purge = [&]() -> Status {
    if (!dead_letters_ready_) return Status::Internal("store " + path_ + ": no dead_letters table");
    {
      Query count(count_dead_letters_);
      int rc = count.Step();
      if (rc != SQLITE_ROW) return Sql(rc, "counting dead letters");
      purged = count.ColU64(0);
    }
    RETURN_IF_ERROR(Exec(delete_all_dead_letters_, "purging dead letters"));
    ASSIGN_OR_RETURN(uint64_t before, MetaCounter("dead_letters_purged"));
    return SetMetaCounter("dead_letters_purged", before + purged);
  };
  RETURN_IF_ERROR(FreeSpace([&] { return InTransaction("purging dead letters", purge); }));
  dead_letter_bytes_ = 0;
  return purged;
}

}  // namespace

StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& path, StoreOptions options,
                                             const Clock& clock) {
  // Before SQLite initialises (it refuses afterwards, and then keeps its
  // defaults): no bulk page-cache allocation per connection. Its 20 pages
  // (87 KiB, every one written at open) were idle memory for each of our
  // two connections; pages come one by one as they are used instead.
  static std::once_flag configured;
  std::call_once(configured, [] { (void)sqlite3_config(SQLITE_CONFIG_PAGECACHE, nullptr, 0, 0); });
  auto store = std::make_unique<SqliteStore>(path, options, clock);
  RETURN_IF_ERROR(store->Init());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace sluice

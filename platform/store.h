// Store: the agent's durable state in one SQLite database (WAL).
//
// It holds, per sink, the queue of output records waiting for delivery (the
// outbox), the ingest journal of readings that are only in window or alert
// state, the operators' checkpoints, and the dead letters. One transaction
// can touch all of them, so "this reading is in the journal and its outputs
// are queued" is one commit — the commit after which the MQTT ack may go out.
//
//   ASSIGN_OR_RETURN(auto store, Store::Open(dir + "/sluice.db", options, clock));
//   ASSIGN_OR_RETURN(int cloud, store->AddQueue("cloud", {256 << 20, Overflow::kDropOldest}));
//   Commit c;
//   c.journal.push_back({"plant", topic, payload, arrival_ms});
//   c.outputs.resize(store->queue_count());
//   c.outputs[cloud].push_back(envelope);
//   RETURN_IF_ERROR(store->Write(c));            // one transaction
//   SinkQueue* q = store->queue(cloud);          // Peek/Remove for the delivery loop
//   RETURN_IF_ERROR(store->dead_letters().Put(letter));  // one transaction
//
// Thread-safe: sources (via the pipeline runner) write, one delivery thread
// per sink reads and removes, `sluice buffer` may read from another process.
#ifndef SLUICE_PLATFORM_STORE_H_
#define SLUICE_PLATFORM_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "platform/clock.h"
#include "platform/dead_letter.h"
#include "platform/envelope.h"
#include "platform/journal_batch.h"
#include "platform/outbox.h"
#include "platform/status.h"

namespace sluice {

enum class OverflowPolicy { kDropOldest, kDropNewest, kBlock };
enum class Durability { kNormal, kFull };  // PRAGMA synchronous NORMAL / FULL

struct StoreOptions {
  Durability durability = Durability::kNormal;
  uint64_t max_total_bytes = 0;  // cap over all queues (body bytes); 0: none
  bool read_only = false;        // `sluice buffer stats|peek` on a running agent
  // Hard cap on the database file (PRAGMA max_page_count); 0: none. Past it
  // Write fails with kResourceExhausted exactly as on a full disk.
  uint64_t max_db_bytes = 0;
  // Cap on the dead letters' bytes (see DeadLetterStats::bytes); 0: none.
  // Past it the oldest dead letters are deleted (counted), so a flood of bad
  // payloads cannot fill the disk and stop the outbox.
  uint64_t max_dead_letter_bytes = 64ull << 20;
};

struct QueueOptions {
  uint64_t max_bytes = 256ull << 20;  // body bytes queued; 0: unbounded
  OverflowPolicy overflow = OverflowPolicy::kDropOldest;
};

// Per-queue figures, kept in the database and updated in the same
// transaction as the rows they count.
struct QueueStats {
  std::string sink;
  uint64_t records = 0;
  uint64_t bytes = 0;
  int64_t oldest_ms = 0;        // created_ms of the oldest record; 0 when empty
  uint64_t appended = 0;
  uint64_t delivered = 0;       // removed after the sink confirmed
  uint64_t dropped_oldest = 0;  // overflow drop_oldest
  uint64_t dropped_newest = 0;  // overflow drop_newest
  uint64_t purged = 0;          // deleted by Purge()
  uint64_t dead_lettered = 0;   // removed after the sink refused them for good
  // Always: records == appended - delivered - dead_lettered - dropped_oldest - purged.
};

// Dead-letter figures, kept in the database and updated in the same
// transaction as the rows they count.
struct DeadLetterStats {
  uint64_t letters = 0;  // kept now
  uint64_t bytes = 0;    // their origin, name, topic, reason and payload bytes
  uint64_t total = 0;    // ever put
  uint64_t dropped = 0;  // deleted, oldest first, to stay under the cap
  uint64_t purged = 0;   // deleted by PurgeDeadLetters()
  // Always: letters == total - dropped - purged.
};

// One kept dead letter; `seq` grows with each Put.
struct StoredDeadLetter {
  uint64_t seq = 0;
  DeadLetter letter;
};

// What one Write() makes durable, atomically.
struct Commit {
  JournalBatch journal;
  std::vector<std::vector<Envelope>> outputs;  // indexed by queue; may be shorter
};

class Store {
 public:
  // Opens or creates the database. A file that is not a valid database
  // (truncated, garbage, failing integrity check) is moved aside to
  // "<path>.corrupt-<epoch ms>" and a fresh one created, with a loud log
  // line — never a crash loop. A second writer process on the same file is
  // refused (kFailedPrecondition naming the lock holder's PID when known).
  static StatusOr<std::unique_ptr<Store>> Open(const std::string& path, StoreOptions options,
                                               const Clock& clock = RealClock());
  virtual ~Store() = default;

  // Declares a sink's queue (creating it on first use; queued rows of a
  // sink not declared again are kept untouched). Returns its index.
  virtual StatusOr<int> AddQueue(const std::string& sink, QueueOptions options) = 0;
  virtual size_t queue_count() const = 0;
  virtual SinkQueue* queue(int index) = 0;

  // One transaction: journal rows and every queue's outputs, in order. At a
  // queue's cap: drop_oldest deletes the oldest rows of that queue (counted)
  // in the same transaction; drop_newest leaves the new rows out (counted);
  // block waits, outside any transaction, until the delivery loop makes
  // room, then retries (kCancelled if the store is closed meanwhile).
  // Disk full (SQLITE_FULL, or StoreOptions::max_db_bytes) applies the same
  // policies to the queues this commit appends to, then commits again:
  // drop_newest queues take none of their new records (counted
  // dropped_newest, in the commit that carries the rest: the journal and the
  // other queues' records); drop_oldest queues lose their oldest records
  // (counted dropped_oldest in the transaction that deletes them, one of its
  // own, before the commit is tried again), a few times the bytes the commit
  // adds, repeated a few times while the commit still does not fit. Block
  // queues and the journal have no policy. If the commit still fails (a
  // drop_oldest queue has nothing left, or the journal or a block queue's
  // records do not fit): kResourceExhausted and nothing of this commit was
  // written (records dropped to make room stay dropped); the caller retries
  // and the MQTT ack waits. I/O error: kUnavailable, nothing written.
  // Logged at most once a minute.
  [[nodiscard]] virtual Status Write(Commit& commit) = 0;

  // Journal sequence of the newest entry (0 when empty).
  virtual StatusOr<uint64_t> LastJournalSeq() = 0;
  struct JournalStats {
    uint64_t readings = 0;  // entries not yet covered by a checkpoint
    uint64_t bytes = 0;     // their payload bytes
  };
  virtual StatusOr<JournalStats> Journal() = 0;
  // Calls `fn` for each journal entry with seq > after, oldest first.
  [[nodiscard]] virtual Status ReadJournal(
      uint64_t after, const std::function<Status(uint64_t seq, const JournalEntry&)>& fn) = 0;

  // Stores every operator's snapshot (by pipeline name) as taken after
  // journal entry `journal_seq`, and trims the journal up to it. The new
  // checkpoint replaces the old one at once (a crash leaves one or the
  // other), but megabytes of snapshots are written in several short
  // transactions, so that commits of readings do not wait for all of them.
  // Saves never run at the same time.
  [[nodiscard]] virtual Status SaveCheckpoint(const std::map<std::string, std::string>& snapshots,
                                              uint64_t journal_seq) = 0;
  struct Checkpoint {
    std::map<std::string, std::string> snapshots;
    uint64_t journal_seq = 0;
    int64_t saved_ms = 0;
  };
  virtual StatusOr<std::optional<Checkpoint>> LoadCheckpoint() = 0;

  virtual StatusOr<std::vector<QueueStats>> Stats() = 0;
  // Deletes every queued record of `sink` (all sinks when empty); returns how many.
  virtual StatusOr<uint64_t> Purge(const std::string& sink) = 0;

  // The dead-letter table. Each Put is one transaction: at the cap
  // (StoreOptions::max_dead_letter_bytes) the oldest letters are deleted and
  // counted as dropped in it; a letter bigger than the cap on its own is kept
  // with its payload cut to fit (the reason says so). Disk full / I/O error:
  // kResourceExhausted / kUnavailable and nothing written (the caller keeps
  // the message or batch and retries). Keeps working after Close(); fails
  // with kFailedPrecondition on a read-only store.
  virtual DeadLetterStore& dead_letters() = 0;
  virtual StatusOr<DeadLetterStats> GetDeadLetterStats() = 0;
  // At most `limit` dead letters with seq > after, oldest first.
  virtual StatusOr<std::vector<StoredDeadLetter>> ReadDeadLetters(uint64_t after,
                                                                  size_t limit) = 0;
  // Deletes every dead letter; returns how many.
  virtual StatusOr<uint64_t> PurgeDeadLetters() = 0;

  // Wakes every waiter (blocked writers, delivery Peeks) and refuses new writes.
  virtual void Close() = 0;
};

}  // namespace sluice

#endif  // SLUICE_PLATFORM_STORE_H_

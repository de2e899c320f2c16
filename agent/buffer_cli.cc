#include "agent/buffer_cli.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <iostream>

#include "platform/dead_letter.h"
#include "platform/store.h"

namespace sluice::agent {
namespace {

// The oldest `limit` dead letters as JSON lines, read a page at a time so a
// large --limit does not hold them all in memory.
int PeekDeadLetters(Store& store, const std::string& path, size_t limit) {
  constexpr size_t kPage = 256;
  uint64_t after = 0;
  while (limit > 0) {
    auto page = store.ReadDeadLetters(after, std::min(limit, kPage));
    if (!page.ok()) {
      std::cerr << path << ": " << page.status().message() << "\n";
      return 1;
    }
    for (const StoredDeadLetter& d : *page) std::cout << DeadLetterJson(d.letter) << "\n";
    if (page->size() < std::min(limit, kPage)) break;
    limit -= page->size();
    after = page->back().seq;
  }
  std::cout.flush();
  return std::cout ? 0 : 1;
}

}  // namespace

std::string StorePath(const std::string& data_dir) { return data_dir + "/sluice.db"; }

int RunBuffer(const BufferCommand& command) {
  const std::string path = StorePath(command.data_dir);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    std::cerr << "no outbox at " << path << " (is --data-dir the agent's agent.data_dir?)\n";
    return 1;
  }
  StoreOptions options;
  options.read_only = command.action != "purge";
  auto store = Store::Open(path, options);
  if (!store.ok()) {
    std::cerr << path << ": " << store.status().message() << "\n";
    return 1;
  }
  if (command.action == "purge" && command.dead_letters) {
    auto purged = (*store)->PurgeDeadLetters();
    if (!purged.ok()) {
      std::cerr << path << ": " << purged.status().message() << "\n";
      return 1;
    }
    std::cout << "purged " << *purged << " dead letter(s)\n";
    return 0;
  }
  if (command.action == "peek" && command.dead_letters) {
    return PeekDeadLetters(**store, path, command.limit);
  }
  if (command.action == "purge") {
    auto purged = (*store)->Purge(command.sink);
    if (!purged.ok()) {
      std::cerr << path << ": " << purged.status().message() << "\n";
      return 1;
    }
    std::cout << "purged " << *purged << " record(s)"
              << (command.sink.empty() ? "" : " of sink '" + command.sink + "'") << "\n";
    return 0;
  }
  auto stats = (*store)->Stats();
  if (!stats.ok()) {
    std::cerr << path << ": " << stats.status().message() << "\n";
    return 1;
  }
  bool found = command.sink.empty();
  if (command.action == "stats") {
    std::printf("%-20s %10s %12s %15s %10s %10s %9s %9s %9s\n", "sink", "records", "bytes",
                "oldest (ms)", "appended", "delivered", "refused", "drop-old", "drop-new");
  }
  for (const QueueStats& q : *stats) {
    if (!command.sink.empty() && q.sink != command.sink) continue;
    found = true;
    if (command.action == "stats") {
      std::printf("%-20s %10llu %12llu %15lld %10llu %10llu %9llu %9llu %9llu\n", q.sink.c_str(),
                  static_cast<unsigned long long>(q.records), static_cast<unsigned long long>(q.bytes),
                  static_cast<long long>(q.oldest_ms), static_cast<unsigned long long>(q.appended),
                  static_cast<unsigned long long>(q.delivered),
                  static_cast<unsigned long long>(q.dead_lettered),
                  static_cast<unsigned long long>(q.dropped_oldest),
                  static_cast<unsigned long long>(q.dropped_newest));
      continue;
    }
    // peek: the oldest records of this sink, as the sink would send them.
    auto index = (*store)->AddQueue(q.sink, QueueOptions{});
    if (!index.ok()) {
      std::cerr << q.sink << ": " << index.status().message() << "\n";
      return 1;
    }
    auto records = (*store)->queue(*index)->Peek(command.limit, Millis(0));
    if (!records.ok()) {
      std::cerr << q.sink << ": " << records.status().message() << "\n";
      return 1;
    }
    for (const QueuedEnvelope& r : *records) std::cout << q.sink << "\t" << r.envelope.body << "\n";
    if (records->size() < command.limit && records->size() < q.records) {
      // One read of the outbox takes at most 4096 records or 8 MiB: say so
      // rather than pass a partial copy for the whole queue.
      std::cerr << q.sink << ": showed the oldest " << records->size() << " of " << q.records
                << " queued records (peek reads at most 4096 records or 8 MiB per sink)\n";
    }
  }
  if (!found) {
    std::cerr << "no sink '" << command.sink << "' in " << path << "\n";
    return 1;
  }
  if (command.action == "stats") {
    auto journal = (*store)->Journal();
    auto checkpoint = (*store)->LoadCheckpoint();
    if (journal.ok()) {
      std::printf("journal: %llu reading(s), %llu payload bytes since the last checkpoint\n",
                  static_cast<unsigned long long>(journal->readings),
                  static_cast<unsigned long long>(journal->bytes));
    }
    if (checkpoint.ok() && checkpoint->has_value()) {
      // Names starting with \x01 are bookkeeping (redelivery sets, definitions).
      size_t states = 0;
      for (const auto& [name, snapshot] : (*checkpoint)->snapshots) states += name.rfind('\x01', 0) != 0;
      std::printf("last checkpoint: %lld (epoch ms), %zu pipeline state(s)\n",
                  static_cast<long long>((*checkpoint)->saved_ms), states);
    } else if (checkpoint.ok()) {
      std::printf("last checkpoint: none\n");
    }
    auto dead = (*store)->GetDeadLetterStats();
    if (!dead.ok()) {
      std::cerr << path << ": " << dead.status().message() << "\n";
      return 1;
    }
    std::printf("dead letters: %llu kept (%llu bytes); %llu in all, %llu dropped by the cap, "
                "%llu purged\n",
                static_cast<unsigned long long>(dead->letters),
                static_cast<unsigned long long>(dead->bytes),
                static_cast<unsigned long long>(dead->total),
                static_cast<unsigned long long>(dead->dropped),
                static_cast<unsigned long long>(dead->purged));
  }
  return 0;
}

}  // namespace sluice::agent

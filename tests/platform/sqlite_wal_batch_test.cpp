// platform/sqlite_wal_batch: what a transaction committed through the
// gathering VFS is in the file the moment the commit returns, whatever
// SQLite wrote after the commit frame. Each case commits in a child that
// then exits without closing (what it gathered is gone, as after SIGKILL);
// the parent opens the database with SQLite's own VFS, which recovers the
// WAL from the file alone.
#include <catch2/catch.hpp>

#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "platform/sqlite_wal_batch.h"

namespace fs = std::filesystem;

namespace {

struct TempDir {
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "sluice-walbatch-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string path;
};

// Runs `sql` in a child through the gathering VFS, then exits without
// closing. True when the child's statements all succeeded.
bool CommitInChildThenDie(const std::string& uri, const std::string& sql) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    sqlite3* db = nullptr;
    const char* vfs = sluice::WalBatchingVfs();
    if (vfs == nullptr) ::_exit(3);
    int rc = sqlite3_open_v2(uri.c_str(), &db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI, vfs);
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
    ::_exit(rc == SQLITE_OK ? 0 : 2);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

std::string One(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK);
  std::string out;
  if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0) != nullptr) {
    out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  }
  sqlite3_finalize(stmt);
  return out;
}

}  // namespace

TEST_CASE("wal batching: a transaction that overwrote its own spilled frames survives a crash "
          "right after its commit") {
  TempDir dir;
  const std::string path = dir.path + "/t.db";
  // A tiny page cache makes the transaction spill pages into the WAL; the
  // UPDATE then changes spilled pages, which SQLite overwrites in place,
  // and at commit it rewrites the frame headers from there on, the commit
  // frame's last (see walRewriteChecksums).
  REQUIRE(CommitInChildThenDie(path,
      "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=8;"
      "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);"
      "BEGIN;"
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400)"
      "  INSERT INTO t SELECT i, zeroblob(1000) FROM n;"
      "UPDATE t SET v = CAST('after' AS BLOB) WHERE id <= 60;"
      "COMMIT;"));
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
  CHECK(One(db, "PRAGMA integrity_check") == "ok");
  CHECK(One(db, "SELECT count(*) FROM t") == "400");
  CHECK(One(db, "SELECT count(*) FROM t WHERE v = CAST('after' AS BLOB)") == "60");
  sqlite3_close(db);
}

TEST_CASE("wal batching: commits padded to the sector (synchronous=FULL, no powersafe "
          "overwrite) survive a crash") {
  TempDir dir;
  const std::string path = dir.path + "/t.db";
  std::string sql =
      "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
      "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);";
  for (int i = 1; i <= 30; ++i) {
    sql += "INSERT INTO t VALUES(" + std::to_string(i) + ", printf('%.*c', " +
           std::to_string(100 * i) + ", 'x'));";
  }
  REQUIRE(CommitInChildThenDie("file:" + path + "?psow=0", sql));
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
  CHECK(One(db, "PRAGMA integrity_check") == "ok");
  CHECK(One(db, "SELECT count(*) FROM t") == "30");
  CHECK(One(db, "SELECT sum(length(v)) FROM t") == std::to_string(100 * 30 * 31 / 2));
  sqlite3_close(db);
}

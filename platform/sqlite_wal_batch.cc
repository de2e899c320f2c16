#include "platform/sqlite_wal_batch.h"

#include <sqlite3.h>

#include <algorithm>
#include <cstring>
#include <mutex>

namespace sluice {
namespace {

constexpr char kVfsName[] = "sluice-wal-batch";
// A WAL frame header; bytes 4-7 are non-zero only in a commit frame.
constexpr int kFrameHeaderBytes = 24;
// The most the default VFS writes at once: its seekAndWrite keeps only the
// low 17 bits of a count (SQLite itself never writes more than a frame).
// A longer transaction (a checkpoint's parts) is written in such pieces.
constexpr int kMaxWrite = 0x1ffff;

sqlite3_vfs* base_vfs = nullptr;
sqlite3_vfs batching_vfs;

// A -wal file: ours, then the default VFS's file in the same allocation.
struct WalFile {
  sqlite3_file base;
  sqlite3_file* real;
  char* gathered;            // sqlite3_malloc'd; `size` bytes from `offset`
  int size;
  int capacity;
  sqlite3_int64 offset;
  bool after_commit;         // a commit frame's header was written: write through
};

WalFile* Wal(sqlite3_file* f) { return reinterpret_cast<WalFile*>(f); }

int WriteGathered(WalFile* w) {
  if (w->size == 0) return SQLITE_OK;
  const int rc = w->real->pMethods->xWrite(w->real, w->gathered, w->size, w->offset);
  w->size = 0;
  return rc;
}

// What is gathered, then `data` itself: the write SQLite asked for, in order.
int WriteThrough(WalFile* w, const void* data, int amount, sqlite3_int64 offset) {
  if (int rc = WriteGathered(w); rc != SQLITE_OK) return rc;
  return w->real->pMethods->xWrite(w->real, data, amount, offset);
}

int Close(sqlite3_file* f) {
  WalFile* w = Wal(f);
  const int written = WriteGathered(w);
  const int rc = w->real->pMethods->xClose(w->real);
  sqlite3_free(w->gathered);
  w->gathered = nullptr;
  return written != SQLITE_OK ? written : rc;
}

int Read(sqlite3_file* f, void* out, int amount, sqlite3_int64 offset) {
  WalFile* w = Wal(f);
  if (int rc = WriteGathered(w); rc != SQLITE_OK) return rc;
  return w->real->pMethods->xRead(w->real, out, amount, offset);
}

int Write(sqlite3_file* f, const void* data, int amount, sqlite3_int64 offset) {
  WalFile* w = Wal(f);
  const auto* bytes = static_cast<const unsigned char*>(data);
  const bool header = amount == kFrameHeaderBytes;
  const bool commit_header = header && (bytes[4] | bytes[5] | bytes[6] | bytes[7]) != 0;
  if (header && !commit_header) w->after_commit = false;  // the next transaction's frames
  if (w->after_commit) {
    // The commit frame's page, sector padding, or headers rewritten after
    // it: nothing says another write follows, so none waits.
    return WriteThrough(w, data, amount, offset);
  }
  if (w->size > 0 && (offset != w->offset + w->size || w->size + amount > kMaxWrite)) {
    if (int rc = WriteGathered(w); rc != SQLITE_OK) return rc;
  }
  if (amount > kMaxWrite - w->size) return WriteThrough(w, data, amount, offset);
  if (w->size + amount > w->capacity) {
    const int want = std::min(kMaxWrite, std::max(w->size + amount, 2 * w->capacity));
    void* grown = sqlite3_realloc(w->gathered, want);
    if (grown == nullptr) return WriteThrough(w, data, amount, offset);  // no memory to gather
    w->gathered = static_cast<char*>(grown);
    w->capacity = want;
  }
  if (w->size == 0) w->offset = offset;
  std::memcpy(w->gathered + w->size, data, static_cast<size_t>(amount));
  w->size += amount;
  if (!commit_header) return SQLITE_OK;
  w->after_commit = true;
  return WriteGathered(w);
}

int Truncate(sqlite3_file* f, sqlite3_int64 size) {
  WalFile* w = Wal(f);
  if (int rc = WriteGathered(w); rc != SQLITE_OK) return rc;
  return w->real->pMethods->xTruncate(w->real, size);
}

int Sync(sqlite3_file* f, int flags) {
  WalFile* w = Wal(f);
  if (int rc = WriteGathered(w); rc != SQLITE_OK) return rc;
  return w->real->pMethods->xSync(w->real, flags);
}

int FileSize(sqlite3_file* f, sqlite3_int64* size) {
  WalFile* w = Wal(f);
  if (int rc = WriteGathered(w); rc != SQLITE_OK) return rc;
  return w->real->pMethods->xFileSize(w->real, size);
}

int Lock(sqlite3_file* f, int level) { return Wal(f)->real->pMethods->xLock(Wal(f)->real, level); }
int Unlock(sqlite3_file* f, int level) { return Wal(f)->real->pMethods->xUnlock(Wal(f)->real, level); }
int CheckReservedLock(sqlite3_file* f, int* out) {
  return Wal(f)->real->pMethods->xCheckReservedLock(Wal(f)->real, out);
}

int FileControl(sqlite3_file* f, int op, void* arg) {
  WalFile* w = Wal(f);
  if (int rc = WriteGathered(w); rc != SQLITE_OK) return rc;
  return w->real->pMethods->xFileControl(w->real, op, arg);
}

int SectorSize(sqlite3_file* f) { return Wal(f)->real->pMethods->xSectorSize(Wal(f)->real); }
int DeviceCharacteristics(sqlite3_file* f) {
  return Wal(f)->real->pMethods->xDeviceCharacteristics(Wal(f)->real);
}

// Version 1: SQLite uses shared memory and mmap on the database file only.
const sqlite3_io_methods kWalMethods = {
    1, Close, Read, Write, Truncate, Sync, FileSize, Lock, Unlock, CheckReservedLock,
    FileControl, SectorSize, DeviceCharacteristics,
    nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};

int Open(sqlite3_vfs*, const char* name, sqlite3_file* f, int flags, int* out_flags) {
  // Not a WAL: the default VFS's own file, in place (szOsFile is larger).
  if ((flags & SQLITE_OPEN_WAL) == 0) return base_vfs->xOpen(base_vfs, name, f, flags, out_flags);
  WalFile* w = Wal(f);
  std::memset(w, 0, sizeof(WalFile));
  w->real = reinterpret_cast<sqlite3_file*>(w + 1);
  const int rc = base_vfs->xOpen(base_vfs, name, w->real, flags, out_flags);
  if (rc != SQLITE_OK) {
    if (w->real->pMethods != nullptr) w->real->pMethods->xClose(w->real);
    w->base.pMethods = nullptr;
    return rc;
  }
  w->base.pMethods = &kWalMethods;
  return SQLITE_OK;
}

void Register() {
  base_vfs = sqlite3_vfs_find(nullptr);
  if (base_vfs == nullptr) return;
  static_assert(sizeof(WalFile) % 8 == 0, "the default VFS's file follows, aligned");
  batching_vfs = sqlite3_vfs{};
  batching_vfs.iVersion = 2;
  batching_vfs.szOsFile = static_cast<int>(sizeof(WalFile)) + base_vfs->szOsFile;
  batching_vfs.mxPathname = base_vfs->mxPathname;
  batching_vfs.zName = kVfsName;
  batching_vfs.xOpen = Open;
  batching_vfs.xDelete = [](sqlite3_vfs*, const char* name, int sync) {
    return base_vfs->xDelete(base_vfs, name, sync);
  };
  batching_vfs.xAccess = [](sqlite3_vfs*, const char* name, int flags, int* out) {
    return base_vfs->xAccess(base_vfs, name, flags, out);
  };
  batching_vfs.xFullPathname = [](sqlite3_vfs*, const char* name, int n, char* out) {
    return base_vfs->xFullPathname(base_vfs, name, n, out);
  };
  batching_vfs.xDlOpen = [](sqlite3_vfs*, const char* name) { return base_vfs->xDlOpen(base_vfs, name); };
  batching_vfs.xDlError = [](sqlite3_vfs*, int n, char* out) { base_vfs->xDlError(base_vfs, n, out); };
  batching_vfs.xDlSym = [](sqlite3_vfs*, void* handle, const char* symbol) {
    return base_vfs->xDlSym(base_vfs, handle, symbol);
  };
  batching_vfs.xDlClose = [](sqlite3_vfs*, void* handle) { base_vfs->xDlClose(base_vfs, handle); };
  batching_vfs.xRandomness = [](sqlite3_vfs*, int n, char* out) {
    return base_vfs->xRandomness(base_vfs, n, out);
  };
  batching_vfs.xSleep = [](sqlite3_vfs*, int us) { return base_vfs->xSleep(base_vfs, us); };
  batching_vfs.xCurrentTime = [](sqlite3_vfs*, double* out) {
    return base_vfs->xCurrentTime(base_vfs, out);
  };
  batching_vfs.xGetLastError = [](sqlite3_vfs*, int n, char* out) {
    return base_vfs->xGetLastError(base_vfs, n, out);
  };
  batching_vfs.xCurrentTimeInt64 = [](sqlite3_vfs*, sqlite3_int64* out) {
    if (base_vfs->iVersion >= 2 && base_vfs->xCurrentTimeInt64 != nullptr) {
      return base_vfs->xCurrentTimeInt64(base_vfs, out);
    }
    double days = 0;
    const int rc = base_vfs->xCurrentTime(base_vfs, &days);
    *out = static_cast<sqlite3_int64>(days * 86400000.0);
    return rc;
  };
  if (sqlite3_vfs_register(&batching_vfs, 0) != SQLITE_OK) base_vfs = nullptr;
}

}  // namespace

const char* WalBatchingVfs() {
  static std::once_flag once;
  std::call_once(once, Register);
  return base_vfs != nullptr ? kVfsName : nullptr;
}

}  // namespace sluice

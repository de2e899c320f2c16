// A SQLite VFS that writes each transaction's WAL frames with one write.
//
// SQLite writes a WAL frame as two writes, its 24-byte header and then the
// page, so a commit of 7 pages cost 14 pwrite calls, each taking the inode
// lock and two or three page-cache pages: 13-15 % of the agent's CPU at
// 45,000-110,000 readings/s. This VFS wraps SQLite's default one; for -wal
// files only, it gathers writes that continue one another and writes them
// together once the commit frame is complete, inside the xWrite that
// completes it. So a failure (a full disk) reaches SQLite before the
// transaction counts as committed, and another connection sees the frames
// only after they are written (SQLite updates the wal-index, which readers
// go by, after its frame writes return). Any other call on the file (read,
// sync, truncate, size, file control, close) first writes what is gathered.
// A crash loses only gathered frames of a transaction that had not
// committed: as if it had come a little earlier. Other files are the
// default VFS's own.
//
//   sqlite3_open_v2(path, &db, flags, WalBatchingVfs());
#ifndef SLUICE_PLATFORM_SQLITE_WAL_BATCH_H_
#define SLUICE_PLATFORM_SQLITE_WAL_BATCH_H_

namespace sluice {

// The VFS name for sqlite3_open_v2, registered on first use; nullptr (the
// default VFS) if that failed.
const char* WalBatchingVfs();

}  // namespace sluice

#endif  // SLUICE_PLATFORM_SQLITE_WAL_BATCH_H_

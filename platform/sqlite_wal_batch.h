// A SQLite VFS that writes each transaction's WAL frames with one write.
//
// SQLite writes a WAL frame as two writes, its 24-byte header and then the
// page, so a commit of 7 pages cost 14 pwrite calls, each taking the inode
// lock and two or three page-cache pages: 13-15 % of the agent's CPU at
// 45,000-110,000 readings/s. This VFS wraps SQLite's default one; for -wal
// files only, it gathers writes that continue one another and writes them,
// with the commit frame's header, inside the xWrite of that header: a
// commit is two write calls. Everything from there until the next
// transaction's first frame (the commit frame's page, sector padding,
// headers that SQLite rewrites after it) is written through, since nothing
// says another write follows. So what is gathered never belongs to a
// committed transaction: a failure (a full disk) reaches SQLite before the
// commit counts, other connections (which go by the wal-index SQLite
// updates after its frame writes return) never read an unwritten frame,
// and a crash loses only frames no commit covers. Any other call on the
// file (read, sync, truncate, size, file control, close) first writes what
// is gathered. One writer only: gathered frames of a transaction that
// rolled back are written before anything at another offset, which a
// second writer's frames could not rely on. Other files are the default
// VFS's own.
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

#include "sinks/file_sink.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "platform/log.h"

namespace sluice::sinks {
namespace {

Status ErrnoStatus(int err, const std::string& what) {
  std::string msg = what + ": " + std::strerror(err);
  // A full disk or a passing I/O error may clear up: retry. Anything else
  // (permissions, a path that is a directory) needs an operator.
  if (err == ENOSPC || err == EDQUOT) return Status::ResourceExhausted(msg);
  if (err == EIO || err == EAGAIN || err == EINTR || err == EPIPE) return Status::Unavailable(msg);
  return Status::FailedPrecondition(msg);
}

Status WriteAll(int fd, std::string_view data, const std::string& what) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, what);
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

class StdoutSink final : public Sink {
 public:
  WriteResult Write(std::span<const Envelope> batch) override {
    std::string text;
    for (const Envelope& e : batch) {
      text += e.body;
      text += '\n';
    }
    return {WriteAll(STDOUT_FILENO, text, "writing to standard output"), {}, std::nullopt};
  }
};

class FileSink final : public Sink {
 public:
  FileSink(config::FileSinkConfig config, bool sync_each_batch)
      : config_(std::move(config)), sync_each_batch_(sync_each_batch) {}
  ~FileSink() override {
    if (fd_ >= 0) ::close(fd_);
  }

  Status Open() {
    std::filesystem::path dir = std::filesystem::path(config_.path).parent_path();
    if (!dir.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(dir, ec);
      if (ec) return Status::FailedPrecondition("creating " + dir.string() + ": " + ec.message());
    }
    fd_ = ::open(config_.path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) return ErrnoStatus(errno, "opening " + config_.path);
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return ErrnoStatus(errno, "stat " + config_.path);
    size_ = static_cast<uint64_t>(st.st_size);
    return CutTornRecord();
  }

  // A process killed in the middle of a write (SIGKILL, power loss) can
  // leave part of a batch: a last line without its newline. Those records
  // were not confirmed, so they are written again; the torn rest goes, or it
  // would run into the next record.
  Status CutTornRecord() {
    uint64_t end = size_;
    char buf[64 * 1024];
    while (end > 0) {
      const uint64_t from = end > sizeof buf ? end - sizeof buf : 0;
      const ssize_t n = ::pread(fd_, buf, end - from, static_cast<off_t>(from));
      if (n < 0) return ErrnoStatus(errno, "reading " + config_.path);
      if (end == size_ && n > 0 && buf[n - 1] == '\n') return Status::Ok();  // intact
      const void* nl = ::memrchr(buf, '\n', static_cast<size_t>(n));
      if (nl != nullptr) {
        end = from + static_cast<uint64_t>(static_cast<const char*>(nl) - buf) + 1;
        break;
      }
      end = from;
    }
    if (end == size_) return Status::Ok();
    if (::ftruncate(fd_, static_cast<off_t>(end)) != 0) {
      return ErrnoStatus(errno, "cutting a torn record off " + config_.path);
    }
    LogWarn("file sink: ", config_.path, " ended in a record cut short (", size_ - end,
            " bytes, the agent stopped mid-write); removed, it is written again");
    size_ = end;
    return Status::Ok();
  }

  WriteResult Write(std::span<const Envelope> batch) override {
    // Whatever fails here is the destination's trouble (a full, read-only or
    // failing disk, permissions, a directory removed), never the records':
    // they stay queued and are retried, none is dead-lettered.
    Status s = WriteBatch(batch);
    if (!s.ok() && !IsTransient(s)) s = Status::Unavailable(s.message());
    return {s, {}, std::nullopt};
  }

 private:
  Status WriteBatch(std::span<const Envelope> batch) {
    RETURN_IF_ERROR(Reopen());
    std::string chunk;
    for (const Envelope& e : batch) {
      uint64_t line_size = e.body.size() + 1;
      if (config_.rotate_max_size > 0 && size_ + chunk.size() > 0 &&
          size_ + chunk.size() + line_size > config_.rotate_max_size) {
        RETURN_IF_ERROR(Append(chunk));
        chunk.clear();
        RETURN_IF_ERROR(Sync());  // what goes to path.1 is part of this batch
        RETURN_IF_ERROR(Rotate());
      }
      chunk += e.body;
      chunk += '\n';
    }
    RETURN_IF_ERROR(Append(chunk));
    return Sync();
  }

  Status Sync() {
    if (sync_each_batch_ && ::fdatasync(fd_) != 0) return ErrnoStatus(errno, "syncing " + config_.path);
    return Status::Ok();
  }

  // Opens the file again when it is not open, or when the path no longer
  // names the file we hold (moved or deleted, as logrotate does: writing on
  // would put records where nobody looks, or nowhere). Takes the size from
  // the file itself: a copytruncate emptied it behind our back.
  Status Reopen() {
    if (fd_ >= 0) {
      struct stat held {}, named {};
      if (::fstat(fd_, &held) != 0) return ErrnoStatus(errno, "stat " + config_.path);
      if (::stat(config_.path.c_str(), &named) == 0 && named.st_dev == held.st_dev &&
          named.st_ino == held.st_ino) {
        size_ = static_cast<uint64_t>(held.st_size);
        return Status::Ok();
      }
      LogInfo("file sink: ", config_.path, " was moved or removed; writing a new one");
      ::close(fd_);
      fd_ = -1;
    }
    return Open();
  }

  // Writes whole lines or nothing: a failed write is cut back off, so a retry
  // never leaves half a record in the file.
  Status Append(const std::string& chunk) {
    if (chunk.empty()) return Status::Ok();
    Status s = WriteAll(fd_, chunk, "writing " + config_.path);
    if (!s.ok()) {
      if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0) {
        return s.WithContext("and could not cut back a partial write");
      }
      return s;
    }
    size_ += chunk.size();
    return Status::Ok();
  }

  Status Rotate() {
    ::close(fd_);
    fd_ = -1;
    const std::string& base = config_.path;
    std::error_code ec;
    std::filesystem::remove(base + "." + std::to_string(config_.rotate_keep), ec);
    for (int i = config_.rotate_keep - 1; i >= 1; --i) {
      std::string from = base + "." + std::to_string(i);
      if (std::filesystem::exists(from, ec)) {
        std::filesystem::rename(from, base + "." + std::to_string(i + 1), ec);
        if (ec) return Status::Unavailable("rotating " + from + ": " + ec.message());
      }
    }
    std::filesystem::rename(base, base + ".1", ec);
    if (ec) return Status::Unavailable("rotating " + base + ": " + ec.message());
    return Open();
  }

  const config::FileSinkConfig config_;
  const bool sync_each_batch_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

}  // namespace

StatusOr<std::unique_ptr<Sink>> NewFileSink(const config::FileSinkConfig& config,
                                            bool sync_each_batch) {
  auto sink = std::make_unique<FileSink>(config, sync_each_batch);
  RETURN_IF_ERROR(sink->Open());
  return std::unique_ptr<Sink>(std::move(sink));
}

StatusOr<std::unique_ptr<Sink>> NewStdoutSink() {
  return std::unique_ptr<Sink>(std::make_unique<StdoutSink>());
}

}  // namespace sluice::sinks

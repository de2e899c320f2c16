#include "platform/dead_letter.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "platform/json_text.h"

namespace sluice {
namespace {

class DeadLetterFile final : public DeadLetterStore {
 public:
  DeadLetterFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~DeadLetterFile() override { ::close(fd_); }

  Status Put(const DeadLetter& letter) override {
    std::string line;
    line.reserve(letter.payload.size() + letter.reason.size() + 128);
    line += "{\"time\":";
    line += std::to_string(letter.time_ms);
    line += ",\"origin\":";
    AppendJsonString(line, letter.origin);
    line += ",\"";
    line += letter.origin;
    line += "\":";
    AppendJsonString(line, letter.name);
    if (!letter.topic.empty()) {
      line += ",\"topic\":";
      AppendJsonString(line, IsValidUtf8(letter.topic) ? letter.topic : Base64Encode(letter.topic));
    }
    line += ",\"reason\":";
    AppendJsonString(line, letter.reason);
    line += ",\"payload\":";
    if (IsValidUtf8(letter.payload)) {
      AppendJsonString(line, letter.payload);
    } else {
      AppendJsonString(line, Base64Encode(letter.payload));
      line += ",\"payload_encoding\":\"base64\"";
    }
    line += "}\n";
    std::lock_guard<std::mutex> lock(mu_);
    // O_APPEND and one write per line: a crash leaves at most one torn last line.
    size_t done = 0;
    while (done < line.size()) {
      ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        int err = errno;
        std::string msg = "writing dead letter to " + path_ + ": " + std::strerror(err);
        return err == ENOSPC ? Status::ResourceExhausted(msg) : Status::Unavailable(msg);
      }
      done += static_cast<size_t>(n);
    }
    return Status::Ok();
  }

 private:
  const std::string path_;
  const int fd_;
  std::mutex mu_;
};

}  // namespace

StatusOr<std::unique_ptr<DeadLetterStore>> OpenDeadLetterFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    return Status::Unavailable("opening dead-letter file " + path + ": " + std::strerror(errno));
  }
  return std::unique_ptr<DeadLetterStore>(std::make_unique<DeadLetterFile>(path, fd));
}

}  // namespace sluice

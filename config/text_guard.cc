#include "config/text_guard.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace sluice::config::internal {
namespace {

Status ErrnoStatus(int err) {
  const std::string message = std::strerror(err);
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return Status::NotFound(message);
    case EACCES:
    case EPERM:
      return Status::PermissionDenied(message);
    default:
      return Status::Unavailable(message);
  }
}

bool IsBlank(char c) { return c == ' ' || c == '\t'; }

}  // namespace

StatusOr<std::string> ReadFileLimited(const std::string& path, size_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoStatus(err);
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    return Status::InvalidArgument("is a directory, not a file");
  }
  std::string data;
  char buffer[16384];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return ErrnoStatus(err);
    }
    if (n == 0) break;
    data.append(buffer, static_cast<size_t>(n));
    // Stop early: a FIFO or /dev/zero must not make the loader read forever.
    if (data.size() > max_bytes) {
      ::close(fd);
      return Status::ResourceExhausted("is larger than " + std::to_string(max_bytes) + " bytes");
    }
  }
  ::close(fd);
  return data;
}

int EstimateNestingDepth(std::string_view text, int stop_above, int* out_line, int* out_column) {
  enum class Quote { kNone, kSingle, kDouble };
  Quote quote = Quote::kNone;
  int flow = 0;
  std::vector<size_t> indents;  // block indentation levels open above this line
  // Inside a block scalar (| or >): its lines are text, not structure.
  int block_parent_col = -1;
  int block_content_indent = -1;
  int max_depth = 0;
  int line_no = 0;
  *out_line = 0;
  *out_column = 0;

  size_t line_start = 0;
  while (line_start <= text.size()) {
    size_t line_end = text.find('\n', line_start);
    if (line_end == std::string_view::npos) line_end = text.size();
    std::string_view line = text.substr(line_start, line_end - line_start);
    line_start = line_end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

    size_t indent = 0;
    while (indent < line.size() && line[indent] == ' ') ++indent;
    size_t first = indent;
    while (first < line.size() && IsBlank(line[first])) ++first;
    const bool blank = first == line.size();

    if (quote == Quote::kNone && block_parent_col >= 0) {
      if (blank) continue;
      if (block_content_indent < 0 && static_cast<int>(indent) > block_parent_col) {
        block_content_indent = static_cast<int>(indent);
        continue;
      }
      if (block_content_indent >= 0 && static_cast<int>(indent) >= block_content_indent) continue;
      block_parent_col = -1;
      block_content_indent = -1;
    }

    size_t i = 0;
    if (quote == Quote::kNone && flow == 0) {
      if (blank || line[first] == '#') continue;
      const bool marker = indent == 0 && line.size() >= 3 &&
                          (line.substr(0, 3) == "---" || line.substr(0, 3) == "...") &&
                          (line.size() == 3 || IsBlank(line[3]));
      if (marker) {
        indents.clear();
        i = 3;
      } else {
        while (!indents.empty() && indents.back() > indent) indents.pop_back();
        if (indents.empty() || indents.back() < indent) indents.push_back(indent);
        i = indent;
      }
    }
    const int block_depth = static_cast<int>(indents.size());
    int entries = 0;  // "- " and "? " indicators on this line each open a level
    bool at_value = quote == Quote::kNone;
    int entry_col = static_cast<int>(i);

    auto note = [&](size_t column) {
      const int depth = block_depth + entries + flow;
      if (depth > max_depth) {
        max_depth = depth;
        *out_line = line_no;
        *out_column = static_cast<int>(column) + 1;
      }
      return max_depth > stop_above;
    };
    if (!blank && note(i)) return max_depth;

    while (i < line.size()) {
      const char c = line[i];
      if (quote == Quote::kDouble) {
        if (c == '\\') {
          i += 2;
          continue;
        }
        if (c == '"') {
          quote = Quote::kNone;
          at_value = false;
        }
        ++i;
        continue;
      }
      if (quote == Quote::kSingle) {
        if (c == '\'') {
          if (i + 1 < line.size() && line[i + 1] == '\'') {
            i += 2;
            continue;
          }
          quote = Quote::kNone;
          at_value = false;
        }
        ++i;
        continue;
      }
      if (IsBlank(c)) {
        ++i;
        continue;
      }
      if (c == '#' && (i == 0 || IsBlank(line[i - 1]))) break;
      const bool next_blank = i + 1 >= line.size() || IsBlank(line[i + 1]);
      if (at_value) {
        if (c == '"' || c == '\'') {
          quote = c == '"' ? Quote::kDouble : Quote::kSingle;
          entry_col = static_cast<int>(i);
          ++i;
          continue;
        }
        if (c == '&' || c == '!') {  // an anchor or tag: the value follows it
          while (i < line.size() && !IsBlank(line[i]) &&
                 !(flow > 0 && std::strchr(",[]{}", line[i]) != nullptr)) {
            ++i;
          }
          continue;
        }
        if (flow == 0 && (c == '-' || c == '?' || c == ':') && next_blank) {
          ++entries;
          if (c != ':') entry_col = static_cast<int>(i);
          if (note(i)) return max_depth;
          ++i;
          continue;
        }
        if (flow == 0 && (c == '|' || c == '>')) {
          block_parent_col = entry_col;
          block_content_indent = -1;
          break;
        }
        if (c == '[' || c == '{') {
          ++flow;
          if (note(i)) return max_depth;
          ++i;
          continue;
        }
        at_value = false;
        if (flow == 0) entry_col = static_cast<int>(i);
      }
      if (flow > 0) {
        if (c == '[' || c == '{') {
          ++flow;
          if (note(i)) return max_depth;
          at_value = true;
        } else if (c == ']' || c == '}') {
          --flow;
          at_value = false;
        } else if (c == ',') {
          at_value = true;
        } else if (c == ':' && (next_blank || std::strchr(",[]{}", line[i + 1]) != nullptr)) {
          at_value = true;
        }
      } else if (c == ':' && next_blank) {
        at_value = true;
      }
      ++i;
    }
  }
  return max_depth;
}

int FindSecondDocument(std::string_view text) {
  bool content = false;  // the first document has begun
  bool ended = false;    // ... and a "..." line closed it
  int line_no = 0;
  size_t line_start = 0;
  while (line_start <= text.size()) {
    size_t line_end = text.find('\n', line_start);
    if (line_end == std::string_view::npos) line_end = text.size();
    std::string_view line = text.substr(line_start, line_end - line_start);
    line_start = line_end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const bool marker = line.size() >= 3 && (line.size() == 3 || IsBlank(line[3]));
    size_t first = 0;
    while (first < line.size() && IsBlank(line[first])) ++first;
    if (marker && line.substr(0, 3) == "---") {
      if (content) return line_no;
      size_t rest = 3;
      while (rest < line.size() && IsBlank(line[rest])) ++rest;
      if (rest < line.size() && line[rest] != '#') content = true;  // "--- {a: 1}"
      continue;
    }
    if (marker && line.substr(0, 3) == "...") {
      ended = ended || content;
      continue;
    }
    if (first == line.size() || line[first] == '#') continue;
    if (!content && line[0] == '%') continue;  // a directive such as %YAML 1.2
    if (ended) return line_no;
    content = true;
  }
  return 0;
}

std::optional<Diagnostic> CheckYamlText(std::string_view text, const std::string& file) {
  if (text.size() > kMaxConfigBytes) {
    return Diagnostic{Position{file, 1, 1},
                      "the file is larger than 1 MiB; expected a config of at most 1 MiB (" +
                          std::to_string(kMaxConfigBytes) + " bytes)"};
  }
  const size_t nul = text.find('\0');
  if (nul != std::string_view::npos) {
    int line = 1;
    size_t line_start = 0;
    for (size_t i = 0; i < nul; ++i) {
      if (text[i] == '\n') {
        ++line;
        line_start = i + 1;
      }
    }
    return Diagnostic{Position{file, line, static_cast<int>(nul - line_start) + 1},
                      "the file contains a NUL byte; expected UTF-8 text"};
  }
  // yaml-cpp's LoadAll() can loop forever on a stray ',' at the top level,
  // so documents are counted here and only the first is parsed.
  if (const int second = FindSecondDocument(text); second > 0) {
    return Diagnostic{Position{file, second, 1},
                      "a second YAML document; expected the whole config in one document"};
  }
  int line = 0;
  int column = 0;
  if (EstimateNestingDepth(text, kMaxNestingDepth, &line, &column) > kMaxNestingDepth) {
    return Diagnostic{Position{file, line, column},
                      "nesting is deeper than " + std::to_string(kMaxNestingDepth) +
                          " levels; expected a config nested at most " +
                          std::to_string(kMaxNestingDepth) + " levels deep"};
  }
  return std::nullopt;
}

}  // namespace sluice::config::internal

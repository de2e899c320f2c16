#include "platform/http_client.h"

#include <arpa/inet.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>

namespace sluice {
namespace {

// A head (status line and headers) or a chunk-size line larger than this is
// not a receiver we can trust.
constexpr size_t kMaxHeadBytes = 64 * 1024;
// Bodies up to this size go out in the same write as the head.
constexpr size_t kGlueBodyBytes = 16 * 1024;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Whether the comma-separated `list` holds `token` (any case).
bool HasToken(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    if (EqualsIgnoreCase(Trim(list.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

std::string Base64(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16 | static_cast<uint8_t>(in[i + 1]) << 8 |
                 static_cast<uint8_t>(in[i + 2]);
    for (int shift = 18; shift >= 0; shift -= 6) out += kAlphabet[(v >> shift) & 63];
  }
  if (i < in.size()) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<uint8_t>(in[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size() || HexDigit(s[i + 1]) < 0 || HexDigit(s[i + 2]) < 0) return std::nullopt;
    out += static_cast<char>(HexDigit(s[i + 1]) * 16 + HexDigit(s[i + 2]));
    i += 2;
  }
  return out;
}

bool IsHostNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
}

}  // namespace

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::optional<int64_t> ParseHttpDate(std::string_view text) {
  static constexpr std::string_view kMonths[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                                 "jul", "aug", "sep", "oct", "nov", "dec"};
  int month = -1, hour = -1, minute = -1, second = -1;
  std::vector<int> numbers;  // day, then year
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == ' ' || text[i] == ',' || text[i] == '-') {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < text.size() && text[end] != ' ' && text[end] != ',' && text[end] != '-') ++end;
    std::string_view token = text.substr(i, end - i);
    i = end;
    const bool alpha = std::all_of(token.begin(), token.end(),
                                   [](char c) { return std::isalpha(static_cast<unsigned char>(c)); });
    const bool digits = std::all_of(token.begin(), token.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (alpha) {
      for (int m = 0; m < 12 && token.size() == 3; ++m) {
        if (EqualsIgnoreCase(token, kMonths[m])) month = m + 1;
      }
      continue;  // a weekday or "GMT"
    }
    if (digits && token.size() <= 4) {
      numbers.push_back(std::stoi(std::string(token)));
      continue;
    }
    if (token.size() == 8 && token[2] == ':' && token[5] == ':') {
      auto two = [&](size_t at) {
        return std::isdigit(static_cast<unsigned char>(token[at])) &&
                       std::isdigit(static_cast<unsigned char>(token[at + 1]))
                   ? (token[at] - '0') * 10 + (token[at + 1] - '0')
                   : -1;
      };
      hour = two(0), minute = two(3), second = two(6);
      continue;
    }
    return std::nullopt;
  }
  if (month < 0 || numbers.size() != 2 || hour < 0 || hour > 23 || minute < 0 || minute > 59 ||
      second < 0 || second > 60) {
    return std::nullopt;
  }
  const int day = numbers[0];
  int year = numbers[1];
  if (year < 100) year += year < 70 ? 2000 : 1900;  // RFC 850's two digits
  if (day < 1 || day > 31 || year < 1970) return std::nullopt;
  // Days from the civil date (Howard Hinnant's algorithm).
  const int y = month <= 2 ? year - 1 : year;
  const int era = y / 400;
  const int yoe = y - era * 400;
  const int doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
  const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const int64_t days = static_cast<int64_t>(era) * 146097 + doe - 719468;
  return days * 86400 + hour * 3600 + minute * 60 + second;
}

StatusOr<HttpUrl> ParseHttpUrl(std::string_view url) {
  HttpUrl out;
  const size_t scheme_end = url.find("://");
  const std::string_view scheme = scheme_end == std::string_view::npos ? "" : url.substr(0, scheme_end);
  if (EqualsIgnoreCase(scheme, "https")) {
    out.tls = true;
  } else if (!EqualsIgnoreCase(scheme, "http")) {
    return Status::InvalidArgument("url must start with http:// or https://");
  }
  std::string_view rest = url.substr(scheme_end + 3);
  rest = rest.substr(0, rest.find('#'));
  const size_t authority_end = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, authority_end);
  std::string_view target =
      authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
  for (char c : rest) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return Status::InvalidArgument("url holds a space or a control character");
    }
  }
  if (size_t at = authority.rfind('@'); at != std::string_view::npos) {
    std::optional<std::string> userinfo = PercentDecode(authority.substr(0, at));
    if (!userinfo) return Status::InvalidArgument("url: bad %-escape in the user name or password");
    if (userinfo->find(':') == std::string::npos) *userinfo += ':';
    out.password = userinfo->substr(userinfo->find(':') + 1);
    out.authorization = "Basic " + Base64(*userinfo);
    authority.remove_prefix(at + 1);
  }
  std::string_view port_text;
  if (authority.starts_with('[')) {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return Status::InvalidArgument("url: '[' without ']' in the host");
    out.host = std::string(authority.substr(1, close - 1));
    in6_addr v6;
    if (inet_pton(AF_INET6, out.host.c_str(), &v6) != 1) {
      return Status::InvalidArgument("url: '" + out.host + "' is not an IPv6 address");
    }
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return Status::InvalidArgument("url: junk after the IPv6 address");
      port_text = after.substr(1);
    }
  } else {
    const size_t colon = authority.find(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
    if (!std::all_of(out.host.begin(), out.host.end(), IsHostNameChar)) {
      return Status::InvalidArgument("url: '" + out.host + "' is not a host name or address");
    }
  }
  if (out.host.empty()) return Status::InvalidArgument("url has no host");
  out.port = out.tls ? 443 : 80;
  if (!port_text.empty()) {
    if (port_text.size() > 5 ||
        !std::all_of(port_text.begin(), port_text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return Status::InvalidArgument("url: port '" + std::string(port_text) + "' is not a number");
    }
    out.port = std::stoi(std::string(port_text));
    if (out.port < 1 || out.port > 65535) {
      return Status::InvalidArgument("url: port " + std::string(port_text) + " is out of range");
    }
  }
  const bool v6 = out.host.find(':') != std::string::npos;
  out.host_header = v6 ? "[" + out.host + "]" : out.host;
  if (out.port != (out.tls ? 443 : 80)) out.host_header += ":" + std::to_string(out.port);
  out.target = target.empty() ? "/" : target.starts_with('?') ? "/" + std::string(target)
                                                               : std::string(target);
  const size_t query = out.target.find('?');
  out.display = std::string(out.tls ? "https://" : "http://") + out.host_header +
                out.target.substr(0, query) + (query == std::string::npos ? "" : "?…");
  return out;
}

const std::string* HttpReply::Header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (EqualsIgnoreCase(n, name)) return &v;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------

Status HttpResponseParser::Malformed(const std::string& what) {
  keep_alive_ = false;
  return Status::Unavailable("not a valid HTTP response: " + what);
}

std::optional<std::string_view> HttpResponseParser::NextLine() {
  const size_t newline = buffer_.find('\n', pos_);
  if (newline == std::string::npos) return std::nullopt;
  std::string_view line(buffer_.data() + pos_, newline - pos_);
  pos_ = newline + 1;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

void HttpResponseParser::Keep(std::string_view bytes) {
  if (reply_.body.size() < max_body_) {
    reply_.body.append(bytes.substr(0, max_body_ - reply_.body.size()));
  }
}

Status HttpResponseParser::EndOfHead() {
  if (reply_.status >= 100 && reply_.status < 200) {
    if (reply_.status == 101) return Malformed("101 Switching Protocols was not asked for");
    // An interim answer ("100 Continue"): the real one follows.
    reply_ = HttpReply{};
    status_seen_ = false;
    head_bytes_ = 0;
    return Status::Ok();
  }
  if (const std::string* connection = reply_.Header("Connection")) {
    if (HasToken(*connection, "close")) keep_alive_ = false;
    else if (HasToken(*connection, "keep-alive")) keep_alive_ = true;
  }
  if (reply_.status == 204 || reply_.status == 304) {
    state_ = State::kDone;
    return Status::Ok();
  }
  if (const std::string* coding = reply_.Header("Transfer-Encoding")) {
    std::string_view last = *coding;
    if (size_t comma = last.rfind(','); comma != std::string_view::npos) last.remove_prefix(comma + 1);
    if (EqualsIgnoreCase(Trim(last), "chunked")) {
      state_ = State::kChunkSize;
    } else {
      state_ = State::kUntilClose;
      keep_alive_ = false;
    }
    return Status::Ok();
  }
  if (const std::string* length = reply_.Header("Content-Length")) {
    if (length->empty() || length->size() > 18 ||
        !std::all_of(length->begin(), length->end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return Malformed("Content-Length '" + length->substr(0, 40) + "'");
    }
    remaining_ = std::stoull(*length);
    state_ = remaining_ == 0 ? State::kDone : State::kBody;
    return Status::Ok();
  }
  state_ = State::kUntilClose;
  keep_alive_ = false;
  return Status::Ok();
}

Status HttpResponseParser::Feed(std::string_view bytes) {
  if (bytes.empty()) return Status::Ok();
  started_ = true;
  if (state_ == State::kDone) {
    keep_alive_ = false;  // bytes nobody asked for: do not reuse the connection
    return Status::Ok();
  }
  buffer_.append(bytes);
  while (state_ != State::kDone) {
    if (state_ == State::kBody || state_ == State::kChunkData || state_ == State::kUntilClose) {
      const size_t available = buffer_.size() - pos_;
      const size_t take = state_ == State::kUntilClose
                              ? available
                              : static_cast<size_t>(std::min<uint64_t>(remaining_, available));
      Keep(std::string_view(buffer_).substr(pos_, take));
      pos_ += take;
      if (state_ == State::kUntilClose) break;
      remaining_ -= take;
      if (remaining_ > 0) break;
      state_ = state_ == State::kBody ? State::kDone : State::kChunkEnd;
      continue;
    }
    std::optional<std::string_view> line = NextLine();
    if (!line) {
      if (buffer_.size() - pos_ > kMaxHeadBytes) return Malformed("a line longer than 64 KiB");
      break;
    }
    switch (state_) {
      case State::kHead: {
        head_bytes_ += line->size() + 2;
        if (head_bytes_ > kMaxHeadBytes) return Malformed("the head is larger than 64 KiB");
        if (!status_seen_) {
          // "HTTP/1.1 200 OK"; the reason may be empty or missing.
          if (line->size() < 12 || !line->starts_with("HTTP/1.") ||
              !std::isdigit(static_cast<unsigned char>((*line)[7])) || (*line)[8] != ' ' ||
              !std::all_of(line->begin() + 9, line->begin() + 12,
                           [](char c) { return c >= '0' && c <= '9'; }) ||
              (line->size() > 12 && (*line)[12] != ' ')) {
            return Malformed("the status line is '" + std::string(line->substr(0, 40)) + "'");
          }
          reply_.status = std::stoi(std::string(line->substr(9, 3)));
          reply_.reason = std::string(Trim(line->size() > 12 ? line->substr(13) : ""));
          keep_alive_ = (*line)[7] != '0';  // HTTP/1.0 closes unless it says keep-alive
          status_seen_ = true;
        } else if (line->empty()) {
          RETURN_IF_ERROR(EndOfHead());
        } else {
          const size_t colon = line->find(':');
          if (colon == std::string_view::npos || colon == 0) {
            return Malformed("a header line without a name: '" + std::string(line->substr(0, 40)) + "'");
          }
          reply_.headers.emplace_back(std::string(Trim(line->substr(0, colon))),
                                      std::string(Trim(line->substr(colon + 1))));
        }
        break;
      }
      case State::kChunkSize: {
        std::string_view size = Trim(line->substr(0, line->find(';')));
        if (size.empty() || size.size() > 15 ||
            !std::all_of(size.begin(), size.end(), [](char c) { return HexDigit(c) >= 0; })) {
          return Malformed("a chunk size '" + std::string(size.substr(0, 20)) + "'");
        }
        remaining_ = 0;
        for (char c : size) remaining_ = remaining_ * 16 + static_cast<uint64_t>(HexDigit(c));
        state_ = remaining_ == 0 ? State::kTrailers : State::kChunkData;
        break;
      }
      case State::kChunkEnd:
        if (!line->empty()) return Malformed("a chunk not followed by CRLF");
        state_ = State::kChunkSize;
        break;
      case State::kTrailers:
        if (line->empty()) state_ = State::kDone;
        break;
      default:
        break;
    }
  }
  if (state_ == State::kDone && pos_ < buffer_.size()) keep_alive_ = false;
  buffer_.erase(0, pos_);
  pos_ = 0;
  return Status::Ok();
}

Status HttpResponseParser::FeedEnd() {
  if (state_ == State::kUntilClose) state_ = State::kDone;
  keep_alive_ = false;
  if (state_ == State::kDone) return Status::Ok();
  return Status::Unavailable(started_ ? "the connection closed in the middle of the answer"
                                      : "the connection closed without an answer");
}

// ---------------------------------------------------------------------------

HttpClient::HttpClient(HttpUrl url, const TlsOptions* tls, Millis timeout, size_t max_body)
    : url_(std::move(url)),
      tls_(url_.tls ? std::optional<TlsOptions>(tls != nullptr ? *tls : TlsOptions{}) : std::nullopt),
      timeout_(timeout),
      max_body_(max_body),
      cancel_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

HttpClient::~HttpClient() {
  stream_.reset();
  if (cancel_fd_ >= 0) close(cancel_fd_);
}

void HttpClient::Abort() {
  aborted_.store(true, std::memory_order_relaxed);
  const uint64_t one = 1;
  if (cancel_fd_ >= 0) (void)!write(cancel_fd_, &one, sizeof one);
}

StatusOr<HttpReply> HttpClient::Send(std::string_view method,
                                     std::span<const std::string> header_lines,
                                     std::string_view body) {
  const SteadyTime deadline = RealClock().Now() + timeout_;
  std::string request;
  request.reserve(256 + (body.size() <= kGlueBodyBytes ? body.size() : 0));
  request.append(method).append(" ").append(url_.target).append(" HTTP/1.1\r\nHost: ");
  request.append(url_.host_header).append("\r\n");
  if (!url_.authorization.empty()) request.append("Authorization: ").append(url_.authorization).append("\r\n");
  for (const std::string& line : header_lines) request.append(line).append("\r\n");
  if (!body.empty() || (method != "GET" && method != "HEAD")) {
    request.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  }
  request.append("\r\n");
  if (body.size() <= kGlueBodyBytes) {
    request.append(body);
    body = {};
  }
  bool retry = false;
  StatusOr<HttpReply> reply = SendOnce(request, body, deadline, &retry);
  if (!reply.ok() && retry) reply = SendOnce(request, body, deadline, &retry);
  return reply;
}

StatusOr<HttpReply> HttpClient::SendOnce(std::string_view request, std::string_view body,
                                         SteadyTime deadline, bool* retry) {
  *retry = false;
  const auto aborted = [] { return Status(StatusCode::kAborted, "aborted"); };
  const auto timed_out = [&] {
    return Status::DeadlineExceeded("timed out after " + std::to_string(timeout_.count()) + " ms");
  };
  if (aborted_.load(std::memory_order_relaxed)) return aborted();
  const std::string where = url_.host_header;
  // A kept connection must be silent between answers: bytes (a "408" the
  // server sent before closing, TLS's or anyone's) would be taken for the
  // next answer. Such a connection is dropped and a new one opened.
  if (stream_ != nullptr && stream_->WaitReadable(RealClock().Now()).ok()) stream_.reset();
  const bool reused = stream_ != nullptr;
  if (!reused) {
    const Millis left =
        std::max(Millis(0), std::chrono::duration_cast<Millis>(deadline - RealClock().Now()));
    auto stream = NetStream::Connect(url_.host, url_.port, tls_ ? &*tls_ : nullptr, left, cancel_fd_);
    if (!stream.ok()) {
      if (stream.status().code() == StatusCode::kAborted) return aborted();
      return Status(stream.status().code() == StatusCode::kDeadlineExceeded
                        ? StatusCode::kDeadlineExceeded
                        : StatusCode::kUnavailable,
                    "cannot connect to " + where + ": " + std::string(stream.status().message()));
    }
    stream_ = std::move(*stream);
  }
  const auto fail = [&](const Status& why, const std::string& doing) -> Status {
    stream_.reset();
    if (why.code() == StatusCode::kAborted) return aborted();
    return Status(why.code() == StatusCode::kDeadlineExceeded ? StatusCode::kDeadlineExceeded
                                                              : StatusCode::kUnavailable,
                  doing + ": " + std::string(why.message()));
  };
  Status sent = stream_->WriteAll(request, deadline);
  if (sent.ok() && !body.empty()) sent = stream_->WriteAll(body, deadline);
  if (!sent.ok()) {
    *retry = reused && sent.code() == StatusCode::kUnavailable;
    return fail(sent, "sending the request to " + where);
  }

  HttpResponseParser parser(max_body_);
  char buffer[16384];
  while (!parser.done()) {
    // Also while bytes keep coming (an endless body): the timeout and Abort
    // hold for the whole answer.
    if (aborted_.load(std::memory_order_relaxed)) return fail(aborted(), "");
    if (RealClock().Now() >= deadline) return fail(timed_out(), "the answer from " + where);
    StatusOr<size_t> got = stream_->Read(buffer, sizeof buffer);
    if (!got.ok()) {
      if (parser.FeedEnd().ok()) break;  // a body that runs until close
      *retry = reused && !parser.started();
      return fail(got.status(), parser.started() ? "the answer from " + where + " broke off"
                                                 : "no answer from " + where);
    }
    if (*got > 0) {
      if (Status fed = parser.Feed(std::string_view(buffer, *got)); !fed.ok()) {
        return fail(fed, "the answer from " + where);
      }
      continue;
    }
    if (Status waited = stream_->WaitReadable(deadline); !waited.ok()) {
      if (waited.code() == StatusCode::kAborted) return fail(aborted(), "");
      return fail(timed_out(), parser.started() ? "the answer from " + where
                                                : "waiting for an answer from " + where);
    }
  }
  HttpReply reply = parser.TakeReply();
  if (!parser.keep_alive()) stream_.reset();
  return reply;
}

}  // namespace sluice

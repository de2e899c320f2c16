#include "config/rules.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <string>
#include <vector>

namespace sluice::config::internal {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool ParsePort(std::string_view s) {
  if (s.empty() || s.size() > 5) return false;
  int port = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    port = port * 10 + (c - '0');
  }
  return port >= 1 && port <= 65535;
}

bool ParseHost(std::string_view host) {
  if (host.empty()) return false;
  if (host.front() == '[') {  // IPv6 literal
    if (host.back() != ']' || host.size() < 3) return false;
    return std::all_of(host.begin() + 1, host.end() - 1, [](char c) {
      return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
    });
  }
  return std::all_of(host.begin(), host.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
  });
}

}  // namespace

// Optimal string alignment distance: a swapped pair of letters ("topcis")
// counts as one edit, which is the typo people make most.
int EditDistance(std::string_view a, std::string_view b) {
  const size_t n = a.size();
  const size_t m = b.size();
  std::vector<std::vector<int>> d(n + 1, std::vector<int>(m + 1, 0));
  for (size_t i = 0; i <= n; ++i) d[i][0] = static_cast<int>(i);
  for (size_t j = 0; j <= m; ++j) d[0][j] = static_cast<int>(j);
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      const int cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[n][m];
}

// The candidate `given` was most likely meant to be, or "" when none is close:
// within two edits (and fewer edits than `given` has letters), or one is a
// prefix of the other.
std::string Suggest(std::string_view given, const KeyList& candidates) {
  if (given.empty() || given.size() > 64) return "";
  const std::string g = Lower(given);
  std::string best;
  int best_distance = 1000;
  for (std::string_view candidate : candidates) {
    const std::string c = Lower(candidate);
    int distance = EditDistance(g, c);
    const bool prefix = g.size() >= 2 && (c.rfind(g, 0) == 0 || g.rfind(c, 0) == 0);
    if (!(distance <= 2 && distance < static_cast<int>(g.size())) && !prefix) continue;
    if (prefix) distance = std::min(distance, 2);
    if (distance < best_distance) {
      best_distance = distance;
      best = std::string(candidate);
    }
  }
  return best;
}

std::string DidYouMean(std::string_view given, const KeyList& candidates) {
  const std::string s = Suggest(given, candidates);
  return s.empty() ? "" : " (did you mean '" + s + "'?)";
}

// "a, b or c"
std::string JoinOr(const KeyList& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += i + 1 == items.size() ? " or " : ", ";
    out += items[i];
  }
  return out;
}

// "a, b, c"
std::string JoinComma(const KeyList& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ", ";
    out += items[i];
  }
  return out;
}

// Single-quoted for a message; control characters escaped, long text cut.
std::string Quoted(std::string_view s) {
  constexpr size_t kMaxShown = 80;
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < kMaxShown; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      if (c == '\n') {
        out += "\\n";
      } else if (c == '\t') {
        out += "\\t";
      } else {
        out += "\\x";
        out += kHex[c >> 4];
        out += kHex[c & 0xf];
      }
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > kMaxShown) out += "...";
  out += "'";
  return out;
}

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

// Source, pipeline, sink and aggregate names: [A-Za-z0-9_-]+.
bool IsName(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), IsNameChar);
}

// Payload fields may be nested ("env.temp").
bool IsFieldName(std::string_view s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](char c) { return IsNameChar(c) || c == '.'; });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// "host:port", "[::1]:port".
bool ParseHostPort(std::string_view s) {
  const size_t colon = s.rfind(':');
  if (colon == std::string_view::npos) return false;
  return ParseHost(s.substr(0, colon)) && ParsePort(s.substr(colon + 1));
}

// scheme://host:port with nothing after; returns the scheme or "".
std::string MqttUrlScheme(std::string_view url) {
  for (std::string_view scheme : {"tcp", "ssl", "mqtt", "mqtts"}) {
    if (url.size() > scheme.size() + 3 && url.substr(0, scheme.size()) == scheme &&
        url.substr(scheme.size(), 3) == "://" && ParseHostPort(url.substr(scheme.size() + 3))) {
      return std::string(scheme);
    }
  }
  return "";
}

// http(s)://host[:port][/path][?query]; returns the scheme or "".
std::string HttpUrlScheme(std::string_view url) {
  for (std::string_view scheme : {"http", "https"}) {
    if (url.size() <= scheme.size() + 3 || url.substr(0, scheme.size()) != scheme ||
        url.substr(scheme.size(), 3) != "://") {
      continue;
    }
    if (std::any_of(url.begin(), url.end(),
                    [](char c) { return std::isspace(static_cast<unsigned char>(c)); })) {
      return "";
    }
    std::string_view authority = url.substr(scheme.size() + 3);
    authority = authority.substr(0, authority.find_first_of("/?#"));
    const size_t at = authority.rfind('@');
    if (at != std::string_view::npos) authority = authority.substr(at + 1);
    const size_t colon = authority.rfind(':');
    const bool bracketed_end = !authority.empty() && authority.back() == ']';
    if (colon != std::string_view::npos && !bracketed_end) {
      if (!ParseHost(authority.substr(0, colon)) || !ParsePort(authority.substr(colon + 1))) {
        return "";
      }
    } else if (!ParseHost(authority)) {
      return "";
    }
    return std::string(scheme);
  }
  return "";
}

// Why `filter` is not a valid MQTT subscription filter, or "".
std::string TopicFilterProblem(std::string_view filter) {
  if (filter.empty()) return "a filter cannot be empty";
  if (filter.size() > 65535) return "longer than 65535 bytes";
  size_t start = 0;
  while (true) {
    const size_t slash = filter.find('/', start);
    const bool last = slash == std::string_view::npos;
    const std::string_view level =
        filter.substr(start, last ? std::string_view::npos : slash - start);
    if (level.find('#') != std::string_view::npos) {
      if (level != "#") return "'#' must be a whole level";
      if (!last) return "'#' must be the last level";
    }
    if (level.find('+') != std::string_view::npos && level != "+") {
      return "'+' must be a whole level";
    }
    if (last) break;
    start = slash + 1;
  }
  return "";
}

// Why `pattern` is not a valid topic_fields pattern, or "".
std::string TopicPatternProblem(std::string_view pattern) {
  if (pattern.empty()) return "a pattern cannot be empty";
  std::set<std::string, std::less<>> captures;
  size_t start = 0;
  while (true) {
    const size_t slash = pattern.find('/', start);
    const bool last = slash == std::string_view::npos;
    const std::string_view level =
        pattern.substr(start, last ? std::string_view::npos : slash - start);
    if (level.size() >= 2 && level.front() == '{' && level.back() == '}') {
      const std::string_view name = level.substr(1, level.size() - 2);
      if (!IsName(name)) {
        return "capture " + std::string(level) + " needs a name of letters, digits, '_' or '-'";
      }
      if (!captures.insert(std::string(name)).second) {
        return "capture {" + std::string(name) + "} appears twice";
      }
    } else if (level == "#") {
      if (!last) return "'#' must be the last level";
    } else if (level != "+") {
      if (level.find_first_of("{}") != std::string_view::npos) {
        return "a {name} capture must be a whole level";
      }
      if (level.find_first_of("+#") != std::string_view::npos) {
        return "'+' and '#' must be whole levels";
      }
    }
    if (last) break;
    start = slash + 1;
  }
  return "";
}

// Why `tmpl` is not a valid "{field}" template, or "".
std::string TemplateProblem(std::string_view tmpl) {
  size_t i = 0;
  while (i < tmpl.size()) {
    if (tmpl[i] == '}') return "unmatched '}'";
    if (tmpl[i] == '{') {
      const size_t close = tmpl.find('}', i);
      if (close == std::string_view::npos) return "unmatched '{'";
      const std::string_view field = tmpl.substr(i + 1, close - i - 1);
      if (!IsFieldName(field)) {
        return "{" + std::string(field) +
               "} needs a field name of letters, digits, '_', '-' or '.'";
      }
      i = close + 1;
      continue;
    }
    ++i;
  }
  return "";
}

bool IsHeaderName(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

}  // namespace sluice::config::internal

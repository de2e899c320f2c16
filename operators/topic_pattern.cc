#include "operators/topic_pattern.h"

namespace sluice::operators {
namespace {

std::vector<std::string_view> SplitLevels(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t slash = s.find('/', start);
    if (slash == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, slash - start));
    start = slash + 1;
  }
}

bool IsFieldName(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

StatusOr<TopicPattern> TopicPattern::Parse(std::string_view pattern) {
  TopicPattern p;
  p.text_ = std::string(pattern);
  if (pattern.empty()) return Status::InvalidArgument("topic pattern is empty");
  std::vector<std::string_view> levels = SplitLevels(pattern);
  for (size_t i = 0; i < levels.size(); ++i) {
    std::string_view level = levels[i];
    if (level == "#") {
      if (i + 1 != levels.size()) {
        return Status::InvalidArgument("'#' must be the last level of topic pattern '" +
                                       std::string(pattern) + "'");
      }
      p.levels_.push_back({Kind::kRest, ""});
    } else if (level == "+") {
      p.levels_.push_back({Kind::kAnyLevel, ""});
    } else if (level.size() >= 2 && level.front() == '{' && level.back() == '}') {
      std::string_view name = level.substr(1, level.size() - 2);
      if (!IsFieldName(name)) {
        return Status::InvalidArgument("capture '{" + std::string(name) +
                                       "}' in topic pattern '" + std::string(pattern) +
                                       "' must be a name of letters, digits, '_' or '-'");
      }
      for (const Level& l : p.levels_) {
        if (l.kind == Kind::kCapture && l.text == name) {
          return Status::InvalidArgument("capture '{" + std::string(name) +
                                         "}' appears twice in topic pattern '" +
                                         std::string(pattern) + "'");
        }
      }
      p.levels_.push_back({Kind::kCapture, std::string(name)});
    } else {
      if (level.find_first_of("{}+#") != std::string_view::npos) {
        return Status::InvalidArgument("level '" + std::string(level) + "' of topic pattern '" +
                                       std::string(pattern) +
                                       "' mixes text with '{', '}', '+' or '#'");
      }
      p.levels_.push_back({Kind::kLiteral, std::string(level)});
    }
  }
  return p;
}

bool TopicPattern::Match(std::string_view topic, std::vector<Field>* fields) const {
  size_t pos = 0;
  size_t first_capture = fields->size();
  for (size_t i = 0; i < levels_.size(); ++i) {
    const Level& level = levels_[i];
    if (level.kind == Kind::kRest) return true;
    if (pos > topic.size()) break;
    size_t slash = topic.find('/', pos);
    size_t end = slash == std::string_view::npos ? topic.size() : slash;
    std::string_view part = topic.substr(pos, end - pos);
    bool last_pattern_level = i + 1 == levels_.size();
    bool last_topic_level = slash == std::string_view::npos;
    if (last_topic_level && !last_pattern_level &&
        levels_[i + 1].kind != Kind::kRest) {
      break;  // the topic is shorter than the pattern
    }
    switch (level.kind) {
      case Kind::kLiteral:
        if (part != level.text) goto mismatch;
        break;
      case Kind::kCapture:
        fields->push_back(Field{level.text, std::string(part)});
        break;
      case Kind::kAnyLevel:
      case Kind::kRest:
        break;
    }
    if (last_pattern_level) {
      if (!last_topic_level) goto mismatch;  // the topic is longer
      return true;
    }
    pos = last_topic_level ? topic.size() + 1 : slash + 1;
  }
mismatch:
  fields->resize(first_capture);
  return false;
}

bool TopicMatchesFilter(std::string_view filter, std::string_view topic) {
  std::vector<std::string_view> f = SplitLevels(filter);
  std::vector<std::string_view> t = SplitLevels(topic);
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] == "#") return i + 1 == f.size();
    if (i >= t.size()) return false;
    if (f[i] != "+" && f[i] != t[i]) return false;
  }
  return f.size() == t.size();
}

std::vector<std::string> TopicPattern::CaptureNames() const {
  std::vector<std::string> names;
  for (const Level& l : levels_) {
    if (l.kind == Kind::kCapture) names.push_back(l.text);
  }
  return names;
}

}  // namespace sluice::operators

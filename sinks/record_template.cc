#include "sinks/record_template.h"

#include <optional>

namespace sluice::sinks {
namespace {

size_t SkipSpace(std::string_view s, size_t i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) ++i;
  return i;
}

// End of the JSON string starting at s[i] == '"' (one past the closing quote),
// or npos.
size_t SkipString(std::string_view s, size_t i) {
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
    } else if (s[i] == '"') {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

// End of the JSON value starting at s[i], or npos. Nesting is tracked with
// one counter: strings are skipped whole, so brackets inside them do not count.
size_t SkipValue(std::string_view s, size_t i) {
  if (i >= s.size()) return std::string_view::npos;
  if (s[i] == '"') return SkipString(s, i);
  if (s[i] == '{' || s[i] == '[') {
    int depth = 0;
    while (i < s.size()) {
      char c = s[i];
      if (c == '"') {
        i = SkipString(s, i);
        if (i == std::string_view::npos) return i;
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if (c == '}' || c == ']') {
        if (--depth == 0) return i + 1;
      }
      ++i;
    }
    return std::string_view::npos;
  }
  while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' &&
         s[i] != '\n' && s[i] != '\r' && s[i] != '\t') {
    ++i;
  }
  return i;
}

// The raw text of member `name` of the JSON object `object`, if there is one.
std::optional<std::string_view> FindMember(std::string_view object, std::string_view name) {
  size_t i = SkipSpace(object, 0);
  if (i >= object.size() || object[i] != '{') return std::nullopt;
  i = SkipSpace(object, i + 1);
  while (i < object.size() && object[i] == '"') {
    size_t key_end = SkipString(object, i);
    if (key_end == std::string_view::npos) return std::nullopt;
    // Keys written by sluice are plain; an escaped key simply never matches.
    std::string_view key = object.substr(i + 1, key_end - i - 2);
    i = SkipSpace(object, key_end);
    if (i >= object.size() || object[i] != ':') return std::nullopt;
    i = SkipSpace(object, i + 1);
    size_t value_end = SkipValue(object, i);
    if (value_end == std::string_view::npos) return std::nullopt;
    if (key == name) return object.substr(i, value_end - i);
    i = SkipSpace(object, value_end);
    if (i < object.size() && object[i] == ',') i = SkipSpace(object, i + 1);
  }
  return std::nullopt;
}

// A scalar's text for a topic or key; nullopt for objects, arrays and null.
std::optional<std::string> ScalarText(std::string_view raw) {
  if (raw.empty() || raw[0] == '{' || raw[0] == '[' || raw == "null") return std::nullopt;
  if (raw[0] != '"') return std::string(raw);
  std::string out;
  out.reserve(raw.size());
  for (size_t i = 1; i + 1 < raw.size(); ++i) {
    char c = raw[i];
    if (c != '\\') {
      out += c;
      continue;
    }
    char e = raw[++i];
    switch (e) {
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'u': {
        // Control characters only (sluice escapes nothing else this way).
        unsigned value = 0;
        for (int k = 1; k <= 4 && i + k < raw.size(); ++k) {
          char h = raw[i + k];
          value = value * 16 + static_cast<unsigned>(h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
        }
        i += 4;
        out += static_cast<char>(value);
        break;
      }
      default: out += e;
    }
  }
  return out;
}

std::optional<std::string_view> Lookup(std::string_view body, std::string_view name) {
  if (name.find('.') != std::string_view::npos) {
    std::string_view at = body;
    while (true) {
      size_t dot = name.find('.');
      auto member = FindMember(at, name.substr(0, dot));
      if (!member || dot == std::string_view::npos) return member;
      at = *member;
      name.remove_prefix(dot + 1);
    }
  }
  if (auto top = FindMember(body, name)) return top;
  for (std::string_view inner : {"key", "fields", "value"}) {
    if (auto nested = FindMember(body, inner)) {
      if (auto member = FindMember(*nested, name)) return member;
    }
  }
  return std::nullopt;
}

}  // namespace

StatusOr<RecordTemplate> RecordTemplate::Parse(std::string_view text) {
  RecordTemplate t;
  t.text_ = std::string(text);
  size_t i = 0;
  while (i < text.size()) {
    size_t open = text.find('{', i);
    size_t close = text.find('}', i);
    if (close < open) {
      return Status::InvalidArgument("template '" + t.text_ + "': '}' without '{'");
    }
    if (open == std::string_view::npos) {
      t.parts_.push_back({false, std::string(text.substr(i))});
      break;
    }
    if (open > i) t.parts_.push_back({false, std::string(text.substr(i, open - i))});
    close = text.find('}', open);
    if (close == std::string_view::npos) {
      return Status::InvalidArgument("template '" + t.text_ + "': '{' without '}'");
    }
    std::string_view name = text.substr(open + 1, close - open - 1);
    if (name.empty() || name.find('{') != std::string_view::npos) {
      return Status::InvalidArgument("template '" + t.text_ + "': empty or nested placeholder");
    }
    t.parts_.push_back({true, std::string(name)});
    i = close + 1;
  }
  return t;
}

StatusOr<std::string> RecordTemplate::Render(std::string_view json_body) const {
  std::string out;
  for (const Part& part : parts_) {
    if (!part.field) {
      out += part.text;
      continue;
    }
    std::optional<std::string_view> raw = Lookup(json_body, part.text);
    std::optional<std::string> value = raw ? ScalarText(*raw) : std::nullopt;
    if (!value) {
      return Status::InvalidArgument("template '" + text_ + "': the record has no value for {" +
                                     part.text + "}" + (raw ? " (not a string, number or boolean)" : ""));
    }
    out += *value;
  }
  return out;
}

}  // namespace sluice::sinks

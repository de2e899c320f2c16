#include "operators/record.h"

#include <charconv>
#include <cmath>

#include "platform/json_text.h"

namespace sluice::operators {

std::optional<double> AsNumber(const Value& v) {
  if (const auto* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
  if (const auto* d = std::get_if<double>(&v)) return *d;
  return std::nullopt;
}

const Value* Record::Find(std::string_view name) const {
  for (const Field& f : fields) {
    if (f.name == name) return &f.value;
  }
  return nullptr;
}

void AppendValueJson(std::string& out, const Value& v) {
  char buf[32];
  switch (v.index()) {
    case 0:
      out += "null";
      break;
    case 1:
      out += std::get<bool>(v) ? "true" : "false";
      break;
    case 2: {
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, std::get<int64_t>(v));
      (void)ec;
      out.append(buf, end);
      break;
    }
    case 3: {
      double d = std::get<double>(v);
      if (!std::isfinite(d)) {  // JSON has no NaN or infinity
        out += "null";
        break;
      }
      // Shortest text that reads back as the same double: 21.5, not 21.500000000000001.
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d);
      (void)ec;
      out.append(buf, end);
      break;
    }
    case 4:
      AppendJsonString(out, std::get<std::string>(v));
      break;
    case 5:
      out += std::get<RawJson>(v).text;
      break;
  }
}

}  // namespace sluice::operators

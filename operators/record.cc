#include "operators/record.h"

#include <charconv>
#include <cmath>

#include "operators/codec.h"
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

void EncodeValue(std::string& out, const Value& v) {
  out += static_cast<char>(v.index());
  switch (v.index()) {
    case 0: break;
    case 1: out += std::get<bool>(v) ? '\1' : '\0'; break;
    case 2: codec::PutSigned(out, std::get<int64_t>(v)); break;
    case 3: codec::PutDouble(out, std::get<double>(v)); break;
    case 4: codec::PutBytes(out, std::get<std::string>(v)); break;
    case 5: codec::PutBytes(out, std::get<RawJson>(v).text); break;
  }
}

bool DecodeValue(std::string_view& in, Value* v) {
  if (in.empty()) return false;
  char tag = in.front();
  in.remove_prefix(1);
  std::string_view bytes;
  switch (tag) {
    case 0: *v = std::monostate{}; return true;
    case 1:
      if (in.empty()) return false;
      *v = in.front() != 0;
      in.remove_prefix(1);
      return true;
    case 2: {
      int64_t i;
      if (!codec::GetSigned(in, &i)) return false;
      *v = i;
      return true;
    }
    case 3: {
      double d;
      if (!codec::GetDouble(in, &d)) return false;
      *v = d;
      return true;
    }
    case 4:
      if (!codec::GetBytes(in, &bytes)) return false;
      *v = std::string(bytes);
      return true;
    case 5:
      if (!codec::GetBytes(in, &bytes)) return false;
      *v = RawJson{std::string(bytes)};
      return true;
    default: return false;
  }
}

void EncodeFields(std::string& out, const std::vector<Field>& fields) {
  codec::PutVarint(out, fields.size());
  for (const Field& f : fields) {
    codec::PutBytes(out, f.name);
    EncodeValue(out, f.value);
  }
}

bool DecodeFields(std::string_view& in, std::vector<Field>* fields) {
  uint64_t n;
  if (!codec::GetVarint(in, &n) || n > in.size()) return false;
  fields->clear();
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view name;
    Field f;
    if (!codec::GetBytes(in, &name) || !DecodeValue(in, &f.value)) return false;
    f.name = std::string(name);
    fields->push_back(std::move(f));
  }
  return true;
}

}  // namespace sluice::operators

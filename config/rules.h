// Private to config/: the checks on single values that the schema walk in
// loader.cc applies (names, addresses, MQTT filters, templates) and the
// wording helpers its messages share.
#ifndef SLUICE_CONFIG_RULES_H_
#define SLUICE_CONFIG_RULES_H_

#include <string>
#include <string_view>
#include <vector>

namespace sluice::config::internal {

using KeyList = std::vector<std::string_view>;

// Optimal string alignment distance (a swapped pair counts as one edit).
int EditDistance(std::string_view a, std::string_view b);
// The candidate `given` was most likely meant to be, or "" when none is close.
std::string Suggest(std::string_view given, const KeyList& candidates);
// " (did you mean 'x'?)" or "".
std::string DidYouMean(std::string_view given, const KeyList& candidates);
// "a, b or c" and "a, b, c".
std::string JoinOr(const KeyList& items);
std::string JoinComma(const KeyList& items);
// 's' in single quotes, control characters escaped, cut after 80 bytes.
std::string Quoted(std::string_view s);
std::string_view Trim(std::string_view s);

bool IsNameChar(char c);
// Source, pipeline, sink and aggregate names: [A-Za-z0-9_-]+.
bool IsName(std::string_view s);
// Payload fields, which may be nested: [A-Za-z0-9_.-]+.
bool IsFieldName(std::string_view s);
// An HTTP header field name (RFC 9110 token).
bool IsHeaderName(std::string_view s);

// "host:port" or "[v6]:port", port 1-65535.
bool ParseHostPort(std::string_view s);
// The scheme of "tcp|ssl|mqtt|mqtts://host:port", or "" if `url` is not one.
std::string MqttUrlScheme(std::string_view url);
// The scheme of "http(s)://host[:port][/path]", or "" if `url` is not one.
std::string HttpUrlScheme(std::string_view url);

// Each returns why the text is invalid, or "" when it is valid.
// An MQTT subscription filter: '+' and '#' whole levels, '#' last.
std::string TopicFilterProblem(std::string_view filter);
// A topic_fields pattern: literal levels, {name} captures with distinct
// names, '+', and a final '#'.
std::string TopicPatternProblem(std::string_view pattern);
// Text with {field} placeholders.
std::string TemplateProblem(std::string_view tmpl);

}  // namespace sluice::config::internal

#endif  // SLUICE_CONFIG_RULES_H_

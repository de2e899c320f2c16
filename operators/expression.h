// Expression: the small language of `where`, `alert.when` and `alert.clear`.
//
//   auto e = Expression::Compile("temp > 80 && site == 'north'", &error);
//   if (e.ok() && e->Matches(record)) ...
//
// Grammar (precedence low to high):
//   or      := and ( '||' and )*
//   and     := not ( '&&' not )*
//   not     := '!' not | compare
//   compare := sum ( ( '==' | '!=' | '<' | '<=' | '>' | '>=' ) sum )?
//   sum     := product ( ( '+' | '-' ) product )*
//   product := unary ( ( '*' | '/' ) unary )*
//   unary   := '-' unary | primary
//   primary := number | string | 'true' | 'false' | field | call | '(' or ')'
//   call    := ( 'abs' | 'min' | 'max' ) '(' or ( ',' or )* ')'
//   field   := [A-Za-z_][A-Za-z0-9_.]*  or  `any text in backquotes`
//   string  := "..." or '...' with \\ \" \' escapes
// Numbers compare as doubles; strings compare with strings (bytewise);
// booleans only with == and !=.
//
// A field missing from the record (or null), or a value of the wrong type,
// is "unknown", as NULL is in SQL: `unknown || true` is true, `unknown &&
// false` is false, and anything else that depends on it is unknown, which
// Matches() treats as false and Evaluate() reports as kMissing or
// kTypeError so the caller can count it; `!unknown` stays unknown. Never a
// crash. Type errors visible in the text itself ('a' + 1, 5 && x) are
// refused at compile time. Compiled once at config load; evaluation does not
// allocate. Thread-compatible: const methods may run concurrently.
#ifndef SLUICE_OPERATORS_EXPRESSION_H_
#define SLUICE_OPERATORS_EXPRESSION_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "operators/operator.h"
#include "operators/record.h"
#include "platform/status.h"

namespace sluice::operators {

enum class Truth {
  kTrue,
  kFalse,
  kMissing,   // a field the expression reads is not in the record
  kTypeError  // e.g. "abc" > 3, or a number where a condition was expected
};

class Expression {
 public:
  // On a syntax error returns kInvalidArgument whose message says what was
  // expected ("expected ')' after the arguments of max, got end of input"),
  // and sets *error_offset to the 0-based byte offset in `text` where it was found.
  static StatusOr<Expression> Compile(std::string_view text, size_t* error_offset);

  Truth Evaluate(const Record& record) const;
  bool Matches(const Record& record) const { return Evaluate(record) == Truth::kTrue; }

  // Every field name the expression reads (for decoding projections).
  const std::vector<std::string>& fields() const { return fields_; }
  const std::string& text() const { return text_; }

  struct Node;  // the compiled form; private to expression.cc

 private:
  std::string text_;
  std::vector<std::string> fields_;
  std::shared_ptr<const Node> root_;  // immutable, so copies share it
};

// Passes records for which `where` is true on to `next`; counts the rest
// (OperatorStats.filtered, .unmatched for missing/mistyped fields).
// Snapshot/Restore/OnWatermark/OnTick/Stats delegate to next (Stats adds its
// own counters).
std::unique_ptr<Operator> NewFilter(Expression where, std::unique_ptr<Operator> next);

}  // namespace sluice::operators

#endif  // SLUICE_OPERATORS_EXPRESSION_H_

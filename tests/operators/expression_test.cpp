#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "operators/expression.h"
#include "operators/operator.h"
#include "operators/record.h"

using sluice::Envelope;
using sluice::Status;
using sluice::StatusCode;
using sluice::operators::Emitter;
using sluice::operators::Expression;
using sluice::operators::Field;
using sluice::operators::NewFilter;
using sluice::operators::Operator;
using sluice::operators::OperatorStats;
using sluice::operators::RawJson;
using sluice::operators::Record;
using sluice::operators::Truth;
using sluice::operators::Value;

// Counts every allocation in this binary, so a test can check that
// Evaluate() makes none. GCC 12 at -O2 pairs the library's inlined
// allocations with these replacements and warns of a mismatch that is not
// there (both sides are malloc/free).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
namespace {
std::atomic<uint64_t> g_allocations{0};
}  // namespace

// Every plain variant is replaced, so a sanitizer's own operator new never
// pairs with this file's operator delete.
void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return operator new(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size == 0 ? 1 : size);
}
void* operator new[](std::size_t size, const std::nothrow_t& tag) noexcept {
  return operator new(size, tag);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace Catch {
template <>
struct StringMaker<Truth> {
  static std::string convert(Truth t) {
    switch (t) {
      case Truth::kTrue: return "kTrue";
      case Truth::kFalse: return "kFalse";
      case Truth::kMissing: return "kMissing";
      case Truth::kTypeError: return "kTypeError";
    }
    return "?";
  }
};
}  // namespace Catch

namespace {

// The record most tests evaluate against.
Record Sample() {
  Record r;
  r.topic = "sensors/north/dev-7";
  r.fields = {
      {"x", int64_t{3}},
      {"y", 2.5},
      {"zero", int64_t{0}},
      {"neg", -4.0},
      {"big", int64_t{9007199254740993}},  // 2^53 + 1
      {"s", std::string("abc")},
      {"empty", std::string()},
      {"quote", std::string("it's \"q\" \\")},
      {"utf", std::string("\xc3\xa9t\xc3\xa9")},  // "été"
      {"t", true},
      {"f", false},
      {"n", std::monostate{}},
      {"obj", RawJson{"{\"a\":1}"}},
      {"payload.temp", 21.5},
      {"temp (\xc2\xb0" "C)", int64_t{30}},
      {"true", int64_t{1}},
      {"abs", int64_t{-7}},
  };
  return r;
}

Expression MustCompile(const std::string& text) {
  size_t offset = 0;
  auto e = Expression::Compile(text, &offset);
  INFO("expression: " << text);
  INFO("error: " << e.status().message() << " at offset " << offset);
  REQUIRE(e.ok());
  return *e;
}

Truth Eval(const std::string& text, const Record& record = Sample()) {
  return MustCompile(text).Evaluate(record);
}

struct SyntaxError {
  std::string message;
  size_t offset = 0;
};

SyntaxError CompileError(const std::string& text) {
  size_t offset = 12345;
  auto e = Expression::Compile(text, &offset);
  INFO("expression: " << text);
  REQUIRE_FALSE(e.ok());
  CHECK(e.status().code() == StatusCode::kInvalidArgument);
  return {std::string(e.status().message()), offset};
}

}  // namespace

TEST_CASE("expression precedence and associativity") {
  CHECK(Eval("1 + 2 * 3 == 7") == Truth::kTrue);
  CHECK(Eval("(1 + 2) * 3 == 9") == Truth::kTrue);
  CHECK(Eval("10 - 2 - 3 == 5") == Truth::kTrue);
  CHECK(Eval("100 / 10 / 5 == 2") == Truth::kTrue);
  CHECK(Eval("2 * 3 - 4 / 2 == 4") == Truth::kTrue);
  CHECK(Eval("10 - 4 + 1 == 7") == Truth::kTrue);
  CHECK(Eval("8 / 4 * 2 == 4") == Truth::kTrue);
  CHECK(Eval("1 + 2 < 4") == Truth::kTrue);
  CHECK(Eval("-2 * 3 == -6") == Truth::kTrue);
  CHECK(Eval("- -2 == 2") == Truth::kTrue);
  CHECK(Eval("--2 == 2") == Truth::kTrue);
  CHECK(Eval("-(1 + 2) == -3") == Truth::kTrue);
  CHECK(Eval("2 - -1 == 3") == Truth::kTrue);
  CHECK(Eval("-x * -x == 9") == Truth::kTrue);

  SECTION("'!' binds tighter than '&&'") {
    // (!a) && b, not !(a && b): with both false the two readings differ.
    Record r;
    r.fields = {{"a", false}, {"b", false}};
    CHECK(Eval("!a && b", r) == Truth::kFalse);
    r.fields = {{"a", false}, {"b", true}};
    CHECK(Eval("!a && b", r) == Truth::kTrue);
    r.fields = {{"a", true}, {"b", true}};
    CHECK(Eval("!a && b", r) == Truth::kFalse);
  }
  SECTION("'&&' binds tighter than '||'") {
    Record r;
    r.fields = {{"a", true}, {"b", false}, {"c", false}};
    CHECK(Eval("a || b && c", r) == Truth::kTrue);    // a || (b && c)
    CHECK(Eval("(a || b) && c", r) == Truth::kFalse);
    CHECK(Eval("b && c || a", r) == Truth::kTrue);
  }
  SECTION("'!' applies to a whole comparison, as the grammar says") {
    // not := '!' not | compare, so !x == 4 is !(x == 4).
    CHECK(Eval("!x == 4") == Truth::kTrue);
    CHECK(Eval("!x == 3") == Truth::kFalse);
    CHECK(Eval("!!(x == 3)") == Truth::kTrue);
  }
}

TEST_CASE("expression comparison operators") {
  SECTION("numbers") {
    CHECK(Eval("x == 3") == Truth::kTrue);
    CHECK(Eval("x != 3") == Truth::kFalse);
    CHECK(Eval("x < 4") == Truth::kTrue);
    CHECK(Eval("x < 3") == Truth::kFalse);
    CHECK(Eval("x <= 3") == Truth::kTrue);
    CHECK(Eval("x <= 2.9") == Truth::kFalse);
    CHECK(Eval("x > 2.99") == Truth::kTrue);
    CHECK(Eval("x > 3") == Truth::kFalse);
    CHECK(Eval("x >= 3") == Truth::kTrue);
    CHECK(Eval("x >= 3.01") == Truth::kFalse);
  }
  SECTION("strings compare bytewise") {
    CHECK(Eval("s == 'abc'") == Truth::kTrue);
    CHECK(Eval("s != \"abc\"") == Truth::kFalse);
    CHECK(Eval("s < 'abd'") == Truth::kTrue);
    CHECK(Eval("s <= 'abc'") == Truth::kTrue);
    CHECK(Eval("s > 'ab'") == Truth::kTrue);  // a prefix sorts first
    CHECK(Eval("s >= 'b'") == Truth::kFalse);
    CHECK(Eval("'B' < 'a'") == Truth::kTrue);  // bytes, not a locale
    CHECK(Eval("utf > 'z'") == Truth::kTrue);  // 0xc3 > 'z': unsigned bytes
    CHECK(Eval("empty == ''") == Truth::kTrue);
    CHECK(Eval("s == 'ABC'") == Truth::kFalse);
  }
  SECTION("booleans with == and !=") {
    CHECK(Eval("t == true") == Truth::kTrue);
    CHECK(Eval("t != f") == Truth::kTrue);
    CHECK(Eval("f == false") == Truth::kTrue);
    CHECK(Eval("(x > 1) == t") == Truth::kTrue);
    CHECK(Eval("(x > 1) != (y > 1)") == Truth::kFalse);
    CHECK(Eval("t") == Truth::kTrue);
    CHECK(Eval("f") == Truth::kFalse);
    CHECK(Eval("true") == Truth::kTrue);
    CHECK(Eval("false") == Truth::kFalse);
  }
}

TEST_CASE("expression arithmetic, logic and functions") {
  CHECK(Eval("x + y == 5.5") == Truth::kTrue);
  CHECK(Eval("x - y == 0.5") == Truth::kTrue);
  CHECK(Eval("x * y == 7.5") == Truth::kTrue);
  CHECK(Eval("x / 2 == 1.5") == Truth::kTrue);  // no integer division
  CHECK(Eval("-neg == 4") == Truth::kTrue);
  CHECK(Eval("!(x > 1)") == Truth::kFalse);
  CHECK(Eval("!f") == Truth::kTrue);
  CHECK(Eval("t && t") == Truth::kTrue);
  CHECK(Eval("t && f") == Truth::kFalse);
  CHECK(Eval("f || t") == Truth::kTrue);
  CHECK(Eval("f || f || f") == Truth::kFalse);
  CHECK(Eval("t && t && t && f") == Truth::kFalse);
  CHECK(Eval("abs(neg) == 4") == Truth::kTrue);
  CHECK(Eval("abs(x) == 3") == Truth::kTrue);
  CHECK(Eval("abs(-0.5) == 0.5") == Truth::kTrue);
  CHECK(Eval("min(x, y) == 2.5") == Truth::kTrue);
  CHECK(Eval("max(x, y) == 3") == Truth::kTrue);
  CHECK(Eval("min(5, neg, x, 10) == -4") == Truth::kTrue);
  CHECK(Eval("max(5, neg, x, 10) == 10") == Truth::kTrue);
  CHECK(Eval("min(7) == 7 && max(7) == 7") == Truth::kTrue);
  CHECK(Eval("max(abs(neg), min(x, y) * 2) == 5") == Truth::kTrue);
  SECTION("a field called like a function is still a field") {
    CHECK(Eval("abs == -7") == Truth::kTrue);
    CHECK(Eval("abs(abs) == 7") == Truth::kTrue);
  }
}

TEST_CASE("expression strings, quotes and escapes") {
  CHECK(Eval("s == \"abc\"") == Truth::kTrue);
  CHECK(Eval("s == 'abc'") == Truth::kTrue);
  CHECK(Eval(R"(quote == 'it\'s "q" \\')") == Truth::kTrue);
  CHECK(Eval(R"(quote == "it's \"q\" \\")") == Truth::kTrue);
  CHECK(Eval(R"('a\'b' == "a'b")") == Truth::kTrue);
  CHECK(Eval("'a b' == \"a b\"") == Truth::kTrue);
  CHECK(Eval("'x && y || (' == \"x && y || (\"") == Truth::kTrue);  // operators inside stay text
  CHECK(Eval("utf == '\xc3\xa9t\xc3\xa9'") == Truth::kTrue);
}

TEST_CASE("expression field names: plain, dotted, backquoted") {
  CHECK(Eval("payload.temp == 21.5") == Truth::kTrue);
  CHECK(Eval("payload.temp > 20 && payload.other > 1") == Truth::kMissing);
  CHECK(Eval("`temp (\xc2\xb0" "C)` == 30") == Truth::kTrue);
  CHECK(Eval("`payload.temp` == payload.temp") == Truth::kTrue);
  CHECK(Eval("`true` == 1") == Truth::kTrue);  // a keyword, as a field name
  CHECK(Eval("`s`=='abc'") == Truth::kTrue);
  CHECK(Eval("_under_score1 > 0") == Truth::kMissing);
}

TEST_CASE("expression integers and doubles are both numbers") {
  Record r;
  r.fields = {{"i", int64_t{2}}, {"d", 2.0}, {"half", 0.5}, {"big", int64_t{1} << 40}};
  CHECK(Eval("i == d", r) == Truth::kTrue);
  CHECK(Eval("i == 2.0", r) == Truth::kTrue);
  CHECK(Eval("d == 2", r) == Truth::kTrue);
  CHECK(Eval("i + half == 2.5", r) == Truth::kTrue);
  CHECK(Eval("i / 4 == half", r) == Truth::kTrue);
  CHECK(Eval("big == 1099511627776", r) == Truth::kTrue);
  CHECK(Eval("1e3 == 1000 && 2.5e-1 == 0.25 && 1E+2 == 100", r) == Truth::kTrue);
  CHECK(Eval("007 == 7", r) == Truth::kTrue);
}

TEST_CASE("expression && and || with missing fields (three-valued logic)") {
  // A missing or mistyped operand is unknown: the result is known when the
  // other operand decides it, and otherwise reports the leftmost unknown.
  Record r;
  r.fields = {{"b", int64_t{2}}, {"s", std::string("txt")}};
  CHECK(Eval("a > 1 || b > 1", r) == Truth::kTrue);
  CHECK(Eval("b > 1 || a > 1", r) == Truth::kTrue);
  CHECK(Eval("a > 1 || b > 5", r) == Truth::kMissing);
  CHECK(Eval("b > 5 || a > 1", r) == Truth::kMissing);
  CHECK(Eval("a > 1 && b > 5", r) == Truth::kFalse);
  CHECK(Eval("b > 5 && a > 1", r) == Truth::kFalse);
  CHECK(Eval("a > 1 && b > 1", r) == Truth::kMissing);
  CHECK(Eval("b > 1 && a > 1", r) == Truth::kMissing);
  CHECK(Eval("a > 1 || s > 1", r) == Truth::kMissing);    // leftmost unknown
  CHECK(Eval("s > 1 || a > 1", r) == Truth::kTypeError);
  CHECK(Eval("s > 1 && b > 5", r) == Truth::kFalse);
  CHECK(Eval("s > 1 || b > 1", r) == Truth::kTrue);
  CHECK(Eval("a > 1 || c > 1 || b > 1", r) == Truth::kTrue);
  CHECK(Eval("(a > 1 || b > 5) && b > 5", r) == Truth::kFalse);
  SECTION("negation keeps unknown unknown") {
    // Otherwise `where: !(a > 1)` would pass records that have no `a`.
    CHECK(Eval("!(a > 1)", r) == Truth::kMissing);
    CHECK(Eval("!(s > 1)", r) == Truth::kTypeError);
    CHECK(Eval("!(a > 1) || b > 1", r) == Truth::kTrue);
  }
  SECTION("a null value reads as missing") {
    Record with_null;
    with_null.fields = {{"n", std::monostate{}}, {"b", int64_t{2}}};
    CHECK(Eval("n == 1", with_null) == Truth::kMissing);
    CHECK(Eval("n > 1 || b > 1", with_null) == Truth::kTrue);
    CHECK(Eval("n == 'x'", with_null) == Truth::kMissing);
  }
}

TEST_CASE("expression kMissing and kTypeError") {
  SECTION("missing fields") {
    CHECK(Eval("nope > 1") == Truth::kMissing);
    CHECK(Eval("nope == 'x'") == Truth::kMissing);
    CHECK(Eval("nope + 1 > 0") == Truth::kMissing);
    CHECK(Eval("-nope > 0") == Truth::kMissing);
    CHECK(Eval("abs(nope) > 0") == Truth::kMissing);
    CHECK(Eval("min(1, nope) > 0") == Truth::kMissing);
    CHECK(Eval("nope") == Truth::kMissing);
    CHECK(Eval("!nope") == Truth::kMissing);
    CHECK(Eval("n") == Truth::kMissing);
    CHECK(Eval("x > 1", Record{}) == Truth::kMissing);
  }
  SECTION("mistyped values") {
    CHECK(Eval("s > 1") == Truth::kTypeError);   // string vs number
    CHECK(Eval("s == 1") == Truth::kTypeError);
    CHECK(Eval("x == 'abc'") == Truth::kTypeError);
    CHECK(Eval("s + 1 > 0") == Truth::kTypeError);
    CHECK(Eval("-s > 0") == Truth::kTypeError);
    CHECK(Eval("abs(s) > 0") == Truth::kTypeError);
    CHECK(Eval("max(1, t) > 0") == Truth::kTypeError);
    CHECK(Eval("t < f") == Truth::kTypeError);   // booleans only with == and !=
    CHECK(Eval("t == 1") == Truth::kTypeError);
    CHECK(Eval("t + 1 > 0") == Truth::kTypeError);
    CHECK(Eval("x") == Truth::kTypeError);       // a number as the result
    CHECK(Eval("s") == Truth::kTypeError);       // a string as the result
    CHECK(Eval("x && t") == Truth::kTypeError);  // a number as a condition
    CHECK(Eval("!s") == Truth::kTypeError);
    CHECK(Eval("obj == 'x'") == Truth::kTypeError);  // nested JSON has no operators
    CHECK(Eval("obj") == Truth::kTypeError);
  }
  SECTION("the first problem, left to right, is the one reported") {
    CHECK(Eval("nope + s > 0") == Truth::kMissing);
    CHECK(Eval("s + nope > 0") == Truth::kTypeError);
    CHECK(Eval("nope == s") == Truth::kMissing);
    CHECK(Eval("s == nope") == Truth::kMissing);  // both read, then types compared
    CHECK(Eval("obj == nope") == Truth::kTypeError);
  }
  SECTION("Matches is true only for kTrue") {
    const Record r = Sample();
    CHECK(MustCompile("x == 3").Matches(r));
    CHECK_FALSE(MustCompile("x == 4").Matches(r));
    CHECK_FALSE(MustCompile("nope == 4").Matches(r));
    CHECK_FALSE(MustCompile("s == 4").Matches(r));
  }
}

TEST_CASE("expression division by zero is a type error") {
  CHECK(Eval("x / 0 > 1") == Truth::kTypeError);
  CHECK(Eval("1 / 0 > 0") == Truth::kTypeError);
  CHECK(Eval("x / zero == 0") == Truth::kTypeError);
  CHECK(Eval("x / (x - 3) == 0") == Truth::kTypeError);
  CHECK(Eval("1 / -0 > 0") == Truth::kTypeError);
  CHECK(Eval("1 / 0.0 > 0") == Truth::kTypeError);
  CHECK(Eval("0 / x == 0") == Truth::kTrue);
  CHECK(Eval("x / 0 > 1 || t") == Truth::kTrue);
  CHECK(Eval("x / 0 > 1 && f") == Truth::kFalse);
  CHECK(Eval("nope / 0 > 1") == Truth::kMissing);  // the missing field comes first
}

TEST_CASE("expression syntax errors say what was expected and where") {
  struct Case {
    std::string text;
    std::string message;
    size_t offset;
  };
  const std::vector<Case> cases = {
      {"", "expected an expression, got end of input", 0},
      {"   ", "expected an expression, got end of input", 3},
      {"a > 1 &&", "expected an operand after '&&', got end of input", 8},
      {"a >", "expected an operand after '>', got end of input", 3},
      {"a > )", "expected an operand after '>', got ')'", 4},
      {"1 + !a", "expected an operand after '+', got '!'", 4},
      {"a > 1 || || b", "expected an operand after '||', got '||'", 9},
      {"sqrt(x) > 1", "unknown function 'sqrt' (known: abs, min, max)", 0},
      {"name == 'abc", "unterminated string", 8},
      {"name == \"abc\\\"", "unterminated string", 8},
      {"a > 1)", "unexpected ')'", 5},
      {"max(a, b", "expected ')' after the arguments of max, got end of input", 8},
      {"max(1 2) > 1", "expected ',' or ')' after an argument of max, got number 2", 6},
      {"max() > 1", "expected an argument of max, got ')'", 4},
      {"max(1,) > 1", "expected an argument after ',', got ')'", 6},
      {"abs(1, 2) > 0", "abs takes 1 argument, got 2", 0},
      {"(a > 1", "expected ')' to close the '(' at offset 0, got end of input", 6},
      {"x > (1 + (2 b", "expected ')' to close the '(' at offset 9, got field 'b'", 12},
      {"()", "expected an expression after '(', got ')'", 1},
      {"a > 1 b", "expected an operator or end of input, got field 'b'", 6},
      {"a > 1 'x'", "expected an operator or end of input, got string 'x'", 6},
      {"a = 1", "unexpected '=' (did you mean '=='?)", 2},
      {"a & b", "unexpected '&' (did you mean '&&'?)", 2},
      {"a | b", "unexpected '|' (did you mean '||'?)", 2},
      {"1 < a < 3", "unexpected '<' after a comparison (comparisons do not chain: use '&&')", 6},
      {"12abc > 1", "malformed number '12abc'", 0},
      {"a > 1.", "malformed number '1.'", 4},
      {"a > 1.2.3", "malformed number '1.2.3'", 4},
      {"a > 1e", "malformed number '1e'", 4},
      {"1e999 > a", "number '1e999' is out of range", 0},
      {R"(s == 'a\n')", R"(unknown escape '\n' in string (known: \\ \" \'))", 7},
      {"`temp > 1", "unterminated field name (no closing '`')", 0},
      {"`` > 1", "empty field name in backquotes", 0},
      {"a > 1 % 2", "unexpected character '%'", 6},
      {"a > 1 \xc3\xa9",
       "unexpected byte 0xc3 (non-ASCII text belongs in quotes or backquotes)", 6},
      // Type errors visible in the text alone.
      {"5 && a", "expected a condition as operand of '&&', got a number", 0},
      {"a || 'x'", "expected a condition as operand of '||', got a string", 5},
      {"a + 'x' > 1", "expected a number as operand of '+', got a string", 4},
      {"(a > 1) * 2 > 1", "expected a number as operand of '*', got a condition (true/false)",
       0},
      {"'a' > 1", "cannot compare a string with a number using '>'", 4},
      {"true < a", "'<' does not apply to conditions (true/false): they compare only with == and !=",
       5},
      {"a + 1", "expected a condition (true/false), got a number", 0},
      {"  'text'", "expected a condition (true/false), got a string", 2},
      {"!5", "expected a condition after '!', got a number", 1},
      {"-'x' > 1", "expected a number after '-', got a string", 1},
      {"abs('x') > 1", "expected a number as argument of abs, got a string", 4},
      // The leftmost problem wins, even when the lexer would stumble later.
      {"a > ) 'unterminated", "expected an operand after '>', got ')'", 4},
  };
  for (const Case& c : cases) {
    INFO("expression: " << c.text);
    const SyntaxError e = CompileError(c.text);
    CHECK(e.message == c.message);
    CHECK(e.offset == c.offset);
  }
}

TEST_CASE("expression compile leaves error_offset alone on success and accepts null") {
  size_t offset = 77;
  auto e = Expression::Compile("x > 1", &offset);
  REQUIRE(e.ok());
  CHECK(offset == 77);
  CHECK_FALSE(Expression::Compile("x >", nullptr).ok());
  CHECK(Expression::Compile("x > 1", nullptr).ok());
}

TEST_CASE("expression length and nesting limits") {
  SECTION("4096 bytes is accepted, 4097 refused") {
    std::string text = "x > 1";
    text.resize(4096, ' ');
    CHECK(Eval(text) == Truth::kTrue);
    text += ' ';
    const SyntaxError e = CompileError(text);
    CHECK(e.message == "expression is longer than 4096 bytes (4097)");
    CHECK(e.offset == 4096);
  }
  SECTION("64 levels of parentheses are accepted, 65 refused") {
    CHECK(Eval(std::string(64, '(') + "x > 1" + std::string(64, ')')) == Truth::kTrue);
    const SyntaxError e = CompileError(std::string(65, '(') + "x > 1" + std::string(65, ')'));
    CHECK(e.message == "expression nests deeper than 64 levels");
    CHECK(e.offset == 64);
  }
  SECTION("'!', '-' and calls count as levels too") {
    CHECK(Eval(std::string(64, '!') + "t") == Truth::kTrue);
    const SyntaxError bang = CompileError(std::string(65, '!') + "t");
    CHECK(bang.message == "expression nests deeper than 64 levels");
    CHECK(bang.offset == 64);
    CHECK(Eval(std::string(64, '-') + "3 == 3") == Truth::kTrue);
    const SyntaxError minus = CompileError(std::string(65, '-') + "3 == 3");
    CHECK(minus.offset == 64);
    std::string calls;
    for (int i = 0; i < 65; ++i) calls += "abs(";
    calls += "x" + std::string(65, ')') + " > 0";
    const SyntaxError call = CompileError(calls);
    CHECK(call.message == "expression nests deeper than 64 levels");
    CHECK(call.offset == 64 * 4 + 3);  // the '(' of the 65th abs
  }
  SECTION("hostile nesting is refused, not a crash") {
    CHECK(CompileError(std::string(10000, '(') + "x" + std::string(10000, ')')).offset == 4096);
    CHECK(CompileError(std::string(10000, '(')).offset == 4096);
    CHECK(CompileError(std::string(4000, '(')).offset == 64);
    CHECK(CompileError(std::string(4000, '!')).offset == 64);
    CHECK(CompileError(std::string(4000, '-')).offset == 64);
  }
  SECTION("long flat chains are not nesting") {
    std::string ors = "x > 5";
    while (ors.size() < 4000) ors += " || x > 5";
    CHECK(Eval(ors + " || x == 3") == Truth::kTrue);
    std::string sum = "1";
    for (int i = 1; i < 2000; ++i) sum += "+1";
    CHECK(Eval(sum + "==2000") == Truth::kTrue);
  }
}

TEST_CASE("expression fields() lists distinct names in first-use order") {
  const Expression e =
      MustCompile("b > 1 && a < 2 || b == 3 && `x y` != 'lit' && abs(c.d) > 0 && max(a, e) < 9 "
                  "&& true");
  CHECK(e.fields() == std::vector<std::string>{"b", "a", "x y", "c.d", "e"});
  CHECK(e.text() ==
        "b > 1 && a < 2 || b == 3 && `x y` != 'lit' && abs(c.d) > 0 && max(a, e) < 9 && true");
  CHECK(MustCompile("1 < 2").fields().empty());
}

TEST_CASE("expression copies share the compiled form") {
  Expression copy;
  CHECK(copy.Evaluate(Sample()) == Truth::kFalse);  // default: matches nothing
  CHECK(copy.fields().empty());
  {
    const Expression original = MustCompile("x == 3 && s == 'abc'");
    copy = original;
  }
  CHECK(copy.Evaluate(Sample()) == Truth::kTrue);
  CHECK(copy.text() == "x == 3 && s == 'abc'");
  const Expression second = copy;
  CHECK(second.Matches(Sample()));
}

TEST_CASE("expression evaluation does not allocate") {
  const Expression e = MustCompile(
      "(s == 'abc' && utf > 'z' || nope > 1) && max(x, y, abs(neg)) * 2 - x / 4 > 1 && "
      "!(t == f) && `payload.temp` >= 21.5 && quote != \"x\" && obj != 'x' || n == 1");
  const Record r = Sample();
  Truth result = Truth::kFalse;
  const uint64_t before = g_allocations.load();
  for (int i = 0; i < 100; ++i) result = e.Evaluate(r);
  const uint64_t after = g_allocations.load();
  CHECK(after == before);
  // obj (nested JSON) is a type error and n (null) is missing: the leftmost wins.
  CHECK(result == Truth::kTypeError);
}

// --- Filter ------------------------------------------------------------------

namespace {

class FakeEmitter final : public Emitter {
 public:
  void Emit(Envelope envelope, const Record&) override { emitted.push_back(envelope.body); }
  void Reject(const Record&, std::string_view reason) override {
    rejected.emplace_back(reason);
  }
  std::vector<std::string> emitted;
  std::vector<std::string> rejected;
};

// Records what reaches it; emits each record's topic.
class FakeNext final : public Operator {
 public:
  struct Log {
    std::vector<std::string> topics;
    std::vector<int64_t> watermarks;
    std::vector<int64_t> ticks;
    std::string restored;
  };
  explicit FakeNext(Log* log) : log_(log) {}

  Status OnRecord(const Record& record, Emitter& out) override {
    log_->topics.push_back(record.topic);
    if (record.topic == "fail") return Status::Internal("next failed");
    out.Emit(Envelope{"id", "", record.topic}, record);
    return Status::Ok();
  }
  Status OnWatermark(int64_t watermark_ms, Emitter&) override {
    log_->watermarks.push_back(watermark_ms);
    return Status::Ok();
  }
  Status OnTick(int64_t now_ms, Emitter&) override {
    log_->ticks.push_back(now_ms);
    return Status::Unavailable("tick status");
  }
  std::string Snapshot() const override { return "next-state"; }
  Status Restore(std::string_view snapshot) override {
    log_->restored = std::string(snapshot);
    return snapshot == "bad" ? Status::DataLoss("bad snapshot") : Status::Ok();
  }
  OperatorStats Stats() const override {
    OperatorStats s;
    s.unmatched = 7;
    s.firing = 1;
    s.keys = 2;
    return s;
  }

 private:
  Log* log_;
};

Record Reading(std::string topic, Value temp) {
  Record r;
  r.topic = std::move(topic);
  r.fields.push_back({"temp", std::move(temp)});
  return r;
}

}  // namespace

TEST_CASE("filter passes true records on and counts the rest") {
  FakeNext::Log log;
  auto filter = NewFilter(MustCompile("temp > 80"), std::make_unique<FakeNext>(&log));
  FakeEmitter out;

  CHECK(filter->OnRecord(Reading("hot", int64_t{90}), out).ok());
  CHECK(filter->OnRecord(Reading("cold", 50.0), out).ok());
  CHECK(filter->OnRecord(Reading("hotter", 80.5), out).ok());
  Record no_temp;
  no_temp.topic = "no-temp";
  CHECK(filter->OnRecord(no_temp, out).ok());
  CHECK(filter->OnRecord(Reading("text", std::string("hot")), out).ok());
  CHECK(filter->OnRecord(Reading("null", std::monostate{}), out).ok());

  CHECK(log.topics == std::vector<std::string>{"hot", "hotter"});
  CHECK(out.emitted == std::vector<std::string>{"hot", "hotter"});
  CHECK(out.rejected.empty());  // dropping is not dead-lettering

  const OperatorStats stats = filter->Stats();
  CHECK(stats.filtered == 4);       // cold, no-temp, text, null
  CHECK(stats.unmatched == 3 + 7);  // no-temp, text, null; plus next's own
  CHECK(stats.firing == 1);
  CHECK(stats.keys == 2);
}

TEST_CASE("filter returns next's status for records it passes") {
  FakeNext::Log log;
  auto filter = NewFilter(MustCompile("temp > 80"), std::make_unique<FakeNext>(&log));
  FakeEmitter out;
  const Status s = filter->OnRecord(Reading("fail", int64_t{99}), out);
  CHECK(s.code() == StatusCode::kInternal);
  CHECK(filter->OnRecord(Reading("fail", int64_t{1}), out).ok());  // dropped before next
}

TEST_CASE("filter delegates time, snapshots and restore to next") {
  FakeNext::Log log;
  auto filter = NewFilter(MustCompile("temp > 80"), std::make_unique<FakeNext>(&log));
  FakeEmitter out;
  CHECK(filter->OnWatermark(1000, out).ok());
  CHECK(filter->OnWatermark(sluice::operators::kEndOfTime, out).ok());
  CHECK(log.watermarks == std::vector<int64_t>{1000, sluice::operators::kEndOfTime});
  CHECK(filter->OnTick(5000, out).code() == StatusCode::kUnavailable);
  CHECK(log.ticks == std::vector<int64_t>{5000});
  CHECK(filter->Snapshot() == "next-state");
  CHECK(filter->Restore("saved").ok());
  CHECK(log.restored == "saved");
  CHECK(filter->Restore("bad").code() == StatusCode::kDataLoss);
}

// --- Randomized comparison with a reference evaluator -------------------------

namespace {

// The reference: binary trees evaluated directly from the generator's
// choices, with the semantics of expression.h spelled out independently.
struct RefValue {
  enum Kind { kNumber, kBool, kMissing, kError } kind = kError;
  double number = 0;
  bool boolean = false;
};

RefValue RefNumber(double d) { return {RefValue::kNumber, d, false}; }
RefValue RefBool(bool b) { return {RefValue::kBool, 0, b}; }
bool RefProblem(const RefValue& v) {
  return v.kind == RefValue::kMissing || v.kind == RefValue::kError;
}

// Generated source text, its precedence level (1 = ||, 2 = &&, 3 = !,
// 4 = comparison, 5 = + -, 6 = * /, 7 = unary -, 8 = primary) and its value.
struct Gen {
  std::string text;
  int level = 8;
  RefValue value;
};

class ExpressionGenerator {
 public:
  explicit ExpressionGenerator(uint32_t seed) : rng_(seed) {}

  Gen Condition(int depth) {
    const int choice = depth <= 0 ? Pick(0, 1) : Pick(0, 9);
    switch (choice) {
      case 0: {
        const bool b = Pick(0, 1) == 1;
        return {b ? "true" : "false", 8, RefBool(b)};
      }
      case 1:
      case 2:
      case 3:
      case 4:
        return NumberComparison(depth);
      case 5: {  // booleans with == or !=
        Gen a = Wrap(Condition(depth - 1), 5);
        Gen b = Wrap(Condition(depth - 1), 5);
        const bool eq = Pick(0, 1) == 0;
        RefValue v;
        if (RefProblem(a.value)) {
          v = a.value;
        } else if (RefProblem(b.value)) {
          v = b.value;
        } else {
          v = RefBool(eq ? a.value.boolean == b.value.boolean : a.value.boolean != b.value.boolean);
        }
        return {a.text + Space() + (eq ? "==" : "!=") + Space() + b.text, 4, v};
      }
      case 6: {
        Gen a = Wrap(Condition(depth - 1), 3);
        RefValue v = a.value;
        if (!RefProblem(v)) v.boolean = !v.boolean;
        return {"!" + Space() + a.text, 3, v};
      }
      default: {  // && or ||
        const bool is_and = Pick(0, 1) == 0;
        const int level = is_and ? 2 : 1;
        Gen a = Wrap(Condition(depth - 1), level);
        Gen b = Wrap(Condition(depth - 1), level + 1);
        return {a.text + Space() + (is_and ? "&&" : "||") + Space() + b.text, level,
                Kleene(is_and, a.value, b.value)};
      }
    }
  }

 private:
  int Pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  std::string Space() { return Pick(0, 3) == 0 ? "" : " "; }

  // Parenthesizes `g` when its level is below `min_level`, and sometimes anyway.
  Gen Wrap(Gen g, int min_level) {
    if (g.level < min_level || Pick(0, 9) == 0) {
      g.text = "(" + Space() + g.text + Space() + ")";
      g.level = 8;
    }
    return g;
  }

  static RefValue Kleene(bool is_and, const RefValue& a, const RefValue& b) {
    const bool decisive = !is_and;  // the value that settles the result
    if (a.kind == RefValue::kBool && a.boolean == decisive) return a;
    if (b.kind == RefValue::kBool && b.boolean == decisive) return b;
    if (RefProblem(a)) return a;
    if (RefProblem(b)) return b;
    return RefBool(!decisive);
  }

  Gen NumberComparison(int depth) {
    static const char* const kOps[] = {"==", "!=", "<", "<=", ">", ">="};
    const int op = Pick(0, 5);
    Gen a = Wrap(Number(depth - 1), 5);
    Gen b = Wrap(Number(depth - 1), 5);
    RefValue v;
    if (RefProblem(a.value)) {
      v = a.value;
    } else if (RefProblem(b.value)) {
      v = b.value;
    } else {
      const double x = a.value.number;
      const double y = b.value.number;
      const bool results[] = {x == y, x != y, x < y, x <= y, x > y, x >= y};
      v = RefBool(results[op]);
    }
    return {a.text + Space() + kOps[op] + Space() + b.text, 4, v};
  }

  Gen Number(int depth) {
    const int choice = depth <= 0 ? 0 : Pick(0, 7);
    switch (choice) {
      case 0:
      case 1:
        return Leaf();
      case 2:
      case 3: {  // + or -, left-associative
        const bool plus = Pick(0, 1) == 0;
        Gen a = Wrap(Number(depth - 1), 5);
        Gen b = Wrap(Number(depth - 1), 6);
        RefValue v = Arithmetic(a.value, b.value, plus ? '+' : '-');
        return {a.text + Space() + (plus ? "+" : "-") + Space() + b.text, 5, v};
      }
      case 4:
      case 5: {  // * or /
        const bool times = Pick(0, 1) == 0;
        Gen a = Wrap(Number(depth - 1), 6);
        Gen b = Wrap(Number(depth - 1), 7);
        RefValue v = Arithmetic(a.value, b.value, times ? '*' : '/');
        return {a.text + Space() + (times ? "*" : "/") + Space() + b.text, 6, v};
      }
      case 6: {
        Gen a = Wrap(Number(depth - 1), 7);
        RefValue v = a.value;
        if (!RefProblem(v)) v.number = -v.number;
        return {"-" + Space() + a.text, 7, v};
      }
      default: {
        const int fn = Pick(0, 2);
        if (fn == 0) {
          Gen a = Number(depth - 1);
          RefValue v = a.value;
          if (!RefProblem(v)) v.number = v.number < 0 ? -v.number : v.number;
          return {"abs(" + a.text + ")", 8, v};
        }
        const int n = Pick(1, 3);
        std::string text = fn == 1 ? "min(" : "max(";
        RefValue v;
        for (int i = 0; i < n; ++i) {
          Gen a = Number(depth - 1);
          text += (i > 0 ? "," + Space() : "") + a.text;
          if (i > 0 && RefProblem(v)) continue;
          if (RefProblem(a.value)) {
            v = a.value;
          } else if (i == 0 || (fn == 1 ? a.value.number < v.number : a.value.number > v.number)) {
            v = a.value;
          }
        }
        return {text + ")", 8, v};
      }
    }
  }

  Gen Leaf() {
    switch (Pick(0, 9)) {
      case 0:
        return {"x", 8, RefNumber(3)};
      case 1:
        return {"y", 8, RefNumber(2.5)};
      case 2:
        return {"nope", 8, RefValue{RefValue::kMissing, 0, false}};
      case 3: {
        const int quarters = Pick(0, 40);
        char buf[32];
        std::snprintf(buf, sizeof buf, "%g", quarters / 4.0);
        return {buf, 8, RefNumber(quarters / 4.0)};
      }
      default: {
        const int n = Pick(0, 9);
        return {std::to_string(n), 8, RefNumber(n)};
      }
    }
  }

  static RefValue Arithmetic(const RefValue& a, const RefValue& b, char op) {
    if (RefProblem(a)) return a;
    if (RefProblem(b)) return b;
    switch (op) {
      case '+': return RefNumber(a.number + b.number);
      case '-': return RefNumber(a.number - b.number);
      case '*': return RefNumber(a.number * b.number);
      default:
        if (b.number == 0) return RefValue{RefValue::kError, 0, false};
        return RefNumber(a.number / b.number);
    }
  }

  std::mt19937 rng_;
};

Truth RefTruth(const RefValue& v) {
  switch (v.kind) {
    case RefValue::kBool: return v.boolean ? Truth::kTrue : Truth::kFalse;
    case RefValue::kMissing: return Truth::kMissing;
    default: return Truth::kTypeError;
  }
}

}  // namespace

TEST_CASE("expression agrees with a reference evaluator on random expressions") {
  ExpressionGenerator gen(20240611);
  Record r;
  r.fields = {{"x", int64_t{3}}, {"y", 2.5}};
  int outcomes[4] = {0, 0, 0, 0};
  for (int i = 0; i < 5000; ++i) {
    const Gen g = gen.Condition(5);
    if (g.text.size() > 4096) continue;
    INFO("case " << i << ": " << g.text);
    const Truth expected = RefTruth(g.value);
    CHECK(Eval(g.text, r) == expected);
    ++outcomes[static_cast<int>(expected)];
  }
  // The generator reaches every outcome, so each rule above was exercised.
  CHECK(outcomes[static_cast<int>(Truth::kTrue)] > 500);
  CHECK(outcomes[static_cast<int>(Truth::kFalse)] > 500);
  CHECK(outcomes[static_cast<int>(Truth::kMissing)] > 100);
  CHECK(outcomes[static_cast<int>(Truth::kTypeError)] > 50);
}

TEST_CASE("expression compile survives random token soup") {
  static const char* const kPieces[] = {
      "x", "nope", "1", "2.5", "'s'", "\"t\"", "`q`", "true", "false", "abs", "min", "max",
      "(", ")", ",", "!", "-", "+", "*", "/", "==", "!=", "<", "<=", ">", ">=", "&&", "||",
      " ", "'", "`", "\\", "=", "&", "|", "1e", "."};
  std::mt19937 rng(7);
  std::uniform_int_distribution<size_t> piece(0, std::size(kPieces) - 1);
  std::uniform_int_distribution<int> length(0, 30);
  int compiled = 0;
  for (int i = 0; i < 5000; ++i) {
    std::string text;
    for (int n = length(rng); n > 0; --n) text += kPieces[piece(rng)];
    size_t offset = 0;
    auto e = Expression::Compile(text, &offset);
    INFO("text: " << text);
    if (e.ok()) {
      ++compiled;
      (void)e->Evaluate(Sample());
    } else {
      CHECK(offset <= text.size());
      CHECK_FALSE(e.status().message().empty());
    }
  }
  CHECK(compiled > 0);
}

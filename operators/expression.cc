// Expression: a recursive-descent parser to an immutable tree, and a tree
// walk that evaluates it against a Record.
//
// Choices the header leaves open:
//
// * Missing and mistyped values follow three-valued (Kleene) logic, as SQL's
//   NULL does: such an operand is "unknown". `unknown || true` is true and
//   `unknown && false` is false, because the result does not depend on it;
//   otherwise the result is unknown, reported as the kind (kMissing or
//   kTypeError) of the leftmost unknown operand that decided it. `!unknown`
//   is unknown, not true: a `where: !(temp > 80)` must not pass readings that
//   have no temp at all, which a "missing counts as false" rule would do.
//   Arithmetic and comparisons propagate the first problem, left to right.
// * A JSON null reads as a missing field; nested JSON (RawJson) is a type
//   error wherever it is used.
// * Division by zero is kTypeError: the expression cannot be answered, and a
//   record should not pass a `where` because of it.
// * Type errors visible in the text alone (`5 && x`, `'a' + 1`, `x + 1` as a
//   whole expression) are refused at compile time, with the other syntax
//   errors: they are always a mistake and better caught at config load.
// * `&&`, `||`, `+`/`-` and `*`/`/` chains become one node with many
//   children, so tree depth (and evaluation recursion) grows only with
//   nesting, which the parser bounds to kMaxDepth.
// * A default-constructed Expression (no text) evaluates to kFalse.
#include "operators/expression.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

namespace sluice::operators {

struct Expression::Node {
  enum class Kind : uint8_t {
    kNumber, kString, kBool, kField,
    kOr, kAnd, kNot,
    kEq, kNe, kLt, kLe, kGt, kGe,
    kSum, kProduct, kNeg,
    kAbs, kMin, kMax,
  };
  // What the text alone says a node yields; kAny for fields, whose type is
  // known only per record. Used only by the compile-time checks.
  enum class Type : uint8_t { kAny, kNumber, kString, kBool };

  Kind kind = Kind::kBool;
  Type type = Type::kAny;
  size_t offset = 0;          // of the node's first byte in the text
  double number = 0;          // kNumber
  bool boolean = false;       // kBool
  // kString: the unescaped value; kField: the name; kSum and kProduct: the
  // operator before each child ('+' or '-', '*' or '/'; the first is '+' or '*').
  std::string text;
  std::vector<Node> children;
};

namespace {

using Node = Expression::Node;
using Kind = Node::Kind;
using Type = Node::Type;

constexpr size_t kMaxLength = 4096;
// Bounds parser recursion (and so evaluation recursion): hostile input such
// as "((((...", "!!!!..." or "----..." is refused instead of exhausting the stack.
constexpr int kMaxDepth = 64;

// ---------------------------------------------------------------------------
// Lexer

enum class Tok : uint8_t {
  kEnd, kError,
  kNumber, kString, kName, kQuotedName, kTrue, kFalse,
  kOr, kAnd, kNot,
  kEq, kNe, kLt, kLe, kGt, kGe,
  kPlus, kMinus, kStar, kSlash,
  kLParen, kRParen, kComma,
};

struct Token {
  Tok kind = Tok::kEnd;
  size_t offset = 0;
  std::string_view source;  // as written, quotes included
  std::string value;        // string value, field name, or the kError message
  double number = 0;
};

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsNameStart(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool IsNameChar(char c) { return IsNameStart(c) || IsDigit(c) || c == '.'; }

// Splits `text` into tokens. The last token is kEnd, or kError at the first
// lexical problem (the parser reports it only if it gets that far, so the
// leftmost error wins).
std::vector<Token> Lex(std::string_view text) {
  std::vector<Token> tokens;
  size_t i = 0;
  auto error = [&](size_t offset, std::string message) {
    Token t;
    t.kind = Tok::kError;
    t.offset = offset;
    t.value = std::move(message);
    tokens.push_back(std::move(t));
  };
  auto simple = [&](Tok kind, size_t length) {
    Token t;
    t.kind = kind;
    t.offset = i;
    t.source = text.substr(i, length);
    tokens.push_back(std::move(t));
    i += length;
  };
  while (true) {
    while (i < text.size() &&
           (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) {
      ++i;
    }
    if (i == text.size()) {
      Token t;
      t.kind = Tok::kEnd;
      t.offset = i;
      tokens.push_back(std::move(t));
      return tokens;
    }
    const char c = text[i];
    const char next = i + 1 < text.size() ? text[i + 1] : '\0';
    if (IsDigit(c)) {
      const size_t start = i;
      size_t j = i;
      while (j < text.size() && IsDigit(text[j])) ++j;
      if (j + 1 < text.size() && text[j] == '.' && IsDigit(text[j + 1])) {
        j += 2;
        while (j < text.size() && IsDigit(text[j])) ++j;
      }
      if (j < text.size() && (text[j] == 'e' || text[j] == 'E')) {
        size_t k = j + 1;
        if (k < text.size() && (text[k] == '+' || text[k] == '-')) ++k;
        if (k < text.size() && IsDigit(text[k])) {
          while (k < text.size() && IsDigit(text[k])) ++k;
          j = k;
        }
      }
      if (j < text.size() && IsNameChar(text[j])) {
        // "12abc", "1.", "1e", "1.2.3": show the whole run, not just its prefix.
        while (j < text.size() && IsNameChar(text[j])) ++j;
        error(start, "malformed number '" + std::string(text.substr(start, j - start)) + "'");
        return tokens;
      }
      Token t;
      t.kind = Tok::kNumber;
      t.offset = start;
      t.source = text.substr(start, j - start);
      auto [end, ec] = std::from_chars(text.data() + start, text.data() + j, t.number);
      if (ec != std::errc() || end != text.data() + j) {
        error(start, "number '" + std::string(t.source) + "' is out of range");
        return tokens;
      }
      tokens.push_back(std::move(t));
      i = j;
      continue;
    }
    if (IsNameStart(c)) {
      size_t j = i;
      while (j < text.size() && IsNameChar(text[j])) ++j;
      Token t;
      t.offset = i;
      t.source = text.substr(i, j - i);
      if (t.source == "true") {
        t.kind = Tok::kTrue;
      } else if (t.source == "false") {
        t.kind = Tok::kFalse;
      } else {
        t.kind = Tok::kName;
        t.value = std::string(t.source);
      }
      tokens.push_back(std::move(t));
      i = j;
      continue;
    }
    switch (c) {
      case '"':
      case '\'': {
        Token t;
        t.kind = Tok::kString;
        t.offset = i;
        size_t j = i + 1;
        bool closed = false;
        while (j < text.size()) {
          if (text[j] == c) {
            closed = true;
            break;
          }
          if (text[j] == '\\') {
            if (j + 1 == text.size()) break;  // unterminated
            const char e = text[j + 1];
            if (e != '\\' && e != '"' && e != '\'') {
              error(j, std::string("unknown escape '\\") + e +
                           "' in string (known: \\\\ \\\" \\')");
              return tokens;
            }
            t.value += e;
            j += 2;
            continue;
          }
          t.value += text[j];
          ++j;
        }
        if (!closed) {
          error(i, "unterminated string");
          return tokens;
        }
        t.source = text.substr(i, j + 1 - i);
        tokens.push_back(std::move(t));
        i = j + 1;
        continue;
      }
      case '`': {
        const size_t close = text.find('`', i + 1);
        if (close == std::string_view::npos) {
          error(i, "unterminated field name (no closing '`')");
          return tokens;
        }
        if (close == i + 1) {
          error(i, "empty field name in backquotes");
          return tokens;
        }
        Token t;
        t.kind = Tok::kQuotedName;
        t.offset = i;
        t.source = text.substr(i, close + 1 - i);
        t.value = std::string(text.substr(i + 1, close - i - 1));
        tokens.push_back(std::move(t));
        i = close + 1;
        continue;
      }
      case '|':
        if (next != '|') {
          error(i, "unexpected '|' (did you mean '||'?)");
          return tokens;
        }
        simple(Tok::kOr, 2);
        continue;
      case '&':
        if (next != '&') {
          error(i, "unexpected '&' (did you mean '&&'?)");
          return tokens;
        }
        simple(Tok::kAnd, 2);
        continue;
      case '=':
        if (next != '=') {
          error(i, "unexpected '=' (did you mean '=='?)");
          return tokens;
        }
        simple(Tok::kEq, 2);
        continue;
      case '!':
        next == '=' ? simple(Tok::kNe, 2) : simple(Tok::kNot, 1);
        continue;
      case '<':
        next == '=' ? simple(Tok::kLe, 2) : simple(Tok::kLt, 1);
        continue;
      case '>':
        next == '=' ? simple(Tok::kGe, 2) : simple(Tok::kGt, 1);
        continue;
      case '+': simple(Tok::kPlus, 1); continue;
      case '-': simple(Tok::kMinus, 1); continue;
      case '*': simple(Tok::kStar, 1); continue;
      case '/': simple(Tok::kSlash, 1); continue;
      case '(': simple(Tok::kLParen, 1); continue;
      case ')': simple(Tok::kRParen, 1); continue;
      case ',': simple(Tok::kComma, 1); continue;
      default:
        break;
    }
    if (c >= 0x20 && c < 0x7f) {
      error(i, std::string("unexpected character '") + c + "'");
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "0x%02x",
                    static_cast<unsigned>(static_cast<unsigned char>(c)));
      error(i, std::string("unexpected byte ") + buf +
                   " (non-ASCII text belongs in quotes or backquotes)");
    }
    return tokens;
  }
}

// How a token reads in "got ..." messages.
std::string Describe(const Token& t) {
  constexpr size_t kMaxShown = 32;
  std::string shown(t.source.substr(0, kMaxShown));
  if (t.source.size() > kMaxShown) shown += "...";
  switch (t.kind) {
    case Tok::kEnd:
      return "end of input";
    case Tok::kNumber:
      return "number " + shown;
    case Tok::kString:
      return "string " + shown;
    case Tok::kName:
      return "field '" + shown + "'";
    case Tok::kQuotedName:
      return "field " + shown;
    default:
      return "'" + shown + "'";
  }
}

std::string_view TypeName(Type type) {
  switch (type) {
    case Type::kNumber: return "a number";
    case Type::kString: return "a string";
    case Type::kBool: return "a condition (true/false)";
    case Type::kAny: break;
  }
  return "a field";
}

// ---------------------------------------------------------------------------
// Parser. Each Parse function returns false after recording the first error.

class Parser {
 public:
  explicit Parser(std::string_view text) : tokens_(Lex(text)) {}

  bool Parse(Node* root) {
    if (!ParseExpr(kOrLevel, root)) return false;
    const Token& t = Peek();
    if (t.kind == Tok::kError) return FailGot(t, {});
    if (t.kind == Tok::kRParen) return Fail(t.offset, {"unexpected ')'"});
    if (t.kind != Tok::kEnd) return FailGot(t, {"expected an operator or end of input"});
    if (root->type == Type::kNumber || root->type == Type::kString) {
      return Fail(root->offset, {"expected a condition (true/false), got ", TypeName(root->type)});
    }
    return true;
  }

  const std::string& error() const { return error_; }
  size_t error_offset() const { return error_offset_; }
  std::vector<std::string>& fields() { return fields_; }

 private:
  // Counts one level of nesting for as long as it lives.
  class Nest {
   public:
    explicit Nest(int* depth) : depth_(depth) { ++*depth_; }
    ~Nest() { --*depth_; }
    Nest(const Nest&) = delete;
    Nest& operator=(const Nest&) = delete;

   private:
    int* depth_;
  };

  const Token& Peek() const { return tokens_[pos_]; }
  const Token& Next() {
    const Token& t = tokens_[pos_];
    if (pos_ + 1 < tokens_.size()) ++pos_;  // stay on the final kEnd/kError
    return t;
  }

  // The error paths build their messages out of line, from string_view
  // pieces: temporaries here would sit in every recursive parser frame.
  [[gnu::noinline]] bool Fail(size_t offset, std::initializer_list<std::string_view> parts) {
    error_offset_ = offset;
    error_.clear();
    for (std::string_view part : parts) error_ += part;
    return false;
  }
  // "<expected>, got <t>", or the lexer's own message when `t` is its error.
  [[gnu::noinline]] bool FailGot(const Token& t, std::initializer_list<std::string_view> expected) {
    if (t.kind == Tok::kError) return Fail(t.offset, {t.value});
    Fail(t.offset, expected);
    error_ += ", got ";
    error_ += Describe(t);
    return false;
  }
  [[gnu::noinline]] bool FailTooDeep(const Token& at) {
    const std::string depth = std::to_string(kMaxDepth);
    return Fail(at.offset, {"expression nests deeper than ", depth, " levels"});
  }
  // `t` cannot start an operand: say what came before it.
  [[gnu::noinline]] bool FailOperand(const Token& t) {
    if (pos_ == 0) return FailGot(t, {"expected an expression"});
    const Token& before = tokens_[pos_ - 1];
    switch (before.kind) {
      case Tok::kLParen: return FailGot(t, {"expected an expression after '('"});
      case Tok::kComma: return FailGot(t, {"expected an argument after ','"});
      default: return FailGot(t, {"expected an operand after '", before.source, "'"});
    }
  }
  [[gnu::noinline]] bool FailUnclosed(const Token& open) {
    const std::string offset = std::to_string(open.offset);
    return FailGot(Peek(), {"expected ')' to close the '(' at offset ", offset});
  }

  static bool IsNumber(const Node& n) { return n.type == Type::kAny || n.type == Type::kNumber; }
  static bool IsCondition(const Node& n) { return n.type == Type::kAny || n.type == Type::kBool; }
  [[gnu::noinline]] bool FailArity(const Token& name, size_t args) {
    const std::string count = std::to_string(args);
    return Fail(name.offset, {name.source, " takes 1 argument, got ", count});
  }
  // "expected <expected><context...>, got <what n is>".
  [[gnu::noinline]] bool FailType(const Node& n, std::string_view expected,
                                  std::initializer_list<std::string_view> context) {
    Fail(n.offset, {"expected ", expected});
    for (std::string_view part : context) error_ += part;
    error_ += ", got ";
    error_ += TypeName(n.type);
    return false;
  }
  bool CheckOperand(const Node& n, bool logical, const Token& op) {
    if (logical ? IsCondition(n) : IsNumber(n)) return true;
    return FailType(n, logical ? "a condition" : "a number", {" as operand of '", op.source, "'"});
  }

  static Node MakeNode(Kind kind, Type type, size_t offset) {
    Node n;
    n.kind = kind;
    n.type = type;
    n.offset = offset;
    return n;
  }

  void AddField(const std::string& name) {
    for (const std::string& f : fields_) {
      if (f == name) return;
    }
    fields_.push_back(name);
  }

  // The grammar of expression.h by precedence climbing: ParseExpr(level)
  // reads an operand, then every infix operator of at least `level`. A
  // parenthesis costs two stack frames where one function per grammar rule
  // would cost twelve: measured at -O2, 64 nested parentheses compile in
  // about 32 KB of stack rather than 240 KB, the worst operator mix in 100 KB.
  static constexpr int kOrLevel = 1;
  static constexpr int kAndLevel = 2;
  static constexpr int kNotLevel = 3;      // prefix '!': applies to a whole comparison
  static constexpr int kCompareLevel = 4;  // does not chain
  static constexpr int kSumLevel = 5;
  static constexpr int kProductLevel = 6;
  static constexpr int kUnaryLevel = 7;    // prefix '-'

  static int InfixLevel(Tok t) {
    switch (t) {
      case Tok::kOr: return kOrLevel;
      case Tok::kAnd: return kAndLevel;
      case Tok::kEq:
      case Tok::kNe:
      case Tok::kLt:
      case Tok::kLe:
      case Tok::kGt:
      case Tok::kGe: return kCompareLevel;
      case Tok::kPlus:
      case Tok::kMinus: return kSumLevel;
      case Tok::kStar:
      case Tok::kSlash: return kProductLevel;
      default: return 0;
    }
  }

  bool ParseExpr(int min_level, Node* out) {
    const Token& first = Peek();
    if (first.kind == Tok::kNot && min_level <= kNotLevel) {
      if (!ParsePrefix(kNotLevel, out)) return false;
    } else if (first.kind == Tok::kMinus) {
      if (!ParsePrefix(kUnaryLevel, out)) return false;
    } else if (!ParsePrimary(out)) {
      return false;
    }
    // Operators of one level extend one n-ary node: `a || b || c` is one
    // kOr with three children, so long chains add no tree depth.
    int chain_level = 0;
    while (true) {
      const Token& op = Peek();
      const int level = InfixLevel(op.kind);
      if (level == 0 || level < min_level) return true;
      Next();
      if (level == kCompareLevel) {
        if (!ParseComparison(op, out)) return false;
        chain_level = 0;
        continue;
      }
      const bool logical = level <= kAndLevel;
      if (chain_level != level) {
        // Checked before the right side is read: the leftmost error is reported.
        if (!CheckOperand(*out, logical, op)) return false;
        const Kind kind = level == kOrLevel    ? Kind::kOr
                          : level == kAndLevel ? Kind::kAnd
                          : level == kSumLevel ? Kind::kSum
                                               : Kind::kProduct;
        Node chain = MakeNode(kind, logical ? Type::kBool : Type::kNumber, out->offset);
        if (!logical) chain.text += level == kSumLevel ? '+' : '*';  // the first child as is
        chain.children.push_back(std::move(*out));
        *out = std::move(chain);
        chain_level = level;
      }
      Node right;
      if (!ParseExpr(level + 1, &right)) return false;
      if (!CheckOperand(right, logical, op)) return false;
      if (!logical) out->text += op.source[0];
      out->children.push_back(std::move(right));
    }
  }

  // not := '!' not | compare        unary := '-' unary | primary
  bool ParsePrefix(int level, Node* out) {
    const Token& op = Next();
    Nest nest(&depth_);
    if (depth_ > kMaxDepth) return FailTooDeep(op);
    if (!ParseExpr(level, out)) return false;
    const bool bang = level == kNotLevel;
    if (bang && !IsCondition(*out)) return FailType(*out, "a condition", {" after '!'"});
    if (!bang && !IsNumber(*out)) return FailType(*out, "a number", {" after '-'"});
    if (!bang && out->kind == Kind::kNumber) {  // a negative literal: fold it
      out->number = -out->number;
      out->offset = op.offset;
      return true;
    }
    Node n = MakeNode(bang ? Kind::kNot : Kind::kNeg, bang ? Type::kBool : Type::kNumber,
                      op.offset);
    n.children.push_back(std::move(*out));
    *out = std::move(n);
    return true;
  }

  // compare := sum ( ( '==' | '!=' | '<' | '<=' | '>' | '>=' ) sum )?
  // `op` has been read and *left is the left side; on success *left holds
  // the comparison.
  bool ParseComparison(const Token& op, Node* left) {
    Node right;
    if (!ParseExpr(kCompareLevel + 1, &right)) return false;
    if (!CheckComparison(op, *left, right)) return false;
    Kind kind = Kind::kEq;
    switch (op.kind) {
      case Tok::kEq: kind = Kind::kEq; break;
      case Tok::kNe: kind = Kind::kNe; break;
      case Tok::kLt: kind = Kind::kLt; break;
      case Tok::kLe: kind = Kind::kLe; break;
      case Tok::kGt: kind = Kind::kGt; break;
      default: kind = Kind::kGe; break;
    }
    Node n = MakeNode(kind, Type::kBool, left->offset);
    n.children.push_back(std::move(*left));
    n.children.push_back(std::move(right));
    *left = std::move(n);
    return true;
  }

  // Kept out of line: the message building would otherwise sit in every
  // recursive ParseComparison frame.
  [[gnu::noinline]] bool CheckComparison(const Token& op, const Node& left, const Node& right) {
    if (left.type != Type::kAny && right.type != Type::kAny && left.type != right.type) {
      return Fail(op.offset, {"cannot compare ", TypeName(left.type), " with ",
                              TypeName(right.type), " using '", op.source, "'"});
    }
    const bool ordering = op.kind != Tok::kEq && op.kind != Tok::kNe;
    if (ordering && (left.type == Type::kBool || right.type == Type::kBool)) {
      return Fail(op.offset, {"'", op.source,
                              "' does not apply to conditions (true/false): they compare only "
                              "with == and !="});
    }
    if (InfixLevel(Peek().kind) == kCompareLevel) {
      return Fail(Peek().offset, {"unexpected '", Peek().source,
                                  "' after a comparison (comparisons do not chain: use '&&')"});
    }
    return true;
  }

  // primary := number | string | 'true' | 'false' | field | call | '(' or ')'
  bool ParsePrimary(Node* out) {
    const Token& t = Peek();
    switch (t.kind) {
      case Tok::kNumber:
        Next();
        *out = MakeNode(Kind::kNumber, Type::kNumber, t.offset);
        out->number = t.number;
        return true;
      case Tok::kString:
        Next();
        *out = MakeNode(Kind::kString, Type::kString, t.offset);
        out->text = t.value;
        return true;
      case Tok::kTrue:
      case Tok::kFalse:
        Next();
        *out = MakeNode(Kind::kBool, Type::kBool, t.offset);
        out->boolean = t.kind == Tok::kTrue;
        return true;
      case Tok::kName:
      case Tok::kQuotedName:
        Next();
        if (t.kind == Tok::kName && Peek().kind == Tok::kLParen) return ParseCall(t, out);
        *out = MakeNode(Kind::kField, Type::kAny, t.offset);
        out->text = t.value;
        AddField(t.value);
        return true;
      case Tok::kLParen: {
        Next();
        Nest nest(&depth_);
        if (depth_ > kMaxDepth) return FailTooDeep(t);
        if (!ParseExpr(kOrLevel, out)) return false;
        if (Peek().kind != Tok::kRParen) return FailUnclosed(t);
        Next();
        out->offset = t.offset;  // type errors point at the parenthesis
        return true;
      }
      default:
        return FailOperand(t);
    }
  }

  // call := ( 'abs' | 'min' | 'max' ) '(' or ( ',' or )* ')'
  bool ParseCall(const Token& name, Node* out) {
    Kind kind = Kind::kAbs;
    if (name.source == "abs") {
      kind = Kind::kAbs;
    } else if (name.source == "min") {
      kind = Kind::kMin;
    } else if (name.source == "max") {
      kind = Kind::kMax;
    } else {
      return Fail(name.offset, {"unknown function '", name.source, "' (known: abs, min, max)"});
    }
    const std::string_view fn = name.source;
    const Token& open = Next();
    Nest nest(&depth_);
    if (depth_ > kMaxDepth) return FailTooDeep(open);
    Node call = MakeNode(kind, Type::kNumber, name.offset);
    if (Peek().kind == Tok::kRParen) {
      return Fail(Peek().offset, {"expected an argument of ", fn, ", got ')'"});
    }
    while (true) {
      Node arg;
      if (!ParseExpr(kOrLevel, &arg)) return false;
      if (!IsNumber(arg)) return FailType(arg, "a number", {" as argument of ", fn});
      call.children.push_back(std::move(arg));
      const Token& t = Peek();
      if (t.kind == Tok::kComma) {
        Next();
        continue;
      }
      if (t.kind == Tok::kRParen) {
        Next();
        break;
      }
      if (t.kind == Tok::kEnd) return FailGot(t, {"expected ')' after the arguments of ", fn});
      return FailGot(t, {"expected ',' or ')' after an argument of ", fn});
    }
    if (kind == Kind::kAbs && call.children.size() != 1) {
      return FailArity(name, call.children.size());
    }
    *out = std::move(call);
    return true;
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
  std::vector<std::string> fields_;
  std::string error_;
  size_t error_offset_ = 0;
};

// ---------------------------------------------------------------------------
// Evaluation: no allocation. Strings are views into the tree or the record.

struct Val {
  enum class Kind : uint8_t { kNumber, kString, kBool, kMissing, kTypeError };
  Kind kind = Kind::kTypeError;
  bool boolean = false;
  double number = 0;
  std::string_view text;
};

Val Number(double d) {
  Val v;
  v.kind = Val::Kind::kNumber;
  v.number = d;
  return v;
}
Val Of(Val::Kind kind) {
  Val v;
  v.kind = kind;
  return v;
}
bool IsProblem(const Val& v) {
  return v.kind == Val::Kind::kMissing || v.kind == Val::Kind::kTypeError;
}
Truth ProblemTruth(const Val& v) {
  return v.kind == Val::Kind::kMissing ? Truth::kMissing : Truth::kTypeError;
}
Val FromTruth(Truth t) {
  switch (t) {
    case Truth::kTrue:
    case Truth::kFalse: {
      Val v = Of(Val::Kind::kBool);
      v.boolean = t == Truth::kTrue;
      return v;
    }
    case Truth::kMissing:
      return Of(Val::Kind::kMissing);
    case Truth::kTypeError:
      break;
  }
  return Of(Val::Kind::kTypeError);
}

Truth EvalCondition(const Node& n, const Record& r);

Val Lookup(const Node& n, const Record& r) {
  const Value* value = r.Find(n.text);
  if (value == nullptr) return Of(Val::Kind::kMissing);
  switch (value->index()) {
    case 0:  // JSON null reads as absent
      return Of(Val::Kind::kMissing);
    case 1: {
      Val v = Of(Val::Kind::kBool);
      v.boolean = std::get<bool>(*value);
      return v;
    }
    case 2:
      return Number(static_cast<double>(std::get<int64_t>(*value)));
    case 3:
      return Number(std::get<double>(*value));
    case 4: {
      Val v = Of(Val::Kind::kString);
      v.text = std::get<std::string>(*value);
      return v;
    }
    default:  // nested JSON has no operators
      return Of(Val::Kind::kTypeError);
  }
}

Val EvalValue(const Node& n, const Record& r) {
  switch (n.kind) {
    case Kind::kNumber:
      return Number(n.number);
    case Kind::kString: {
      Val v = Of(Val::Kind::kString);
      v.text = n.text;
      return v;
    }
    case Kind::kBool: {
      Val v = Of(Val::Kind::kBool);
      v.boolean = n.boolean;
      return v;
    }
    case Kind::kField:
      return Lookup(n, r);
    case Kind::kSum:
    case Kind::kProduct: {
      double acc = 0;
      for (size_t i = 0; i < n.children.size(); ++i) {
        const Val v = EvalValue(n.children[i], r);
        if (IsProblem(v)) return v;
        if (v.kind != Val::Kind::kNumber) return Of(Val::Kind::kTypeError);
        if (i == 0) {
          acc = v.number;
          continue;
        }
        switch (n.text[i]) {
          case '+': acc += v.number; break;
          case '-': acc -= v.number; break;
          case '*': acc *= v.number; break;
          default:
            if (v.number == 0) return Of(Val::Kind::kTypeError);
            acc /= v.number;
            break;
        }
      }
      return Number(acc);
    }
    case Kind::kNeg:
    case Kind::kAbs: {
      const Val v = EvalValue(n.children[0], r);
      if (IsProblem(v)) return v;
      if (v.kind != Val::Kind::kNumber) return Of(Val::Kind::kTypeError);
      return Number(n.kind == Kind::kNeg ? -v.number : std::fabs(v.number));
    }
    case Kind::kMin:
    case Kind::kMax: {
      double acc = 0;
      for (size_t i = 0; i < n.children.size(); ++i) {
        const Val v = EvalValue(n.children[i], r);
        if (IsProblem(v)) return v;
        if (v.kind != Val::Kind::kNumber) return Of(Val::Kind::kTypeError);
        if (i == 0 || (n.kind == Kind::kMin ? v.number < acc : v.number > acc)) acc = v.number;
      }
      return Number(acc);
    }
    default:  // conditions
      return FromTruth(EvalCondition(n, r));
  }
}

Truth Compare(const Node& n, const Record& r) {
  const Val a = EvalValue(n.children[0], r);
  if (IsProblem(a)) return ProblemTruth(a);
  const Val b = EvalValue(n.children[1], r);
  if (IsProblem(b)) return ProblemTruth(b);
  if (a.kind != b.kind) return Truth::kTypeError;
  bool result = false;
  switch (a.kind) {
    case Val::Kind::kNumber:
      // Plain IEEE comparisons: NaN is unequal to everything.
      switch (n.kind) {
        case Kind::kEq: result = a.number == b.number; break;
        case Kind::kNe: result = a.number != b.number; break;
        case Kind::kLt: result = a.number < b.number; break;
        case Kind::kLe: result = a.number <= b.number; break;
        case Kind::kGt: result = a.number > b.number; break;
        default: result = a.number >= b.number; break;
      }
      break;
    case Val::Kind::kString: {
      const int c = a.text.compare(b.text);  // bytewise, as unsigned char
      switch (n.kind) {
        case Kind::kEq: result = c == 0; break;
        case Kind::kNe: result = c != 0; break;
        case Kind::kLt: result = c < 0; break;
        case Kind::kLe: result = c <= 0; break;
        case Kind::kGt: result = c > 0; break;
        default: result = c >= 0; break;
      }
      break;
    }
    default:  // kBool
      if (n.kind == Kind::kEq) {
        result = a.boolean == b.boolean;
      } else if (n.kind == Kind::kNe) {
        result = a.boolean != b.boolean;
      } else {
        return Truth::kTypeError;
      }
      break;
  }
  return result ? Truth::kTrue : Truth::kFalse;
}

Truth EvalCondition(const Node& n, const Record& r) {
  switch (n.kind) {
    case Kind::kOr: {
      // Kleene: true wins; otherwise the leftmost unknown, else false.
      Truth result = Truth::kFalse;
      for (const Node& c : n.children) {
        const Truth t = EvalCondition(c, r);
        if (t == Truth::kTrue) return Truth::kTrue;
        if (t != Truth::kFalse && result == Truth::kFalse) result = t;
      }
      return result;
    }
    case Kind::kAnd: {
      // Kleene: false wins; otherwise the leftmost unknown, else true.
      Truth result = Truth::kTrue;
      for (const Node& c : n.children) {
        const Truth t = EvalCondition(c, r);
        if (t == Truth::kFalse) return Truth::kFalse;
        if (t != Truth::kTrue && result == Truth::kTrue) result = t;
      }
      return result;
    }
    case Kind::kNot: {
      const Truth t = EvalCondition(n.children[0], r);
      if (t == Truth::kTrue) return Truth::kFalse;
      if (t == Truth::kFalse) return Truth::kTrue;
      return t;
    }
    case Kind::kEq:
    case Kind::kNe:
    case Kind::kLt:
    case Kind::kLe:
    case Kind::kGt:
    case Kind::kGe:
      return Compare(n, r);
    default: {
      const Val v = EvalValue(n, r);
      if (v.kind == Val::Kind::kBool) return v.boolean ? Truth::kTrue : Truth::kFalse;
      if (v.kind == Val::Kind::kMissing) return Truth::kMissing;
      return Truth::kTypeError;  // a number or string used as a condition
    }
  }
}

}  // namespace

StatusOr<Expression> Expression::Compile(std::string_view text, size_t* error_offset) {
  auto fail = [&](size_t offset, std::string_view message) -> StatusOr<Expression> {
    if (error_offset != nullptr) *error_offset = offset;
    return Status::InvalidArgument(message);
  };
  if (text.size() > kMaxLength) {
    return fail(kMaxLength, "expression is longer than " + std::to_string(kMaxLength) +
                                " bytes (" + std::to_string(text.size()) + ")");
  }
  Parser parser(text);
  auto root = std::make_shared<Node>();
  if (!parser.Parse(root.get())) return fail(parser.error_offset(), parser.error());
  Expression e;
  e.text_ = std::string(text);
  e.fields_ = std::move(parser.fields());
  e.root_ = std::move(root);
  return e;
}

Truth Expression::Evaluate(const Record& record) const {
  if (root_ == nullptr) return Truth::kFalse;
  return EvalCondition(*root_, record);
}

}  // namespace sluice::operators
